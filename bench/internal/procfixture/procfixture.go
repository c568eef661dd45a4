// Package procfixture writes /proc/kfw trees of any table size, in the
// format of docs/ABI.md, for the scrape benchmarks: a loaded module whose
// table holds n rules with ids 10, 20, ... n*10, alternating drop and
// accept, with counters that differ per rule (as collector/fixtures'
// rules4096 tree, at any size).
package procfixture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// Instance is the module instance the trees carry.
const Instance = 0x5f3a9c0d12e4b7a8

// RuleID is the id of the i-th rule (1-based) of a tree.
func RuleID(i int) uint32 { return uint32(i * 10) }

// Write writes procRoot/kfw/{stats,hooks,rule_stats} for a table of n
// rules, n at most 6553 (ids stay below 65536).
func Write(procRoot string, n int) error {
	if n < 0 || RuleID(n) > 65535 {
		return fmt.Errorf("procfixture: %d rules: want 0..6553", n)
	}
	dir := filepath.Join(procRoot, abi.ProcDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		abi.ProcStats:     stats(n),
		abi.ProcHooks:     hooks(),
		abi.ProcRuleStats: ruleStats(n),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func stats(n int) string {
	return fmt.Sprintf(`abi_version 1
version 0.1.0
instance %s
generation 7
rules %d
max_rules %d
events_generated 1200
events_suppressed 35
events_queue_overflows 2
events_messages_sent 58
events_no_listener 1
events_alloc_failures 0
events_nobufs 3
`, abi.FormatInstance(Instance), n, max(n, 4096))
}

func hooks() string {
	var b strings.Builder
	b.WriteString("family hook verdict packets bytes\n")
	i := 0
	for _, fam := range []string{"ipv4", "ipv6"} {
		for _, hook := range abi.Hooks() {
			for _, verdict := range []abi.Action{abi.ActionAccept, abi.ActionDrop} {
				i++
				fmt.Fprintf(&b, "%s %s %s %d %d\n", fam, hook, verdict, i*1511, i*1511*92)
			}
		}
	}
	return b.String()
}

func ruleStats(n int) string {
	var b strings.Builder
	b.WriteString("id action packets bytes events suppressed\n")
	for i := 1; i <= n; i++ {
		action := abi.ActionDrop
		if i%2 == 0 {
			action = abi.ActionAccept
		}
		fmt.Fprintf(&b, "%d %s %d %d %d %d\n", RuleID(i), action, i*1009, i*1009*84, i%97, i%13)
	}
	return b.String()
}
