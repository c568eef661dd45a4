package collector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/kfwlabs/kfw_exporter/abi"
)

const rulesWantProc = `# HELP kfw_rule_packets_total Packets the rule matched, at any hook, both families.
# TYPE kfw_rule_packets_total counter
kfw_rule_packets_total{action="accept",rule="10"} 310
kfw_rule_packets_total{action="drop",rule="20"} 12
kfw_rule_packets_total{action="drop",rule="30"} 0
kfw_rule_packets_total{action="drop",rule="40"} 3
kfw_rule_packets_total{action="accept",rule="65535"} 9.8765432101e+10
# HELP kfw_rule_bytes_total Bytes (IP packet length) of the packets the rule matched.
# TYPE kfw_rule_bytes_total counter
kfw_rule_bytes_total{action="accept",rule="10"} 25340
kfw_rule_bytes_total{action="drop",rule="20"} 1008
kfw_rule_bytes_total{action="drop",rule="30"} 0
kfw_rule_bytes_total{action="drop",rule="40"} 312
kfw_rule_bytes_total{action="accept",rule="65535"} 1.23456789012345e+14
# HELP kfw_rule_events_generated_total Events generated for the rule (drop events, or hit events with log=1).
# TYPE kfw_rule_events_generated_total counter
kfw_rule_events_generated_total{action="accept",rule="10"} 0
kfw_rule_events_generated_total{action="drop",rule="20"} 12
kfw_rule_events_generated_total{action="drop",rule="30"} 0
kfw_rule_events_generated_total{action="drop",rule="40"} 3
kfw_rule_events_generated_total{action="accept",rule="65535"} 5
# HELP kfw_rule_events_suppressed_total Events of the rule refused by its own rate limit or by the global ceiling.
# TYPE kfw_rule_events_suppressed_total counter
kfw_rule_events_suppressed_total{action="accept",rule="10"} 0
kfw_rule_events_suppressed_total{action="drop",rule="20"} 0
kfw_rule_events_suppressed_total{action="drop",rule="30"} 0
kfw_rule_events_suppressed_total{action="drop",rule="40"} 0
kfw_rule_events_suppressed_total{action="accept",rule="65535"} 30
`

// onlyRules keeps the samples of the given rules.
func onlyRules(s string, rules ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		keep := strings.HasPrefix(l, "#")
		for _, r := range rules {
			keep = keep || strings.Contains(l, `rule="`+r+`"`)
		}
		if keep {
			b.WriteString(l)
		}
	}
	return b.String()
}

func TestRulesCollector(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    string
		success int
		log     string // an excerpt of the error log line, "" when none is wanted
	}{
		{"proc", rulesWantProc, 1, ""},
		{"future", rulesWantProc, 1, ""},
		{"empty", "", 1, ""},
		{"absent", "", 0, ""},
		{"abi2", "", 0, "abi2/kfw/stats:1: unsupported ABI version 2"},
		// Rows before the bad line are exported; the collector fails.
		{"garbled/rule_stats-non-numeric", onlyRules(rulesWantProc, "10", "20"), 0,
			`rule_stats-non-numeric/kfw/rule_stats:4: packets: strconv.ParseUint: parsing \"zero\": invalid syntax`},
		{"garbled/rule_stats-truncated", onlyRules(rulesWantProc, "10", "20", "30", "40"), 0,
			`rule_stats-truncated/kfw/rule_stats:6: truncated: no newline after \"65535 accept 98765432101 123456789\"`},
		{"garbled/stats-truncated", "", 0, "stats-truncated/kfw/stats:5: truncated"},
		{"garbled/hooks-truncated", rulesWantProc, 1, ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			cfg := testConfig(tc.fixture)
			if tc.fixture == "absent" {
				cfg.ProcPath = t.TempDir()
			}
			k, logs := newTestCollector(t, cfg, "rules")
			compareCollector(t, k, tc.want+successLine("rules", tc.success))
			out := logs.String()
			if tc.log == "" && strings.Contains(out, "level=ERROR") {
				t.Errorf("unexpected error log:\n%s", out)
			}
			if tc.log != "" && !strings.Contains(out, tc.log) {
				t.Errorf("log does not contain %q:\n%s", tc.log, out)
			}
		})
	}
}

