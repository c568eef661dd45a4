//go:build labvm

package kmod

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
)

var procKFW = filepath.Join("/proc", abi.ProcDir)

func procPath(name string) string { return filepath.Join(procKFW, name) }

func readProc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := readProcErr(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readProcErr reads a /proc/kfw file; for goroutines other than the test's.
func readProcErr(name string) ([]byte, error) { return os.ReadFile(procPath(name)) }

// readRules returns /proc/kfw/rules.
func readRules(t *testing.T) string {
	t.Helper()
	return string(readProc(t, abi.ProcRules))
}

// writeRules writes text to /proc/kfw/rules in exactly one write(2), as
// the ABI defines a transaction, and returns the errno (nil on success).
func writeRules(text string) error {
	fd, err := unix.Open(procPath(abi.ProcRules), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(text))
	if err != nil {
		return err
	}
	if n != len(text) {
		return fmt.Errorf("short write: %d of %d bytes", n, len(text))
	}
	return nil
}

// mustWriteRules writes lines (joined with newlines) as one transaction.
func mustWriteRules(t *testing.T, lines ...string) {
	t.Helper()
	if err := writeRules(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatalf("writing rules %q: %v", lines, err)
	}
}

func readStats(t *testing.T) abi.ModuleStats {
	t.Helper()
	st, err := abi.ParseProcStats(bytes.NewReader(readProc(t, abi.ProcStats)), procPath(abi.ProcStats))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func generation(t *testing.T) uint64 {
	t.Helper()
	return readStats(t).Generation
}

// hookKey names a row of /proc/kfw/hooks.
type hookKey struct {
	family  uint8
	hook    abi.Hook
	verdict abi.Action
}

func (k hookKey) String() string {
	return abi.FamilyName(k.family) + " " + k.hook.String() + " " + k.verdict.String()
}

// counts is a packets and bytes pair.
type counts struct{ packets, bytes uint64 }

func (c counts) String() string { return fmt.Sprintf("%d packets %d bytes", c.packets, c.bytes) }

func readHooks(t *testing.T) map[hookKey]counts {
	t.Helper()
	rows, err := abi.ParseProcHooks(bytes.NewReader(readProc(t, abi.ProcHooks)), procPath(abi.ProcHooks))
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[hookKey]counts, len(rows))
	for _, r := range rows {
		m[hookKey{r.Family, r.Hook, r.Verdict}] = counts{r.Packets, r.Bytes}
	}
	return m
}

// checkHookDelta fails unless every row of /proc/kfw/hooks moved from
// before to after by exactly want (rows not in want: by zero).
func checkHookDelta(t *testing.T, before, after map[hookKey]counts, want map[hookKey]counts) {
	t.Helper()
	for k, b := range before {
		a := after[k]
		got := counts{a.packets - b.packets, a.bytes - b.bytes}
		if got != want[k] {
			t.Errorf("hooks %s: moved by %v, want %v", k, got, want[k])
		}
	}
}

func readRuleStats(t *testing.T) map[uint32]abi.ProcRuleCounters {
	t.Helper()
	m := make(map[uint32]abi.ProcRuleCounters)
	err := abi.ParseProcRuleStats(bytes.NewReader(readProc(t, abi.ProcRuleStats)), procPath(abi.ProcRuleStats),
		func(rc abi.ProcRuleCounters) error {
			m[rc.ID] = rc
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ruleCounts returns a rule's packets and bytes; the rule must exist.
func ruleCounts(t *testing.T, id uint32) counts {
	t.Helper()
	rc, ok := readRuleStats(t)[id]
	if !ok {
		t.Fatalf("rule %d is not in %s", id, abi.ProcRuleStats)
	}
	return counts{rc.Packets, rc.Bytes}
}

// checkRuleCounts fails unless each rule's counters are exactly want.
func checkRuleCounts(t *testing.T, want map[uint32]counts) {
	t.Helper()
	stats := readRuleStats(t)
	for id, w := range want {
		rc, ok := stats[id]
		if !ok {
			t.Errorf("rule %d is not in %s", id, abi.ProcRuleStats)
			continue
		}
		if got := (counts{rc.Packets, rc.Bytes}); got != w {
			t.Errorf("rule %d: %v, want %v", id, got, w)
		}
	}
}

// waitRulePackets waits until rule id has counted at least n packets.
func waitRulePackets(t *testing.T, id uint32, n uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("rule %d to count %d packets", id, n), func() (bool, string) {
		c := ruleCounts(t, id)
		return c.packets >= n, c.String()
	})
}

// isErrno reports whether err is the errno want.
func isErrno(err error, want unix.Errno) bool {
	var errno unix.Errno
	return errors.As(err, &errno) && errno == want
}
