//go:build !labvm

package prometheus

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"

	"github.com/kfwlabs/kfw_exporter/dashboards/queries"
)

// The shipped alerts speak in minutes and hours: a drop spike must last 5
// minutes against the baseline of the hour before, a loss stays visible for
// 15 minutes. The lab cannot wait that long, so TestPrometheus loads a copy
// of the shipped rule files in which every duration literal (range windows,
// subquery ranges and steps, offsets, and each rule's `for`) is divided by
// speedup, and scrapes and evaluates faster by about as much.
//
// The copy still tests the shipped rules: nothing but those literals
// changes, all by one factor (TestScaledRulesAreTheShippedRules scales the
// copy back and gets the shipped files exactly), so every metric name,
// label matcher, aggregation, threshold and annotation is the shipped one.
// Rates are per second whatever the window, so thresholds such as "more
// than 1 packet/s", "10 % of events" or "3 times the baseline" keep their
// meaning, and the time structure keeps its proportions (a spike window of
// 5m against a 1h baseline ending 10m ago becomes 15s against 3m ending 30s
// ago). What a shorter window changes is how much noise it averages: the
// lab's traffic is paced and steady, and each window still holds as many
// scrapes as the README's recommended 30 s interval gives the shipped one.
const speedup = 20

// The lab Prometheus's intervals: the shipped rules assume a scrape
// interval of at most 1m (README); 2s against windows divided by 20 keeps
// 7 or more scrapes in the shortest (5m → 15s) window.
const (
	scrapeInterval     = 2 * time.Second
	evaluationInterval = time.Second
)

// durationKind says where a duration literal stands in an expression.
type durationKind int

const (
	rangeDuration  durationKind = iota // [5m], and the range of [1h:1m]
	stepDuration                       // the step of a subquery, [1h:1m]
	offsetDuration                     // offset 10m
)

// rewriteDurations calls f for every duration literal of a PromQL
// expression and puts in what f returns. It skips string literals and
// comments; brackets outside strings only ever hold ranges and subqueries.
func rewriteDurations(expr string, f func(durationKind, time.Duration) (time.Duration, error)) (string, error) {
	var out strings.Builder
	rewrite := func(kind durationKind, lit string) error {
		d, err := model.ParseDuration(strings.TrimSpace(lit))
		if err != nil {
			return fmt.Errorf("duration %q in %q: %w", lit, expr, err)
		}
		nd, err := f(kind, time.Duration(d))
		if err != nil {
			return fmt.Errorf("duration %q in %q: %w", lit, expr, err)
		}
		out.WriteString(model.Duration(nd).String())
		return nil
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(expr, i)
			out.WriteString(expr[i:end])
			i = end
		case c == '#':
			end := strings.IndexByte(expr[i:], '\n')
			if end < 0 {
				end = len(expr) - i
			}
			out.WriteString(expr[i : i+end])
			i += end
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return "", fmt.Errorf("unclosed [ in %q", expr)
			}
			rng, step, isSubquery := strings.Cut(expr[i+1:i+end], ":")
			out.WriteByte('[')
			if err := rewrite(rangeDuration, rng); err != nil {
				return "", err
			}
			if isSubquery {
				out.WriteByte(':')
				if strings.TrimSpace(step) != "" {
					if err := rewrite(stepDuration, step); err != nil {
						return "", err
					}
				}
			}
			out.WriteByte(']')
			i += end + 1
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdentChar(expr[j]) {
				j++
			}
			out.WriteString(expr[i:j])
			if strings.EqualFold(expr[i:j], "offset") {
				k := j
				for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
					k++
				}
				sign := ""
				if k < len(expr) && expr[k] == '-' {
					sign, k = "-", k+1
				}
				l := k
				for l < len(expr) && isIdentChar(expr[l]) {
					l++
				}
				if l > k && expr[k] >= '0' && expr[k] <= '9' {
					out.WriteString(expr[j:k-len(sign)] + sign)
					if err := rewrite(offsetDuration, expr[k:l]); err != nil {
						return "", err
					}
					j = l
				}
			}
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), nil
}

// stringEnd returns the index just past the string literal starting at i.
func stringEnd(s string, i int) int {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1
		}
	}
	return len(s)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// divideBy scales durations down by k; the result must stay a positive
// whole number of milliseconds, the resolution of PromQL durations.
func divideBy(k int64) func(durationKind, time.Duration) (time.Duration, error) {
	return func(_ durationKind, d time.Duration) (time.Duration, error) {
		if d%(time.Duration(k)*time.Millisecond) != 0 {
			return 0, fmt.Errorf("%v is not a whole number of milliseconds once divided by %d", d, k)
		}
		return d / time.Duration(k), nil
	}
}

// multiplyBy scales durations up by k.
func multiplyBy(k int64) func(durationKind, time.Duration) (time.Duration, error) {
	return func(_ durationKind, d time.Duration) (time.Duration, error) { return d * time.Duration(k), nil }
}

// offsets lists the offsets of an expression.
func offsets(expr string) ([]time.Duration, error) {
	var ds []time.Duration
	_, err := rewriteDurations(expr, func(kind durationKind, d time.Duration) (time.Duration, error) {
		if kind == offsetDuration {
			ds = append(ds, d)
		}
		return d, nil
	})
	return ds, err
}

