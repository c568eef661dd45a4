package procfixture

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// The trees must parse with the ABI's own parsers, or the benchmarks would
// measure error paths.
func TestWriteParses(t *testing.T) {
	root := t.TempDir()
	const n = 1000
	if err := Write(root, n); err != nil {
		t.Fatal(err)
	}
	open := func(name string) *os.File {
		f, err := os.Open(filepath.Join(root, abi.ProcDir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	st, err := abi.ParseProcStats(open(abi.ProcStats), abi.ProcStats)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rules != n || st.Instance != Instance {
		t.Errorf("stats: %+v", st)
	}
	hk, err := abi.ParseProcHooks(open(abi.ProcHooks), abi.ProcHooks)
	if err != nil || len(hk) != 12 {
		t.Fatalf("hooks: %d rows, %v", len(hk), err)
	}
	var ids []uint32
	err = abi.ParseProcRuleStats(open(abi.ProcRuleStats), abi.ProcRuleStats, func(r abi.ProcRuleCounters) error {
		ids = append(ids, r.ID)
		return nil
	})
	if err != nil || len(ids) != n || ids[n-1] != RuleID(n) {
		t.Fatalf("rule_stats: %d rows, last %v, %v", len(ids), ids[len(ids)-1:], err)
	}
	if err := Write(root, 6554); err == nil {
		t.Error("6554 rules: ids past 65535 accepted")
	}
}
