package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
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
		exporterPort:   labtest.FreePort(t),
		agentPort:      labtest.FreePort(t),
		prometheusPort: labtest.FreePort(t),
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

	// Once more: when ready, run the commands the instructions suggest,
	// then interrupt it as Ctrl-C does.
	out.reset()
	cfg.runFor = 0
	ctx, cancel := context.WithCancel(context.Background())
	examples := make(chan error, 1)
	var once sync.Once
	out.onLine = func(line string) {
		if strings.HasPrefix(line, "The kfw lab is running.") {
			once.Do(func() {
				go func() {
					examples <- runExamples(t, cfg)
					cancel()
				}()
			})
		}
	}
	if err := up(ctx, cfg); err != nil {
		t.Fatalf("make run, interrupted when ready: %v", err)
	}
	select {
	case err := <-examples:
		if err != nil {
			t.Error(err)
		}
	default:
		t.Error("the lab never said it was running")
	}
	if !strings.Contains(out.String(), "interrupted: stopping the VM and Prometheus") {
		t.Errorf("the second run was not interrupted when ready:\n%s", out.String())
	}
	assertNothingLeft(t, cfg)
	if !t.Failed() {
		os.RemoveAll(stateDir)
	}
}

// runExamples runs the commands the instructions suggest through the
// agent, as kfwrun exec does with the state the lab recorded. An endless
// one is interrupted after its first line of output.
func runExamples(t *testing.T, cfg config) error {
	st, err := readState(cfg.stateDir)
	if err != nil {
		return err
	}
	if !labRunning(cfg.stateDir) {
		return errors.New("kfwrun exec would say the lab is not running")
	}
	token, err := os.ReadFile(st.TokenFile)
	if err != nil {
		return err
	}
	for _, ex := range vmExamples {
		ctx, cancel := context.WithCancel(context.Background())
		stdout := firstLine{onLine: func() {}}
		if ex.endless {
			stdout.onLine = cancel
		}
		var stderr strings.Builder
		code, err := remoteExec(ctx, st.AgentAddress, strings.TrimSpace(string(token)), ex.argv, nil, &stdout, &stderr)
		cancel()
		switch {
		case ex.endless && errors.Is(err, context.Canceled) && stdout.seen():
			t.Logf("kfwrun exec %s: %s...", strings.Join(ex.argv, " "), stdout.first())
		case ex.endless:
			return fmt.Errorf("kfwrun exec %s: %v before any output; stderr: %s", strings.Join(ex.argv, " "), err, stderr.String())
		case err != nil || code != 0 || !stdout.seen():
			return fmt.Errorf("kfwrun exec %s: status %d, %v; stderr: %s", strings.Join(ex.argv, " "), code, err, stderr.String())
		default:
			t.Logf("kfwrun exec %s: %s...", strings.Join(ex.argv, " "), stdout.first())
		}
	}
	return nil
}

// firstLine records output and calls onLine once a line is complete.
type firstLine struct {
	mu     sync.Mutex
	buf    strings.Builder
	onLine func()
	done   bool
}

func (f *firstLine) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf.Write(p)
	if !f.done && strings.Contains(f.buf.String(), "\n") {
		f.done = true
		f.onLine()
	}
	return len(p), nil
}

func (f *firstLine) seen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

func (f *firstLine) first() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	line, _, _ := strings.Cut(f.buf.String(), "\n")
	return line
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
