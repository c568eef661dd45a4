package dashboards_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/dashboards/queries"
)

const metricsDoc = "../docs/METRICS.md"

func loadQueries(t *testing.T) []queries.Query {
	t.Helper()
	qs, err := queries.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

func expand(t *testing.T, q queries.Query) string {
	t.Helper()
	expr, err := queries.Expand(q.Expr, queries.MatchAllVars())
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return expr
}

// Every expression of every rule, panel, variable and annotation parses
// with Prometheus's own parser: they are written, variables expanded, as
// recording rules of one file for `promtool check rules`. One group per
// query, named after it, so that promtool's error says which one failed.
func TestEveryQueryParses(t *testing.T) {
	qs := loadQueries(t)
	var f queries.RuleFile
	for i, q := range qs {
		f.Groups = append(f.Groups, queries.RuleGroup{
			Name:  fmt.Sprintf("%03d %s", i, q),
			Rules: []queries.Rule{{Record: fmt.Sprintf("query:check:q%03d", i), Expr: expand(t, q)}},
		})
	}
	path := filepath.Join(t.TempDir(), "queries.yml")
	writeRuleFile(t, path, f)
	if out, err := runPromtool(t, ".", "check", "rules", path); err != nil {
		t.Fatalf("promtool check rules on the %d queries: %v\n%s", len(qs), err, out)
	}
	t.Logf("%d queries parse", len(qs))
}

// The parse check catches what it should: a broken expression fails it.
func TestParseCheckCatchesErrors(t *testing.T) {
	f := queries.RuleFile{Groups: []queries.RuleGroup{{
		Name:  "broken",
		Rules: []queries.Rule{{Record: "query:check:broken", Expr: `sum by (job (kfw_up)`}},
	}}}
	path := filepath.Join(t.TempDir(), "broken.yml")
	writeRuleFile(t, path, f)
	if out, err := runPromtool(t, ".", "check", "rules", path); err == nil {
		t.Fatalf("promtool check rules accepted a broken expression:\n%s", out)
	}
}

var (
	// A metric name in docs/METRICS.md, however it is formatted: in a
	// heading, a table or backticks, possibly followed by its labels.
	documentedMetricRE = regexp.MustCompile(`\b(kfw_[a-z0-9_]*[a-z0-9])\b`)
	histogramSuffixes  = []string{"_bucket", "_sum", "_count"}
)

// documentedMetrics returns the metric names docs/METRICS.md defines.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatalf("reading the list of metrics: %v (docs/METRICS.md is written with the exporter, issue 4)", err)
	}
	names := map[string]bool{}
	for _, m := range documentedMetricRE.FindAllStringSubmatch(string(data), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("%s names no kfw_ metric", metricsDoc)
	}
	return names
}

// known says whether name is a documented metric, a series of a
// documented histogram, a series the rule files record, or Prometheus's up.
func known(name string, documented map[string]bool, recorded []string) bool {
	if name == "up" || documented[name] || slices.Contains(recorded, name) {
		return true
	}
	for _, suffix := range histogramSuffixes {
		if base, ok := strings.CutSuffix(name, suffix); ok && documented[base] {
			return true
		}
	}
	return false
}

// Every query reads only metrics that exist: those docs/METRICS.md
// documents, those our recording rules record, and up. A recording rule
// that is renamed or deleted therefore fails here instead of leaving an
// alert silent or a panel empty.
func TestEveryQueryUsesKnownMetrics(t *testing.T) {
	documented := documentedMetrics(t)
	qs := loadQueries(t)
	recorded := queries.Names(qs, queries.KindRecord)
	used := map[string]bool{}
	for _, q := range qs {
		names, err := queries.MetricNames(expand(t, q))
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: reads no metric: %s", q, q.Expr)
		}
		for _, n := range names {
			used[n] = true
			if !known(n, documented, recorded) {
				t.Errorf("%s: metric %s is neither in %s nor recorded by the rules", q, n, metricsDoc)
			}
		}
	}
	// A recording nobody reads is dead weight.
	for _, r := range recorded {
		if !used[r] {
			t.Errorf("recording rule %s is read by no alert, dashboard or other rule", r)
		}
	}
}

// Every dashboard query is scoped by the job and instance variables, so
// that the dashboard shows what the user picked.
func TestDashboardQueriesUseVariables(t *testing.T) {
	for _, q := range loadQueries(t) {
		switch q.Kind {
		case queries.KindPanel, queries.KindAnnotation:
			vars := queries.Variables(q.Expr)
			if !slices.Contains(vars, "job") || !slices.Contains(vars, "instance") {
				t.Errorf("%s: not scoped by $job and $instance: %s", q, q.Expr)
			}
		case queries.KindRecord, queries.KindAlert:
			if vars := queries.Variables(q.Expr); len(vars) > 0 {
				t.Errorf("%s: Grafana variables %q in a Prometheus rule", q, vars)
			}
		}
	}
}
