//go:build !labvm

package smoke

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the in-VM smoke tests (smoke_test.go) on the lab kernels.
func TestLab(t *testing.T) { lab.RunSuite(t, lab.Suite{Name: "smoke", NoModule: true}) }

// runHarnessVM runs a payload in a generic-kernel VM for the tests of the
// harness itself.
func runHarnessVM(t *testing.T, timeout time.Duration, command ...string) (*lab.Result, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a lab VM: not with -short")
	}
	vm, err := lab.Start(context.Background(), lab.Config{Name: "harness", Command: command, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return vm.Wait()
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
