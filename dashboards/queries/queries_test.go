package queries

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`kfw_up`, []string{"kfw_up"}},
		{`kfw_up == 0`, []string{"kfw_up"}},
		{`up{job="kfw"} == 0`, []string{"up"}},
		{`rate(kfw_packets_total{verdict="drop", hook=~"input|forward"}[5m])`, []string{"kfw_packets_total"}},
		{`sum without (family, hook) (instance_family_hook_verdict:kfw_packets:rate5m)`,
			[]string{"instance_family_hook_verdict:kfw_packets:rate5m"}},
		{`sum(increase(kfw_rule_packets_total{action="drop"}[1h])) by (rule)`, []string{"kfw_rule_packets_total"}},
		{`sum(rate(a_total[5m])) by (job) / on (job) group_left (version) b_info`, []string{"a_total", "b_info"}},
		{`a / ignoring (verdict) group_right b`, []string{"a", "b"}},
		{`topk(10, kfw_rule_packets_total) and on() vector(1)`, []string{"kfw_rule_packets_total"}},
		{`count_values("version", kfw_module_info)`, []string{"kfw_module_info"}},
		{`histogram_quantile(0.99, sum by (le) (rate(kfw_event_delay_seconds_bucket[$x])))`,
			[]string{"kfw_event_delay_seconds_bucket"}},
		{`avg_over_time(x:y:rate5m[1h] offset 10m) * 1e-3 + 0x1F - 2.5E+2 > bool Inf`, []string{"x:y:rate5m"}},
		{`max_over_time(deriv(a[1h:5m])[2h:])`, []string{"a"}},
		{`absent(up{job="kfw"})`, []string{"up"}},
		{`time() - kfw_last_event_timestamp_seconds @ end()`, []string{"kfw_last_event_timestamp_seconds"}},
		{`label_replace(a, "dst", "$1", "src", "(.*)") unless b`, []string{"a", "b"}},
		{"a # comment with b_total in it\n + c", []string{"a", "c"}},
		{`SUM BY (job) (a) OR b`, []string{"a", "b"}},
		{`vector(1)`, nil},
		{`{job="kfw"}`, nil},
	}
	for _, tt := range tests {
		got, err := MetricNames(tt.expr)
		if err != nil {
			t.Errorf("MetricNames(%q): %v", tt.expr, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func TestMetricNamesErrors(t *testing.T) {
	for _, expr := range []string{
		`{__name__=~"kfw_.*"}`,
		`rate(a{job="kfw}[5m])`,
		`a{job="kfw"`,
		`rate(a[5m)`,
	} {
		if got, err := MetricNames(expr); err == nil {
			t.Errorf("MetricNames(%q) = %q, want an error", expr, got)
		}
	}
}

func TestExpand(t *testing.T) {
	vars := Vars{"job": "kfw", "instance": "h:1", "__rate_interval": "1m"}
	got, err := Expand(`rate(x{job=~"$job", instance=~"${instance}", a="${job:regex}", b="[[job]]"}[$__rate_interval])`, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := `rate(x{job=~"kfw", instance=~"h:1", a="kfw", b="kfw"}[1m])`
	if got != want {
		t.Errorf("Expand = %s, want %s", got, want)
	}
	// $1 in label_replace is a regexp group, not a variable.
	if got, err := Expand(`label_replace(a, "d", "$1", "s", "(.*)")`, vars); err != nil || !strings.Contains(got, `"$1"`) {
		t.Errorf("Expand touched $1: %q, %v", got, err)
	}
	_, err = Expand(`x{rule=~"$rule"}[$__range]`, vars)
	if !errors.Is(err, ErrUnknownVariable) || !strings.Contains(err.Error(), "__range, rule") {
		t.Errorf("Expand with unknown variables: err = %v, want ErrUnknownVariable naming __range, rule", err)
	}
}

func TestVariables(t *testing.T) {
	got := Variables(`a{job=~"$job", instance=~"${instance}"}[$__rate_interval] + b{job=~"$job"}`)
	if want := []string{"__rate_interval", "instance", "job"}; !slices.Equal(got, want) {
		t.Errorf("Variables = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("prometheus/a.yml", `groups:
  - name: g
    rules:
      - record: instance:a:rate5m
        expr: rate(a_total[5m])
      - alert: ADown
        expr: |
          a_up == 0
        for: 5m
        labels: {severity: warning}
        annotations: {summary: s}
`)
	// Tests are not shipped rules.
	write("prometheus/tests/a_test.yml", `not: a rule file`)
	write("grafana/d.json", `{
  "title": "d",
  "templating": {"list": [
    {"type": "datasource", "name": "datasource", "query": "prometheus"},
    {"type": "query", "name": "job", "query": {"query": "label_values(a_up{x=~\"1,2\"}, job)", "refId": "V"}},
    {"type": "query", "name": "n", "query": "query_result(count(a_up))"}
  ]},
  "annotations": {"list": [
    {"builtIn": 1, "name": "Annotations & Alerts"},
    {"name": "changes", "expr": "changes(a_gen[2m]) > 0"}
  ]},
  "panels": [
    {"type": "row", "title": "r", "panels": [
      {"type": "stat", "title": "inner", "targets": [{"refId": "A", "expr": "a_up", "instant": true}]}
    ]},
    {"type": "timeseries", "title": "outer", "targets": [{"refId": "A", "expr": "rate(a_total[$__rate_interval])"}]}
  ]
}`)
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Query{
		{File: "prometheus/a.yml", Kind: KindRecord, Name: "instance:a:rate5m", Expr: "rate(a_total[5m])"},
		{File: "prometheus/a.yml", Kind: KindAlert, Name: "ADown", Expr: "a_up == 0"},
		{File: "grafana/d.json", Kind: KindVariable, Name: "job", Expr: `a_up{x=~"1,2"}`, Label: "job"},
		{File: "grafana/d.json", Kind: KindVariable, Name: "n", Expr: "count(a_up)"},
		{File: "grafana/d.json", Kind: KindAnnotation, Name: "changes", Expr: "changes(a_gen[2m]) > 0"},
		{File: "grafana/d.json", Kind: KindPanel, Name: "inner", RefID: "A", Expr: "a_up", Instant: true},
		{File: "grafana/d.json", Kind: KindPanel, Name: "outer", RefID: "A", Expr: "rate(a_total[$__rate_interval])"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Load:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]struct{ rules, dashboard string }{
		"unknown rule field": {rules: "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: a\n        anotations: {}\n"},
		"record and alert":   {rules: "groups:\n  - name: g\n    rules:\n      - alert: A\n        record: b\n        expr: a\n"},
		"no expr":            {rules: "groups:\n  - name: g\n    rules:\n      - alert: A\n"},
		"bad variable":       {dashboard: `{"templating": {"list": [{"type": "query", "name": "v", "query": "metrics(kfw_.*)"}]}}`},
		"empty target":       {dashboard: `{"panels": [{"title": "p", "targets": [{"refId": "A"}]}]}`},
		"not json":           {dashboard: `{`},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rules := tt.rules
			if rules == "" {
				rules = "groups: []\n"
			}
			dashboard := tt.dashboard
			if dashboard == "" {
				dashboard = "{}"
			}
			for path, content := range map[string]string{"prometheus/r.yml": rules, "grafana/d.json": dashboard} {
				full := filepath.Join(dir, path)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Load(dir); err == nil {
				t.Error("Load succeeded, want an error")
			}
		})
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty directory succeeded, want an error")
	}
}
