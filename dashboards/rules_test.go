package dashboards_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/kfwlabs/kfw_exporter/dashboards/queries"
)

const (
	rulesDir     = "prometheus"
	unitTestsDir = "prometheus/tests"
	alertsFile   = "prometheus/kfw.alerts.yml"
	runbookFile  = "../docs/RUNBOOK.md"
	runbookURL   = "https://github.com/kfwlabs/kfw_exporter/blob/main/docs/RUNBOOK.md#"
)

// promtool returns the path of promtool, failing the test when it is
// missing: the rule tests are part of `make test`, not optional.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (%v): it comes with Debian's prometheus package "+
			"(apt-get install prometheus, or scripts/deps.sh)", err)
	}
	return path
}

// runPromtool runs promtool in dir and returns its combined output.
func runPromtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func globOrFail(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

func TestPromtoolCheckRules(t *testing.T) {
	files := globOrFail(t, filepath.Join(rulesDir, "*.yml"))
	args := append([]string{"check", "rules", "--lint=all", "--lint-fatal"}, files...)
	if out, err := runPromtool(t, ".", args...); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	for _, file := range globOrFail(t, filepath.Join(unitTestsDir, "*.yml")) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			if out, err := runPromtool(t, ".", "test", "rules", file); err != nil {
				t.Fatalf("promtool test rules %s: %v\n%s", file, err, out)
			}
		})
	}
}

// unitTestFile is the part of a promtool unit test file these tests read.
type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTests []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTests []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readUnitTests(t *testing.T) map[string]unitTestFile {
	t.Helper()
	files := map[string]unitTestFile{}
	for _, path := range globOrFail(t, filepath.Join(unitTestsDir, "*.yml")) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f unitTestFile
		if err := yaml.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		files[path] = f
	}
	return files
}

func readRules(t *testing.T) []queries.Query {
	t.Helper()
	qs, err := queries.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

// Every alert has a unit test where it fires and one where it stays silent;
// every recording rule has a unit test of its value.
func TestEveryRuleHasUnitTests(t *testing.T) {
	fires, silent, recorded := map[string]int{}, map[string]int{}, map[string]int{}
	for _, f := range readUnitTests(t) {
		for _, tc := range f.Tests {
			for _, a := range tc.AlertRuleTests {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname]++
				} else {
					silent[a.Alertname]++
				}
			}
			for _, e := range tc.PromQLExprTests {
				names, err := queries.MetricNames(e.Expr)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					recorded[n]++
				}
			}
		}
	}
	qs := readRules(t)
	for _, name := range queries.Names(qs, queries.KindAlert) {
		if fires[name] == 0 {
			t.Errorf("alert %s: no unit test where it fires", name)
		}
		if silent[name] == 0 {
			t.Errorf("alert %s: no unit test where it stays silent", name)
		}
	}
	for _, name := range queries.Names(qs, queries.KindRecord) {
		if recorded[name] == 0 {
			t.Errorf("recording rule %s: no promql_expr_test reads it", name)
		}
	}
	known := queries.Names(qs, queries.KindAlert)
	for name := range fires {
		if !slices.Contains(known, name) {
			t.Errorf("unit tests expect alert %s, which no rule file defines", name)
		}
	}
}

// Deleting any one alert must make its unit tests fail: the tests really
// evaluate the shipped rules and expect each alert to fire.
func TestUnitTestsCatchAMissingAlert(t *testing.T) {
	original, err := queries.ReadRuleFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := readUnitTests(t)
	for _, name := range queries.Names(readRules(t), queries.KindAlert) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			copyRulesDir(t, dir)
			writeRuleFile(t, filepath.Join(dir, alertsFile), withoutAlert(original, name))
			var files []string
			for path, f := range tests {
				if mentionsAlert(f, name) {
					files = append(files, path)
				}
			}
			args := append([]string{"test", "rules"}, files...)
			out, err := runPromtool(t, dir, args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("promtool test rules without alert %s: err = %v, want a failure\n%s", name, err, out)
			}
			if !strings.Contains(out, "alertname: "+name+",") {
				t.Errorf("promtool failed without naming alert %s:\n%s", name, out)
			}
		})
	}
}

func mentionsAlert(f unitTestFile, name string) bool {
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTests {
			if a.Alertname == name {
				return true
			}
		}
	}
	return false
}

func withoutAlert(f *queries.RuleFile, name string) queries.RuleFile {
	out := queries.RuleFile{}
	for _, g := range f.Groups {
		g.Rules = slices.DeleteFunc(slices.Clone(g.Rules), func(r queries.Rule) bool { return r.Alert == name })
		out.Groups = append(out.Groups, g)
	}
	return out
}

func copyRulesDir(t *testing.T, dst string) {
	t.Helper()
	err := filepath.WalkDir(rulesDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, path)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copying %s: %v", rulesDir, err)
	}
}

func writeRuleFile(t *testing.T, path string, f queries.RuleFile) {
	t.Helper()
	data, err := yaml.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	severities = []string{"critical", "warning", "info"}
	// level:metric:operations, the metric without _total.
	recordNameRE = regexp.MustCompile(`^[a-z]+(_[a-z]+)*:kfw_[a-z0-9_]+:[a-z0-9_]+$`)
)

// Every alert says how bad it is, what is wrong, what to check, and where
// the runbook section is; the section exists.
func TestAlertsAreActionable(t *testing.T) {
	anchors := runbookAnchors(t)
	f, err := queries.ReadRuleFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: recording rule %s belongs in kfw.rules.yml", alertsFile, r.Record)
				continue
			}
			n++
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want one of %q", r.Alert, r.Labels["severity"], severities)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[key]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, key)
				}
			}
			if len(r.Annotations) != 3 {
				t.Errorf("%s: annotations %v, want exactly summary, description and runbook_url", r.Alert, r.Annotations)
			}
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbookURL)
			if !ok {
				t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, url, runbookURL)
			} else if anchor != strings.ToLower(r.Alert) {
				t.Errorf("%s: runbook_url anchor %q, want %q (the alert's section)", r.Alert, anchor, strings.ToLower(r.Alert))
			} else if !anchors[anchor] {
				t.Errorf("%s: %s has no section with anchor #%s", r.Alert, runbookFile, anchor)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s holds no alert", alertsFile)
	}
}

func TestRecordingRuleNames(t *testing.T) {
	for _, name := range queries.Names(readRules(t), queries.KindRecord) {
		if !recordNameRE.MatchString(name) || strings.Contains(name, "_total:") {
			t.Errorf("recording rule %s: want level:metric:operations with a kfw_ metric without _total", name)
		}
	}
}

// runbookAnchors returns the GitHub anchors of the runbook's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatalf("reading the runbook: %v", err)
	}
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		anchors[githubAnchor(strings.TrimLeft(line, "#"))] = true
	}
	return anchors
}

// githubAnchor is the anchor GitHub gives a Markdown heading: lower case,
// spaces to hyphens, punctuation other than - and _ dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGithubAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		" KfwExporterDown":          "kfwexporterdown",
		"Tuning the alerts":         "tuning-the-alerts",
		"`kfw_up` == 0 (module)":    "kfw_up--0-module",
		"Events: lost, suppressed.": "events-lost-suppressed",
	} {
		if got := githubAnchor(heading); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}
