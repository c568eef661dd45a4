// Command kfwlab boots kfw's lab VMs from the command line: it runs one
// command in a VM (for make run, benchmarks and debugging), lists the lab
// kernels and builds kfw.ko for them. See lab/README.md.
//
//	kfwlab run [flags] -- CMD ARGS...   run CMD in a VM; exit with its status
//	kfwlab kernels                      list the lab kernels
//	kfwlab modules [-kernel NAME]...    build kfw.ko for the lab kernels
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// Exit statuses of kfwlab run besides the payload's own.
const (
	exitKernelProblem = 1   // the payload passed but the kernel reported a problem
	exitUsage         = 2   // bad command line
	exitTimeout       = 124 // the watchdog stopped the VM (as timeout(1))
	exitLab           = 125 // the VM could not boot or finish
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runVM(args[1:], stdout, stderr)
	case "kernels":
		return listKernels(stdout, stderr)
	case "modules":
		return buildModules(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "kfwlab: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  kfwlab run [flags] -- CMD ARGS...   run CMD as root in a lab VM (kfwlab run -h for flags)
  kfwlab kernels                      list the lab kernels and their kfw.ko
  kfwlab modules [-kernel NAME]...    build kfw.ko for the lab kernels (default: all available)
`)
}

// listFlag collects the values of a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runVM(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kfwlab run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg lab.Config
	var fwds, appendArgs, env listFlag
	var console, keep bool
	fs.StringVar(&cfg.Kernel, "kernel", lab.Generic, "kernel: generic, rt or debug")
	fs.IntVar(&cfg.SMP, "smp", lab.DefaultSMP, "virtual CPUs")
	fs.IntVar(&cfg.MemoryMB, "mem", lab.DefaultMemoryMB, "guest memory in MiB")
	fs.Var(&fwds, "fwd", "forward host TCP port `HOST:GUEST` (127.0.0.1 on the host; implies -net); repeatable")
	fs.BoolVar(&cfg.Network, "net", false, "give the guest qemu's user-mode network on eth0 (10.0.2.15/24)")
	fs.DurationVar(&cfg.Timeout, "timeout", lab.DefaultTimeout, "stop the VM after this long, boot included")
	fs.Var(&appendArgs, "append", "extra kernel `PARAMETER`; repeatable")
	fs.Var(&env, "env", "extra `KEY=VALUE` for the command; repeatable")
	fs.StringVar(&cfg.Dir, "dir", "", "working directory in the guest (default: the current directory, or / when the guest cannot see it)")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "run directory for the logs (default: a new one under build/lab/logs)")
	fs.BoolVar(&console, "console", false, "copy the serial console to stderr")
	fs.BoolVar(&keep, "keep", false, "keep the logs of a passing run")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kfwlab run [flags] -- CMD ARGS...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg.Command = fs.Args()
	if len(cfg.Command) == 0 {
		fs.Usage()
		return exitUsage
	}
	for _, f := range fwds {
		fwd, err := lab.ParseForward(f)
		if err != nil {
			fmt.Fprintln(stderr, "kfwlab:", err)
			return exitUsage
		}
		cfg.Forwards = append(cfg.Forwards, fwd)
	}
	for _, kv := range env {
		if key, _, ok := strings.Cut(kv, "="); !ok || key == "" {
			fmt.Fprintf(stderr, "kfwlab: -env %q: want KEY=VALUE\n", kv)
			return exitUsage
		}
	}
	cfg.KernelArgs, cfg.Env = appendArgs, env
	cfg.Name = "kfwlab"
	cfg.Stdout, cfg.Stderr = stdout, stderr
	if console {
		cfg.Console = stderr
	}
	if cfg.Dir == "" {
		cfg.Dir = guestWorkDir()
	}

	// Stop qemu on Ctrl-C or SIGTERM; exit as a shell reports that signal.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(interrupted{s.(syscall.Signal)})
		}
	}()

	vm, err := lab.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kfwlab:", err)
		return exitLab
	}
	res, err := vm.Wait()
	var sig interrupted
	switch {
	case errors.As(context.Cause(ctx), &sig):
		fmt.Fprintf(stderr, "kfwlab: %v; VM stopped; logs: %s\n", sig, vm.LogDir)
		return 128 + int(sig.signal)
	case errors.Is(err, lab.ErrTimeout):
		fmt.Fprintln(stderr, "kfwlab:", err)
		return exitTimeout
	case err != nil:
		fmt.Fprintln(stderr, "kfwlab:", err)
		return exitLab
	}
	fmt.Fprintf(stderr, "kfwlab: %s (%s): boot %.1fs, command and log collection %.1fs\n",
		res.Kernel.Name, res.Kernel.Release, res.Boot.Seconds(), res.Run.Seconds())
	if problems := res.Problems(); len(problems) > 0 {
		fmt.Fprintf(stderr, "kfwlab: kernel problems:\n  %s\nkfwlab: logs: %s\n", strings.Join(problems, "\n  "), res.LogDir)
		if res.ExitCode == 0 {
			return exitKernelProblem
		}
		return res.ExitCode
	}
	if res.ExitCode != 0 || keep {
		fmt.Fprintf(stderr, "kfwlab: logs: %s\n", res.LogDir)
	} else {
		os.RemoveAll(res.LogDir)
	}
	return res.ExitCode
}

// interrupted is the cause of a run stopped by a signal.
type interrupted struct{ signal syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.signal.String() }

// guestWorkDir is the current directory when the guest can see it (it
// mounts fresh file systems over /tmp and /run), else "/".
func guestWorkDir() string {
	wd, err := os.Getwd()
	if err != nil || lab.GuestCanSee(wd) != nil {
		return "/"
	}
	return wd
}

func listKernels(stdout, stderr io.Writer) int {
	repo, err := lab.RepoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "kfwlab:", err)
		return exitLab
	}
	w := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tRELEASE\tIMAGE\tKFW.KO")
	var unavailable []error
	for _, name := range lab.KernelNames() {
		k, err := lab.FindKernel(repo, name)
		if err != nil {
			fmt.Fprintf(w, "%s\t-\tunavailable (see below)\t-\n", name)
			unavailable = append(unavailable, err)
			continue
		}
		ko := lab.ModulePath(repo, k.Release)
		if _, err := os.Stat(ko); err != nil {
			ko = "not built (make modules)"
		} else if rel, err := filepath.Rel(repo, ko); err == nil {
			ko = rel
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", name, k.Release, k.Image, ko)
	}
	w.Flush()
	for _, err := range unavailable {
		fmt.Fprintln(stdout, err)
	}
	return 0
}

func buildModules(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kfwlab modules", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names listFlag
	fs.Var(&names, "kernel", "build for this kernel only (generic, rt, debug); repeatable; an unavailable one is an error")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: kfwlab modules [-kernel NAME]...")
		return exitUsage
	}
	repo, err := lab.RepoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "kfwlab:", err)
		return 1
	}
	explicit := len(names) > 0
	if !explicit {
		names = lab.KernelNames()
	}
	status := 0
	for _, name := range names {
		k, err := lab.FindKernel(repo, name)
		if err != nil {
			if explicit {
				fmt.Fprintln(stderr, "kfwlab:", err)
				status = 1
			} else {
				fmt.Fprintf(stderr, "kfwlab: skipping %s: %v\n", name, err)
			}
			continue
		}
		fmt.Fprintf(stderr, "kfwlab: building kfw.ko for %s (%s)\n", name, k.Release)
		ko, err := lab.BuildModule(context.Background(), repo, k, stdout)
		if err != nil {
			fmt.Fprintln(stderr, "kfwlab:", err)
			status = 1
			continue
		}
		fmt.Fprintln(stderr, "kfwlab: built", ko)
	}
	return status
}
