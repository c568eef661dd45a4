//go:build !labvm

package smoke

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the in-VM smoke tests (smoke_test.go) on the lab kernels.
func TestLab(t *testing.T) { lab.RunSuite(t, lab.Suite{Name: "smoke", NoModule: true}) }

// startHarnessVM boots a generic-kernel VM for the tests of the harness
// itself.
func startHarnessVM(t *testing.T, cfg lab.Config) *lab.VM {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a lab VM: not with -short")
	}
	cfg.Name = "harness"
	vm, err := lab.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Stop()
		if !t.Failed() { // the run failed on purpose: its logs are of no use
			os.RemoveAll(vm.LogDir)
		}
	})
	return vm
}

func runHarnessVM(t *testing.T, timeout time.Duration, command ...string) (*lab.Result, error) {
	t.Helper()
	return startHarnessVM(t, lab.Config{Command: command, Timeout: timeout}).Wait()
}

// TestHarnessFailsOnKernelBUG proves that a kernel log line with "BUG:" fails
// a run whose payload succeeds.
func TestHarnessFailsOnKernelBUG(t *testing.T) {
	const bug = "BUG: kfw lab harness self-test"
	res, err := runHarnessVM(t, 5*time.Minute, "sh", "-c", "echo '<2>"+bug+"' >/dev/kmsg")
	if err != nil {
		t.Fatalf("the run did not complete: %v", err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("payload exit status %d, want 0; stderr: %s", res.ExitCode, res.Stderr)
	}
	err = res.Err()
	if err == nil || !strings.Contains(err.Error(), bug) {
		t.Fatalf("Result.Err() = %v, want a failure naming %q", err, bug)
	}
	t.Logf("reported as expected: %v", err)
}

// TestHarnessFailsOnTimeout proves that the watchdog stops a hung payload
// and reports the console.
func TestHarnessFailsOnTimeout(t *testing.T) {
	_, err := runHarnessVM(t, 45*time.Second, "sleep", "3600")
	if !errors.Is(err, lab.ErrTimeout) {
		t.Fatalf("Wait() = %v, want an error wrapping lab.ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), "last console lines") || !strings.Contains(err.Error(), "kfwlab: payload start") {
		t.Fatalf("the timeout report lacks the console tail showing the payload's start:\n%v", err)
	}
	t.Logf("reported as expected: %v", err)
}

// TestHarnessStopsAWedgedGuest proves that a guest whose kernel reports a
// soft lockup is stopped soon after, not when the run's timeout passes,
// and that the failure names the report.
func TestHarnessStopsAWedgedGuest(t *testing.T) {
	const lockup = "watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kfw lab harness self-test]"
	_, err := runHarnessVM(t, 10*time.Minute, "sh", "-c", "echo '<0>"+lockup+"' >/dev/kmsg && sleep 3600")
	if !errors.Is(err, lab.ErrWedged) {
		t.Fatalf("Wait() = %v, want an error wrapping lab.ErrWedged", err)
	}
	if !strings.Contains(err.Error(), lockup) {
		t.Fatalf("the report does not name the soft lockup:\n%v", err)
	}
	t.Logf("reported as expected: %v", err)
}

// TestHarnessForwardsAPort serves one TCP connection in the guest and reads
// it from the host through a port forward.
func TestHarnessForwardsAPort(t *testing.T) {
	const greeting = "hello through the port forward"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port // free now; qemu takes it over
	ln.Close()
	vm := startHarnessVM(t, lab.Config{
		Forwards: []lab.Forward{{Host: port, Guest: 8080}},
		Command: []string{"sh", "-c", "ip -4 address show dev eth0 | grep -q 'inet 10.0.2.15/24' && " +
			"echo '" + greeting + "' | busybox nc -l -p 8080"},
		Timeout: 3 * time.Minute,
	})
	type waited struct {
		res *lab.Result
		err error
	}
	done := make(chan waited, 1)
	go func() {
		res, err := vm.Wait()
		done <- waited{res, err}
	}()
	// qemu accepts on the host port before the guest listens, then closes
	// the connection: retry until the guest answers or the VM ends.
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var got string
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			data, _ := io.ReadAll(c)
			c.Close()
			got = string(data)
		}
		if got != "" {
			break
		}
		select {
		case w := <-done:
			t.Fatalf("the VM ended before the host read the greeting: %v; %v", w.err, w.res.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if got != greeting+"\n" {
		t.Errorf("read %q through the forward, want %q", got, greeting+"\n")
	}
	w := <-done
	if w.err != nil {
		t.Fatal(w.err)
	}
	if err := w.res.Err(); err != nil {
		t.Error(err)
	}
}
