// Package harness is kfwbench's host side: it runs the Go micro-benchmarks
// and the native scrape comparison on the host, boots one lab VM running
// the in-VM payload (package guestbench), and writes BENCHMARKS.md and the
// raw results.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/report"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/lab"
)

// Options configures a run.
type Options struct {
	Quick bool
	Repo  string // repository root; default lab.RepoRoot()
	// Markdown is where BENCHMARKS.md goes and ResultsDir where the raw
	// results go; defaults: the repository's BENCHMARKS.md and
	// bench/results, or build/bench/quick/ for a quick run.
	Markdown   string
	ResultsDir string
	// WaitQuiet waits up to this long for the 1-minute load average to
	// fall below QuietThreshold before measuring.
	WaitQuiet      time.Duration
	QuietThreshold float64
	Log            io.Writer // progress; default os.Stderr
}

// Run measures everything and writes the report. The returned Run holds
// the numbers, also when writing failed.
func Run(ctx context.Context, o Options) (*results.Run, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Log, "%s kfwbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	run := &results.Run{Quick: o.Quick, Started: time.Now(), Commands: reproduce(o.Quick)}
	kernel, err := lab.FindKernel(o.Repo, lab.Generic)
	if err != nil {
		return nil, err
	}
	ko := lab.ModulePath(o.Repo, kernel.Release)
	if _, err := os.Stat(ko); err != nil {
		return nil, fmt.Errorf("kfw.ko for %s not built (run make modules): %w", kernel.Release, err)
	}
	if err := os.MkdirAll(o.ResultsDir, 0o755); err != nil {
		return nil, err
	}

	run.Machine = describeMachine(ctx)
	run.Machine.QuietThreshold = o.QuietThreshold
	if o.WaitQuiet > 0 {
		run.Machine.QuietWaited, run.Machine.QuietReached = waitQuiet(ctx, o.WaitQuiet, o.QuietThreshold, logf)
	}
	run.Machine.LoadStart = loadAvg()

	bins, err := buildBinaries(ctx, o.Repo, logf)
	if err != nil {
		return run, err
	}

	logf("Go micro-benchmarks (%s)", strings.Join(goBenchPackages, " "))
	raw, err := os.Create(filepath.Join(o.ResultsDir, "go-bench.txt"))
	if err != nil {
		return run, err
	}
	run.GoBenchCmd = "go " + strings.Join(goBenchArgs(o.Quick), " ")
	run.GoBench, err = runGoBench(ctx, goCommand(), o.Repo, o.Quick, raw)
	raw.Close()
	if err != nil {
		return run, err
	}

	logf("native scrapes: kfw_exporter on a 1000-rule /proc fixture vs node_exporter")
	if run.HostScrape, err = hostScrapes(ctx, bins.exporter, o.Quick); err != nil {
		return run, fmt.Errorf("host scrapes: %w", err)
	}

	logf("lab VM (%s, %s)", kernel.Name, kernel.Release)
	err = runGuest(ctx, o, kernel, bins, run, logf)
	run.Machine.LoadEnd = loadAvg()
	run.Elapsed = time.Since(run.Started)
	// Whatever was measured is kept, also after a failure in the VM.
	if jerr := writeJSON(filepath.Join(o.ResultsDir, "run.json"), run); err == nil {
		err = jerr
	}
	if err != nil {
		return run, err
	}
	md, err := report.Markdown(run, o.ResultsDir, o.Repo)
	if err != nil {
		return run, err
	}
	if err := os.WriteFile(o.Markdown, []byte(md), 0o644); err != nil {
		return run, err
	}
	logf("wrote %s and %s in %s", o.Markdown, o.ResultsDir, run.Elapsed.Round(time.Second))
	return run, nil
}

// Render writes the report again from a run's raw results (run.json),
// after a change to the report itself: no measurement is repeated.
func Render(o Options, runJSON string) error {
	b, err := os.ReadFile(runJSON)
	if err != nil {
		return err
	}
	var run results.Run
	if err := json.Unmarshal(b, &run); err != nil {
		return fmt.Errorf("%s: %w", runJSON, err)
	}
	o.Quick = run.Quick
	if err := o.defaults(); err != nil {
		return err
	}
	md, err := report.Markdown(&run, o.ResultsDir, o.Repo)
	if err != nil {
		return err
	}
	return os.WriteFile(o.Markdown, []byte(md), 0o644)
}

