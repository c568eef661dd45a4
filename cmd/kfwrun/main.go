// Command kfwrun is make run: it brings up kfw's lab on one machine and
// lets you work in it.
//
//	kfwrun [up] [flags]           boot the lab VM (kfw.ko, a rule set, traffic, kfw_exporter)
//	                              and a local Prometheus scraping it; run until Ctrl-C
//	kfwrun exec [flags] CMD ARGS  run a command as root in the running lab VM
//	kfwrun agent [flags]          (in the VM) serve kfwrun exec; started by guest.sh
//
// up boots the generic lab kernel with cmd/kfwrun/guest.sh as its payload,
// forwards the exporter's port (10170) and the agent's (10171) to the
// host's loopback, starts Prometheus on 127.0.0.1:19090 with the rules of
// dashboards/prometheus, waits until Prometheus has scraped the exporter,
// prints where to look, and on Ctrl-C stops everything it started. Its
// state lives in build/run: a lock (one lab at a time), the VM's logs, the
// Prometheus configuration, data and log. With --for it checks the lab
// (kfw_up, rule counters, events, Prometheus's up{job="kfw"} and rules,
// the agent), runs that long, checks again and stops: exit status 0 means
// every check passed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

const (
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130 // as a shell reports SIGINT
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "up":
		return runUp(ctx, args, stdout, stderr)
	case "exec":
		return runExec(ctx, args, stdin, stdout, stderr)
	case "agent":
		return runAgent(ctx, args, stderr)
	case "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "kfwrun: unknown command %q\n", cmd)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  kfwrun [up] [flags]              bring up the lab VM and a local Prometheus; run until Ctrl-C (kfwrun up -h)
  kfwrun exec [flags] CMD ARGS...  run a command as root in the running lab VM (kfwrun exec -h)
  kfwrun agent [flags]             serve kfwrun exec inside the VM (started by cmd/kfwrun/guest.sh)
`)
}

func newFlagSet(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("kfwrun "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kfwrun %s %s\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// defaultStateDir is build/run at the repository root.
func defaultStateDir() string {
	repo, err := lab.RepoRoot()
	if err != nil {
		return filepath.Join("build", "run")
	}
	return filepath.Join(repo, "build", "run")
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("up", stderr, "[flags]")
	repo, repoErr := lab.RepoRoot()
	cfg := config{repo: repo, out: stdout}
	fs.StringVar(&cfg.stateDir, "state", filepath.Join(repo, "build", "run"), "state `DIR`: lock, VM logs, Prometheus config and data")
	fs.StringVar(&cfg.binDir, "bin", filepath.Join(repo, "bin"), "`DIR` holding kfw_exporter, kfwctl, kfwtraffic and kfwrun for the guest")
	fs.StringVar(&cfg.kernel, "kernel", lab.Generic, "lab kernel: generic, rt or debug")
	fs.StringVar(&cfg.module, "module", "", "the kfw.ko `FILE` to load (default: build/kmod/<release>/kfw.ko, from make modules)")
	fs.StringVar(&cfg.prometheus, "prometheus", "prometheus", "the Prometheus `BINARY`")
	fs.IntVar(&cfg.exporterPort, "exporter-port", defaultExporterPort, "host `PORT` forwarded to the exporter in the VM")
	fs.IntVar(&cfg.agentPort, "agent-port", defaultAgentPort, "host `PORT` forwarded to the agent of kfwrun exec")
	fs.IntVar(&cfg.prometheusPort, "prometheus-port", defaultPrometheusPort, "host `PORT` of Prometheus (127.0.0.1)")
	fs.DurationVar(&cfg.runFor, "for", 0, "check the lab when ready, run this long, check again and stop (0: run until Ctrl-C)")
	fs.StringVar(&cfg.events, "events", "auto", "with --for, require netlink drop and hit events: yes, no, or auto (when kfw.ko has its generic netlink family)")
	fs.DurationVar(&cfg.timeout, "timeout", 24*time.Hour, "stop the VM after this long")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kfwrun up: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if repoErr != nil {
		fmt.Fprintln(stderr, "kfwrun:", repoErr)
		return exitFailure
	}
	for _, dir := range []*string{&cfg.stateDir, &cfg.binDir, &cfg.module} {
		if *dir == "" {
			continue
		}
		abs, err := filepath.Abs(*dir)
		if err != nil {
			fmt.Fprintln(stderr, "kfwrun:", err)
			return exitFailure
		}
		*dir = abs
	}
	if cfg.runFor < 0 || cfg.timeout <= 0 {
		fmt.Fprintln(stderr, "kfwrun up: --for must not be negative and --timeout must be positive")
		return exitUsage
	}
	if cfg.runFor > 0 {
		// Room for booting and checking before the watchdog.
		cfg.timeout = min(cfg.timeout, cfg.runFor+10*time.Minute)
	}
	if err := up(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "kfwrun:", err)
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitFailure
	}
	return 0
}

func runExec(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("exec", stderr, "[flags] [--] CMD ARGS...")
	stateDir := fs.String("state", defaultStateDir(), "state `DIR` of the running kfwrun")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return exitUsage
	}
	st, err := readState(*stateDir)
	if err != nil || !labRunning(*stateDir) {
		fmt.Fprintf(stderr, "kfwrun exec: the lab is not running (start it with make run; no live kfwrun uses %s)\n", *stateDir)
		return exitFailure
	}
	token, err := os.ReadFile(st.TokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "kfwrun exec: reading the agent's token: %v\n", err)
		return exitFailure
	}
	code, err := remoteExec(ctx, st.AgentAddress, strings.TrimSpace(string(token)), fs.Args(), stdin, stdout, stderr)
	switch {
	case ctx.Err() != nil:
		return exitInterrupted
	case errors.Is(err, syscall.ECONNREFUSED):
		fmt.Fprintf(stderr, "kfwrun exec: nothing answers at %s: is the VM still booting?\n", st.AgentAddress)
		return exitFailure
	case err != nil:
		fmt.Fprintln(stderr, "kfwrun exec:", err)
		return exitFailure
	}
	return code
}

func runAgent(ctx context.Context, args []string, stderr io.Writer) int {
	fs := newFlagSet("agent", stderr, "[flags]")
	listen := fs.String("listen", fmt.Sprintf(":%d", guestAgentPort), "`ADDRESS` to listen on")
	tokenFile := fs.String("token-file", "", "`FILE` holding the token clients must send")
	dir := fs.String("dir", "/", "working `DIR` of the commands")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *tokenFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil || strings.TrimSpace(string(token)) == "" {
		fmt.Fprintf(stderr, "kfwrun agent: no token in %s: %v\n", *tokenFile, err)
		return exitFailure
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "kfwrun agent:", err)
		return exitFailure
	}
	logger := log.New(stderr, "kfwrun agent: ", log.LstdFlags)
	logger.Printf("listening on %s", ln.Addr())
	a := &agent{token: strings.TrimSpace(string(token)), dir: *dir, logf: logger.Printf}
	if err := a.serve(ctx, ln); err != nil {
		logger.Print(err)
		return exitFailure
	}
	return 0
}
