//go:build labvm

// Package stress runs kfw under the load that the lab's PREEMPT_RT and
// debug (KASAN, lockdep, kmemleak, UBSAN) kernels make meaningful, on two
// CPUs (issue 8):
//
//   - TestChurnUnderTraffic: one process changes the rule table in a tight
//     loop, through /proc/kfw/rules and netlink, while paced traffic flows
//     on both CPUs, readers walk every /proc file and the rule dump, and a
//     listener is subscribed. Quiet windows between the churn phases send
//     known traffic with no update in flight: every counter moves exactly.
//   - TestReloadCycles: 20 rmmod/insmod cycles under traffic while
//     kfw_exporter is scraped and a listener is subscribed.
//
// The harness fails the run on any kernel report (and on the debug kernel
// on a kmemleak report after the suite); each test also checks the kernel
// log itself, so a report is pinned to the test that caused it.
package stress

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hangLimit bounds every wait for the kernel or the exporter: a slow
// emulated machine gets there well within it, a broken one never does.
// Nothing is asserted about time.
const hangLimit = 120 * time.Second

// workload is how much the tests do on one lab kernel.
type workload struct {
	rounds      int           // churn phases, each followed by a quiet window
	updates     int           // transactions per churn phase, at least
	churnSends  int           // datagrams per CPU per churn phase, at least
	quietPerCPU int           // datagrams per CPU and target in a quiet window
	reloads     int           // rmmod/insmod cycles
	pause       time.Duration // between two datagrams of a paced sender
	scrapeEvery time.Duration // between two scrapes of the exporter
}

// sizeFor sizes the workloads for a kernel. The debug kernel runs
// everything 3-5 times slower than the generic one (KASAN, lockdep and
// kmemleak under TCG), so it gets fewer and shorter churn phases, and its
// senders and scraper pause longer, to keep the suite well under 15
// minutes there and the guest's watchdogs quiet. The 20 reload cycles of
// issue 8 are the same everywhere.
func sizeFor(kernel string) workload {
	w := workload{
		rounds:      8,
		updates:     1000,
		churnSends:  1500,
		quietPerCPU: 100,
		reloads:     20,
		pause:       100 * time.Microsecond,
		scrapeEvery: 100 * time.Millisecond,
	}
	if kernel == "debug" {
		w.rounds, w.updates, w.churnSends, w.quietPerCPU = 8, 800, 800, 50
		w.pause, w.scrapeEvery = 500*time.Microsecond, 250*time.Millisecond
	}
	return w
}

// sizes returns the workload for the running kernel and logs it.
func sizes(t *testing.T) workload {
	t.Helper()
	w := sizeFor(guest.Kernel())
	t.Logf("kernel %q: %+v", guest.Kernel(), w)
	return w
}

// twoCPUs fails the test unless the VM has at least two CPUs: the point is
// traffic on both while the table changes (lab contract: -smp 2).
func twoCPUs(t *testing.T) int {
	t.Helper()
	n := runtime.NumCPU()
	if n < 2 {
		t.Fatalf("the lab VM has %d CPU: the stress tests need two (lab contract: -smp 2)", n)
	}
	return n
}

// moduleRefcount reads the module's reference count from sysfs.
func moduleRefcount() (string, error) {
	b, err := os.ReadFile("/sys/module/" + guest.ModuleName + "/refcnt")
	return strings.TrimSpace(string(b)), err
}

// netnsPrefix starts the names of the suite's network namespaces.
const netnsPrefix = "kfwst"

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends: the test's traffic is alone there.
func newNetNS(t *testing.T) string { return labtest.NewNetNS(t, netnsPrefix) }

// waitFor polls cond every 10 ms until it holds, failing after hangLimit
// with the last state cond described.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	labtest.WaitFor(t, hangLimit, 10*time.Millisecond, what, cond)
}

// cmdCtx is a context for one command, bounded by hangLimit.
func cmdCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), hangLimit)
}

var procKFW = filepath.Join("/proc", abi.ProcDir)

func readProc(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(procKFW, name))
}

func mustReadProc(t *testing.T, name string) string {
	t.Helper()
	b, err := readProc(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeRules writes text to /proc/kfw/rules in one write(2): one
// transaction.
func writeRules(text string) error {
	fd, err := unix.Open(filepath.Join(procKFW, abi.ProcRules), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", abi.ProcRules, err)
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(text))
	if err != nil {
		return fmt.Errorf("write %s: %w", abi.ProcRules, err)
	}
	if n != len(text) {
		return fmt.Errorf("write %s: %d of %d bytes", abi.ProcRules, n, len(text))
	}
	return nil
}

// hookKey names a row of /proc/kfw/hooks.
type hookKey struct {
	family  uint8
	hook    abi.Hook
	verdict abi.Action
}

func (k hookKey) String() string {
	return fmt.Sprintf("%s %s %s", abi.FamilyName(k.family), k.hook, k.verdict)
}

// counters is every counter of /proc/kfw, read while nothing moves.
type counters struct {
	stats abi.ModuleStats
	hooks map[hookKey]abi.ProcHookCounters
	rules map[uint32]abi.ProcRuleCounters
}

func parseStats(b []byte) (abi.ModuleStats, error) {
	return abi.ParseProcStats(strings.NewReader(string(b)), abi.ProcStats)
}

func parseHooks(b []byte) (map[hookKey]abi.ProcHookCounters, error) {
	rows, err := abi.ParseProcHooks(strings.NewReader(string(b)), abi.ProcHooks)
	if err != nil {
		return nil, err
	}
	m := make(map[hookKey]abi.ProcHookCounters, len(rows))
	for _, r := range rows {
		m[hookKey{r.Family, r.Hook, r.Verdict}] = r
	}
	return m, nil
}

func parseRuleStats(b []byte) (map[uint32]abi.ProcRuleCounters, error) {
	m := map[uint32]abi.ProcRuleCounters{}
	err := abi.ParseProcRuleStats(strings.NewReader(string(b)), abi.ProcRuleStats, func(c abi.ProcRuleCounters) error {
		m[c.ID] = c
		return nil
	})
	return m, err
}

func readStats(t *testing.T) abi.ModuleStats {
	t.Helper()
	st, err := parseStats([]byte(mustReadProc(t, abi.ProcStats)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readHooks(t *testing.T) map[hookKey]abi.ProcHookCounters {
	t.Helper()
	h, err := parseHooks([]byte(mustReadProc(t, abi.ProcHooks)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func readCounters(t *testing.T) counters {
	t.Helper()
	c := counters{stats: readStats(t), hooks: readHooks(t)}
	var err error
	if c.rules, err = parseRuleStats([]byte(mustReadProc(t, abi.ProcRuleStats))); err != nil {
		t.Fatal(err)
	}
	return c
}
