package collector

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
)

var updateFixtures = flag.Bool("update-fixtures", false, "rewrite the generated trees under fixtures/ (rules4096, garbled/*)")

// Fixture trees under fixtures/, each a procfs mount point holding kfw/:
//
//	proc       a loaded module with a few rules (written by hand)
//	future     proc as a later release of ABI version 1 may print it: new
//	           stats names, lines reordered, new columns (by hand)
//	empty      a fresh module: empty table, zero counters (by hand)
//	abi2       a module speaking ABI version 2, in another format (by hand)
//	rules4096  a full default-sized table (generated here)
//	garbled/*  proc with one file broken (generated here)
const fixturesDir = "fixtures"

func fixturePath(name string) string { return filepath.Join(fixturesDir, name) }

type fixtureFiles map[string]string // file name in kfw/ → content

// garbledFixtures break one file of proc each.
var garbledFixtures = []struct {
	name, file string
	breakIt    func(string) string
}{
	{"stats-garbled-line", abi.ProcStats, func(s string) string { return strings.Replace(s, "rules 5\n", "rules5\n", 1) }},
	{"stats-truncated", abi.ProcStats, func(s string) string { return s[:strings.Index(s, "rules 5")+3] }},
	{"hooks-truncated", abi.ProcHooks, func(s string) string { return strings.Join(strings.SplitAfter(s, "\n")[:8], "") }},
	{"hooks-missing-column", abi.ProcHooks, func(s string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(s, "\n") {
			if f := strings.Fields(l); len(f) == 5 {
				b.WriteString(strings.Join(f[:4], " ") + "\n")
			}
		}
		return b.String()
	}},
	{"rule_stats-non-numeric", abi.ProcRuleStats, func(s string) string {
		return strings.Replace(s, "\n30 drop 0 0 0 0\n", "\n30 drop zero 0 0 0\n", 1)
	}},
	{"rule_stats-truncated", abi.ProcRuleStats, func(s string) string { return s[:len(s)-12] }},
}

func readFixture(t *testing.T, name string) fixtureFiles {
	t.Helper()
	files := fixtureFiles{}
	for _, f := range []string{abi.ProcStats, abi.ProcHooks, abi.ProcRuleStats} {
		b, err := os.ReadFile(filepath.Join(fixturePath(name), abi.ProcDir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	return files
}

// rules4096Fixture is a module at its default max_rules with a full table:
// ids 10, 20, ... 40960, actions alternating, counters that differ per rule.
func rules4096Fixture(proc fixtureFiles) fixtureFiles {
	const n = 4096
	var rs strings.Builder
	rs.WriteString("id action packets bytes events suppressed\n")
	for i := 1; i <= n; i++ {
		action := abi.ActionDrop
		if i%2 == 0 {
			action = abi.ActionAccept
		}
		fmt.Fprintf(&rs, "%d %s %d %d %d %d\n", i*10, action, i*1009, i*1009*84, i%97, i%13)
	}
	stats := strings.Replace(proc[abi.ProcStats], "rules 5\n", fmt.Sprintf("rules %d\n", n), 1)
	stats = strings.Replace(stats, "generation 7\n", "generation 4096\n", 1)
	return fixtureFiles{abi.ProcStats: stats, abi.ProcHooks: proc[abi.ProcHooks], abi.ProcRuleStats: rs.String()}
}

func generatedFixtures(t *testing.T) map[string]fixtureFiles {
	proc := readFixture(t, "proc")
	out := map[string]fixtureFiles{"rules4096": rules4096Fixture(proc)}
	for _, g := range garbledFixtures {
		files := fixtureFiles{}
		for k, v := range proc {
			files[k] = v
		}
		files[g.file] = g.breakIt(proc[g.file])
		if files[g.file] == proc[g.file] {
			t.Fatalf("garbled/%s: %s unchanged", g.name, g.file)
		}
		out[filepath.Join("garbled", g.name)] = files
	}
	return out
}

// TestGeneratedFixtures keeps the committed generated trees in step with the
// code above; -update-fixtures rewrites them.
func TestGeneratedFixtures(t *testing.T) {
	for dir, files := range generatedFixtures(t) {
		for name, want := range files {
			path := filepath.Join(fixturePath(dir), abi.ProcDir, name)
			if *updateFixtures {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s is not what the generator makes (%v): run go test ./collector -run TestGeneratedFixtures -update-fixtures", path, err)
			}
		}
	}
}