func (o *Options) defaults() error {
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Repo == "" {
		repo, err := lab.RepoRoot()
		if err != nil {
			return err
		}
		o.Repo = repo
	}
	quickDir := filepath.Join(o.Repo, "build", "bench", "quick")
	if o.Markdown == "" {
		o.Markdown = filepath.Join(o.Repo, "BENCHMARKS.md")
		if o.Quick {
			o.Markdown = filepath.Join(quickDir, "BENCHMARKS.md")
		}
	}
	if o.ResultsDir == "" {
		o.ResultsDir = filepath.Join(o.Repo, "bench", "results")
		if o.Quick {
			o.ResultsDir = filepath.Join(quickDir, "results")
		}
	}
	if o.QuietThreshold == 0 {
		o.QuietThreshold = 0.5
	}
	return nil
}

// reproduce is the commands BENCHMARKS.md gives to reproduce a run.
func reproduce(quick bool) []string {
	if quick {
		return []string{"make modules", "BENCH_QUICK=1 make bench"}
	}
	return []string{"make modules", "make bench"}
}

// goCommand is the go tool: $GO if set (the Makefile's variable), else go
// from PATH.
func goCommand() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

// binaries are the programs the VM runs, built under build/bench/bin so
// that the guest sees them.
type binaries struct{ kfwbench, exporter string }

func buildBinaries(ctx context.Context, repo string, logf func(string, ...any)) (binaries, error) {
	dir := filepath.Join(repo, "build", "bench", "bin")
	b := binaries{kfwbench: filepath.Join(dir, "kfwbench"), exporter: filepath.Join(dir, "kfw_exporter")}
	logf("building %s and %s", b.kfwbench, b.exporter)
	for pkg, out := range map[string]string{"./bench/cmd/kfwbench": b.kfwbench, ".": b.exporter} {
		cmd := exec.CommandContext(ctx, goCommand(), "build", "-trimpath", "-o", out, pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the guest runs it from the host's root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

// guestOut is where the lab mounts the run directory in the guest
// (lab/README.md): the payload writes its results there.
const guestOut = "/run/kfwlab"

// runGuest boots the VM, runs the payload and reads its results.
func runGuest(ctx context.Context, o Options, k lab.Kernel, bins binaries, run *results.Run, logf func(string, ...any)) error {
	node, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		return fmt.Errorf("node_exporter (apt-get install prometheus-node-exporter): %w", err)
	}
	logDir := filepath.Join(o.Repo, "build", "bench", "vm")
	if o.Quick {
		logDir += "-quick"
	}
	if err := os.RemoveAll(logDir); err != nil {
		return err
	}
	cmd := []string{bins.kfwbench, "guest", "-out", guestOut + "/guest.json",
		"-exporter", bins.exporter, "-node-exporter", node}
	timeout := 25 * time.Minute
	if o.Quick {
		cmd = append(cmd, "-quick")
		timeout = 10 * time.Minute
	}
	cfg := lab.Config{
		Kernel: k.Name, Command: cmd, Dir: o.Repo, Name: "bench",
		SMP: 2, MemoryMB: 1024, Timeout: timeout, LogDir: logDir,
		Stdout: o.Log, Stderr: o.Log, Repo: o.Repo,
	}
	run.Machine.VMCPUs, run.Machine.VMMemoryMB, run.Machine.LabKernel = cfg.SMP, cfg.MemoryMB, k.Release
	vm, err := lab.Start(ctx, cfg)
	if err != nil {
		return err
	}
	res, err := vm.Wait()
	if err != nil {
		return err
	}
	run.GuestRun = res.Boot + res.Run
	logf("VM: boot %s, payload and logs %s (logs: %s)", res.Boot.Round(time.Second), res.Run.Round(time.Second), logDir)
	var g results.Guest
	b, rerr := os.ReadFile(filepath.Join(logDir, "guest.json"))
	if rerr == nil {
		rerr = json.Unmarshal(b, &g)
	}
	if rerr == nil {
		run.Guest = &g
		if err := copyFile(filepath.Join(logDir, "guest.json"), filepath.Join(o.ResultsDir, "guest.json")); err != nil {
			return err
		}
		if err := copyFile(filepath.Join(logDir, "stderr"), filepath.Join(o.ResultsDir, "guest.log")); err != nil {
			return err
		}
	}
	return errors.Join(res.Err(), rerr)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
