package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

func TestLockState(t *testing.T) {
	dir := t.TempDir()
	if labRunning(dir) {
		t.Fatal("labRunning before any lock")
	}
	lock, err := lockState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !labRunning(dir) {
		t.Error("labRunning = false while locked")
	}
	_, err = lockState(dir)
	if err == nil || !strings.Contains(err.Error(), "already running (kfwrun pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second lockState = %v, want an error naming pid %d", err, os.Getpid())
	}
	lock.Close()
	if labRunning(dir) {
		t.Error("labRunning after the lock was released")
	}
	lock, err = lockState(dir)
	if err != nil {
		t.Fatalf("lockState after release: %v", err)
	}
	lock.Close()
}

// startLeftover starts a Prometheus as an earlier kfwrun would have, with
// its files under dir, not as our child's child: a leftover.
func startLeftover(t *testing.T, dir string, port int) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not installed (apt-get install prometheus, or scripts/deps.sh): %v", err)
	}
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reap it, so that it does not linger as a zombie
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd
}

func TestStaleProcessesAreFoundAndStopped(t *testing.T) {
	dir := t.TempDir()
	other := t.TempDir()
	port := labtest.FreePort(t)
	leftover := startLeftover(t, dir, port)
	unrelated := startLeftover(t, other, labtest.FreePort(t)) // another state directory's: not ours

	// Wait until it listens, so that the port check below has something
	// to find (the bound is against a hang, not a speed requirement).
	deadline := time.Now().Add(60 * time.Second)
	for checkPortFree(port, "test") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the leftover Prometheus never listened")
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := checkPortFree(port, "Prometheus")
	want := "port " + strconv.Itoa(port) + " (Prometheus) is in use by pid " + strconv.Itoa(leftover.Process.Pid) + " (prometheus)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkPortFree = %v, want %q", err, want)
	}

	procs, err := staleProcesses(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 1 || procs[0].pid != leftover.Process.Pid {
		t.Fatalf("staleProcesses = %v, want only pid %d", procs, leftover.Process.Pid)
	}
	if err := stopProcess(procs[0].pid, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if alive(leftover.Process.Pid) {
		t.Error("the leftover survived stopProcess")
	}
	if !alive(unrelated.Process.Pid) {
		t.Error("the Prometheus of another directory was stopped")
	}
	if procs, err := staleProcesses(dir); err != nil || len(procs) != 0 {
		t.Errorf("staleProcesses after the stop = %v, %v; want none", procs, err)
	}
}

func TestPortOwner(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err)
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		p, ok := portOwner(port)
		if !ok || p.pid != os.Getpid() {
			t.Errorf("%s: portOwner(%d) = %v, %v; want this process (pid %d)", network, port, p, ok, os.Getpid())
		}
		ln.Close()
		if p, ok := portOwner(port); ok {
			t.Errorf("%s: portOwner(%d) after close = %v", network, port, p)
		}
	}
}