// scaleRuleFile rewrites every expression and `for` of a rule file with f.
func scaleRuleFile(in *queries.RuleFile, f func(durationKind, time.Duration) (time.Duration, error)) (*queries.RuleFile, error) {
	out := &queries.RuleFile{}
	for _, g := range in.Groups {
		ng := queries.RuleGroup{Name: g.Name}
		for _, r := range g.Rules {
			expr, err := rewriteDurations(r.Expr, f)
			if err != nil {
				return nil, fmt.Errorf("group %s: %w", g.Name, err)
			}
			r.Expr = expr
			if r.For != "" {
				d, err := model.ParseDuration(r.For)
				if err != nil {
					return nil, fmt.Errorf("group %s: for %q: %w", g.Name, r.For, err)
				}
				nd, err := f(rangeDuration, time.Duration(d))
				if err != nil {
					return nil, fmt.Errorf("group %s: for %q: %w", g.Name, r.For, err)
				}
				r.For = model.Duration(nd).String()
			}
			ng.Rules = append(ng.Rules, r)
		}
		out.Groups = append(out.Groups, ng)
	}
	return out, nil
}

// shippedRuleFiles lists dashboards/prometheus/*.yml of the repository.
func shippedRuleFiles(t *testing.T, repo string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "dashboards", queries.RulesDir, "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in dashboards/%s (%v)", queries.RulesDir, err)
	}
	return files
}

// writeScaledRules writes the scaled copy of every shipped rule file into
// dir and returns the paths.
func writeScaledRules(t *testing.T, repo, dir string) []string {
	t.Helper()
	var paths []string
	for _, src := range shippedRuleFiles(t, repo) {
		f, err := queries.ReadRuleFile(src)
		if err != nil {
			t.Fatal(err)
		}
		scaled, err := scaleRuleFile(f, divideBy(speedup))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		data, err := yaml.Marshal(scaled)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(src))
		header := fmt.Sprintf("# %s with every duration divided by %d (tests/lab/prometheus).\n", filepath.Base(src), speedup)
		if err := os.WriteFile(dst, append([]byte(header), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, dst)
	}
	return paths
}

func TestRewriteDurations(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`rate(x[5m])`, `rate(x[15s])`},
		{`avg_over_time(r{verdict="drop"}[1h] offset 10m)`, `avg_over_time(r{verdict="drop"}[3m] offset 30s)`},
		{`x OFFSET -20m`, `x OFFSET -1m`},
		{`max_over_time(rate(x[5m])[1h:1m])`, `max_over_time(rate(x[15s])[3m:3s])`},
		{`max_over_time(x[1h:])`, `max_over_time(x[3m:])`},
		{`x[ 1h ]`, `x[3m]`},
		{`x[1h30m]`, `x[4m30s]`},
		// Strings, comments and names that merely contain "offset" stay.
		{`x{re=~"a[5m]b", s='[1h]', r=` + "`[2h]`" + `}`, `x{re=~"a[5m]b", s='[1h]', r=` + "`[2h]`" + `}`},
		{"x # offset 10m [5m]\n+ y[10m]", "x # offset 10m [5m]\n+ y[30s]"},
		{`offset_total{offset="10m"} offset 20m`, `offset_total{offset="10m"} offset 1m`},
		{`count by (instance) (x) > 1`, `count by (instance) (x) > 1`},
	} {
		got, err := rewriteDurations(c.in, divideBy(speedup))
		if err != nil || got != c.want {
			t.Errorf("scaling %q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{`x[5]`, `x[1ms]`, `x[5m`, `x offset 7ms`} {
		if got, err := rewriteDurations(bad, divideBy(speedup)); err == nil {
			t.Errorf("scaling %q succeeded: %q", bad, got)
		}
	}
	ds, err := offsets(`a[1h] offset 10m + b offset 1h`)
	if err != nil || !reflect.DeepEqual(ds, []time.Duration{10 * time.Minute, time.Hour}) {
		t.Errorf("offsets: %v, %v", ds, err)
	}
}

// TestScaledRulesAreTheShippedRules proves that the scaled copy differs
// from the shipped rules in durations only: scaled back, every file is the
// shipped one, rule for rule; and Prometheus accepts the copy.
func TestScaledRulesAreTheShippedRules(t *testing.T) {
	repo := repoRoot(t)
	dir := t.TempDir()
	scaledPaths := writeScaledRules(t, repo, dir)
	for i, src := range shippedRuleFiles(t, repo) {
		shipped, err := queries.ReadRuleFile(src)
		if err != nil {
			t.Fatal(err)
		}
		scaled, err := queries.ReadRuleFile(scaledPaths[i])
		if err != nil {
			t.Fatal(err)
		}
		if reflect.DeepEqual(scaled, shipped) {
			t.Errorf("%s: the scaled copy is the shipped file: no duration was scaled", src)
		}
		back, err := scaleRuleFile(scaled, multiplyBy(speedup))
		if err != nil {
			t.Fatal(err)
		}
		for g := range shipped.Groups {
			for r := range shipped.Groups[g].Rules {
				want := shipped.Groups[g].Rules[r]
				want.Expr = strings.TrimSpace(want.Expr)
				got := back.Groups[g].Rules[r]
				got.Expr = strings.TrimSpace(got.Expr)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: rule %s%s scaled there and back:\n%+v\nwant\n%+v", src, want.Record, want.Alert, got, want)
				}
			}
		}
		if !reflect.DeepEqual(groupShape(back), groupShape(shipped)) {
			t.Errorf("%s: groups or rules differ after scaling: %v, want %v", src, groupShape(back), groupShape(shipped))
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: apt-get install prometheus (or scripts/deps.sh)")
	}
	out, err := exec.Command(promtool, append([]string{"check", "rules"}, scaledPaths...)...).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules on the scaled copy: %v\n%s", err, out)
	}
}

// groupShape is a rule file's group names and rule counts.
func groupShape(f *queries.RuleFile) []string {
	var s []string
	for _, g := range f.Groups {
		s = append(s, fmt.Sprintf("%s:%d", g.Name, len(g.Rules)))
	}
	return s
}
