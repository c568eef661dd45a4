//go:build labvm

// Package netlink tests kfw's generic netlink family inside a lab VM: the
// commands through netlinkclient and kfwctl's cli.Run, and the events
// multicast group with real packets, its rate limits and its exact loss
// accounting through module reloads. Every test loads a fresh module and
// unloads it.
package netlink

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hangLimit bounds every wait for the kernel: a slow emulated machine gets
// there well within it, a broken kernel never does. Nothing is asserted
// about time.
const hangLimit = 90 * time.Second

// ctx is a context for one command, bounded by hangLimit.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), hangLimit)
	t.Cleanup(cancel)
	return c
}

// netnsPrefix starts the names of the suite's network namespaces.
const netnsPrefix = "kfwn"

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends.
func newNetNS(t *testing.T) string { return labtest.NewNetNS(t, netnsPrefix) }

// waitFor polls cond every 10 ms until it holds, failing after hangLimit
// with the last state cond described.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	labtest.WaitFor(t, hangLimit, 10*time.Millisecond, what, cond)
}

// procRuleStats reads /proc/kfw/rule_stats.
func procRuleStats(t *testing.T) []abi.ProcRuleCounters {
	t.Helper()
	var rows []abi.ProcRuleCounters
	err := abi.ParseProcRuleStats(strings.NewReader(labtest.ReadProc(t, abi.ProcRuleStats)), abi.ProcRuleStats,
		func(c abi.ProcRuleCounters) error {
			rows = append(rows, c)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// writeRules writes lines to /proc/kfw/rules as one transaction.
func writeRules(t *testing.T, lines ...string) {
	t.Helper()
	text := strings.Join(lines, "\n") + "\n"
	fd, err := unix.Open(labtest.ProcPath(abi.ProcRules), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if n, err := unix.Write(fd, []byte(text)); err != nil || n != len(text) {
		t.Fatalf("writing rules %q: %d bytes, %v", lines, n, err)
	}
}

// setParam writes a writable module parameter.
func setParam(t *testing.T, name, value string) {
	t.Helper()
	if err := os.WriteFile("/sys/module/kfw/parameters/"+name, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}

// tableState is what a refused command must leave alone.
type tableState struct {
	rules      string
	generation uint64
}

func snapshot(t *testing.T) tableState {
	t.Helper()
	return tableState{rules: labtest.ReadProc(t, abi.ProcRules), generation: labtest.ReadProcStats(t).Generation}
}