func TestRulesCollectorFullTable(t *testing.T) {
	k, _ := newTestCollector(t, testConfig("rules4096"), "rules")
	for _, name := range []string{"kfw_rule_packets_total", "kfw_rule_bytes_total",
		"kfw_rule_events_generated_total", "kfw_rule_events_suppressed_total"} {
		if n := testutil.CollectAndCount(k, name); n != 4096 {
			t.Errorf("%s: %d series, want 4096", name, n)
		}
	}
	// Spot checks against the generator: rule i*10 has i*1009 packets.
	want := `# HELP kfw_rule_packets_total Packets the rule matched, at any hook, both families.
# TYPE kfw_rule_packets_total counter
kfw_rule_packets_total{action="drop",rule="10"} 1009
kfw_rule_packets_total{action="accept",rule="20480"} 2.066432e+06
kfw_rule_packets_total{action="accept",rule="40960"} 4.132864e+06
`
	g := stableGatherer(t, k)
	got, err := testutil.GatherAndFormat(g, expfmt.TypeTextPlain, "kfw_rule_packets_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(want), "\n") {
		if !strings.Contains(string(got), l+"\n") {
			t.Errorf("missing %q", l)
		}
	}
}

// TestRulesCollectorFollowsTheTable scrapes a table as it changes: labels
// kept from the previous scrape must never outlive the rule they describe.
func TestRulesCollectorFollowsTheTable(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(fixturePath("proc"))); err != nil {
		t.Fatal(err)
	}
	k, _ := newTestCollector(t, Config{ProcPath: root}, "rules")
	packets := func() string {
		t.Helper()
		got, err := testutil.GatherAndFormat(stableGatherer(t, k), expfmt.TypeTextPlain, "kfw_rule_packets_total")
		if err != nil {
			t.Fatal(err)
		}
		var samples []string
		for _, l := range strings.Split(string(got), "\n") {
			if strings.HasPrefix(l, "kfw_rule_packets_total{") {
				samples = append(samples, strings.TrimPrefix(l, "kfw_rule_packets_total"))
			}
		}
		return strings.Join(samples, " ")
	}
	rewrite := func(rows string) {
		t.Helper()
		path := filepath.Join(root, abi.ProcDir, abi.ProcRuleStats)
		if err := os.WriteFile(path, []byte("id action packets bytes events suppressed\n"+rows), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct{ rows, want string }{
		{"10 accept 1 0 0 0\n20 drop 2 0 0 0\n30 drop 3 0 0 0\n",
			`{action="accept",rule="10"} 1 {action="drop",rule="20"} 2 {action="drop",rule="30"} 3`},
		// Same ids, rule 20 replaced by an accept rule.
		{"10 accept 1 0 0 0\n20 accept 5 0 0 0\n30 drop 3 0 0 0\n",
			`{action="accept",rule="10"} 1 {action="accept",rule="20"} 5 {action="drop",rule="30"} 3`},
		// Rule 20 deleted: 30 moves up a row.
		{"10 accept 1 0 0 0\n30 drop 3 0 0 0\n",
			`{action="accept",rule="10"} 1 {action="drop",rule="30"} 3`},
		{"10 accept 1 0 0 0\n", `{action="accept",rule="10"} 1`},
		{"", ``},
		{"7 drop 9 0 0 0\n10 accept 1 0 0 0\n", `{action="accept",rule="10"} 1 {action="drop",rule="7"} 9`},
	} {
		rewrite(step.rows)
		if got := packets(); got != step.want {
			t.Errorf("table:\n%sgot  %s\nwant %s", step.rows, got, step.want)
		}
	}
}
