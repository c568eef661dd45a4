package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestMakeRun boots the lab as make run does, twice, in its own state
// directory and on free ports (a make run of someone else may be up):
//
//  1. With a Prometheus left over from an earlier, killed run holding the
//     Prometheus port, up must stop it, come up, pass its checks (kfw_up,
//     rule counters, events when kfw.ko has them, Prometheus's up{job="kfw"}
//     and rules, the agent) after 15 s again, and stop.
//  2. Up again, interrupted once ready, as Ctrl-C does.
//
// After each, nothing it started may run and its ports must be free.
// Like the lab suites it needs make modules, and skips with -short.
// $KFW_RUN_MODULE overrides the kfw.ko to load.
func TestMakeRun(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a lab VM: not with -short")
	}
	repo := repoRoot(t)
	if err := os.MkdirAll(filepath.Join(repo, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Under build/, where the guest sees it; not under build/run, so that
	// a running make run's stale-process scan cannot mistake ours.
	stateDir, err := os.MkdirTemp(filepath.Join(repo, "build"), "run-test-")
	if err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(stateDir, "bin")
	buildGuestBinaries(t, repo, binDir)

	var out testLog
	out.t = t
	cfg := config{
		repo:           repo,
		stateDir:       stateDir,
		binDir:         binDir,
		kernel:         lab.Generic,
		module:         os.Getenv("KFW_RUN_MODULE"),
		prometheus:     "prometheus",
		exporterPort:   freePort(t),
		agentPort:      freePort(t),
		prometheusPort: freePort(t),
		runFor:         15 * time.Second,
		events:         "auto",
		timeout:        10 * time.Minute,
		out:            &out,
	}

	leftover := startLeftover(t, stateDir, cfg.prometheusPort)
	deadline := time.Now().Add(time.Minute) // against a hang, not a speed requirement
	for checkPortFree(cfg.prometheusPort, "test") == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if err := up(context.Background(), cfg); err != nil {
		t.Fatalf("make run with --for %v: %v", cfg.runFor, err)
	}
	if !strings.Contains(out.String(), "stopping pid ") || alive(leftover.Process.Pid) {
		t.Errorf("the leftover Prometheus (pid %d) was not stopped", leftover.Process.Pid)
	}
	assertNothingLeft(t, cfg)

	// Once more, interrupted when ready.
	out.reset()
	cfg.runFor = 0
	ctx, cancel := context.WithCancel(context.Background())
	out.onLine = func(line string) {
		if strings.HasPrefix(line, "The kfw lab is running.") {
			cancel()
		}
	}
	if err := up(ctx, cfg); err != nil {
		t.Fatalf("make run, interrupted when ready: %v", err)
	}
	if !strings.Contains(out.String(), "interrupted: stopping the VM and Prometheus") {
		t.Errorf("the second run was not interrupted when ready:\n%s", out.String())
	}
	assertNothingLeft(t, cfg)
	if !t.Failed() {
		os.RemoveAll(stateDir)
	}
}

// buildGuestBinaries builds what guest.sh runs, as make run does.
func buildGuestBinaries(t *testing.T, repo, dir string) {
	t.Helper()
	for name, pkg := range map[string]string{
		"kfw_exporter": ".", "kfwctl": "./cmd/kfwctl", "kfwtraffic": "./cmd/kfwtraffic", "kfwrun": "./cmd/kfwrun",
	} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
}

// assertNothingLeft fails if a process of the run survives, a port stays
// taken or the state file remains.
func assertNothingLeft(t *testing.T, cfg config) {
	t.Helper()
	procs, err := staleProcesses(cfg.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) > 0 {
		t.Errorf("still running after up returned: %v", procs)
	}
	for _, port := range []int{cfg.exporterPort, cfg.agentPort, cfg.prometheusPort} {
		if err := checkPortFree(port, "after the run"); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.stateDir, stateFile)); err == nil {
		t.Errorf("%s remains after the run", stateFile)
	}
	if labRunning(cfg.stateDir) {
		t.Error("the state directory is still locked")
	}
}

// testLog passes kfwrun's output to t.Log line by line and keeps it.
type testLog struct {
	t      *testing.T
	onLine func(string)

	mu   sync.Mutex
	all  strings.Builder
	part string
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.part += string(p)
	for {
		line, rest, ok := strings.Cut(l.part, "\n")
		if !ok {
			return len(p), nil
		}
		l.part = rest
		l.t.Log(line)
		if l.onLine != nil {
			l.onLine(line)
		}
	}
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

func (l *testLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Reset()
	l.part = ""
}
