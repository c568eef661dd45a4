package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/harness"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// TestQuick runs kfwbench's smoke mode (what BENCH_QUICK=1 make bench
// runs: a lab VM included) into a temporary directory and checks that every
// measurement produced sane numbers: rates above zero, ratios within broad
// bounds, exact event accounting, every section of the report. It asserts
// nothing about speed. It needs kfw.ko (make modules) and qemu, like the
// lab suites, and is skipped by go test -short.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a lab VM: skipped with -short")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	run, err := harness.Run(ctx, harness.Options{
		Quick:      true,
		Markdown:   filepath.Join(dir, "BENCHMARKS.md"),
		ResultsDir: filepath.Join(dir, "results"),
		Log:        testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "BENCHMARKS.md"))
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, string(md))
	for _, f := range []string{"run.json", "guest.json", "guest.log", "go-bench.txt"} {
		if fi, err := os.Stat(filepath.Join(dir, "results", f)); err != nil || fi.Size() == 0 {
			t.Errorf("raw result %s missing or empty (%v)", f, err)
		}
	}
	checkGoBench(t, run.GoBench)
	if run.Guest == nil {
		t.Fatal("no results from the VM")
	}
	checkPacketPath(t, run.Guest.Packet)
	checkEvents(t, run.Guest.Events)
	checkScrapes(t, "host", run.HostScrape)
	if ex := run.Guest.Exporter; ex == nil || len(ex.Scrapes) == 0 {
		t.Error("no scrapes in the VM")
	} else {
		for i := range ex.Scrapes {
			checkScrapes(t, "VM", &ex.Scrapes[i])
		}
	}
}

// testWriter sends the harness's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func checkReport(t *testing.T, md string) {
	t.Helper()
	for _, section := range []string{"## Summary", "## Machine and method", "## 1. Packet path", "## 2. Event pipeline",
		"## 3. Exporter", "## 4. Go micro-benchmarks", "## Not measured", "## Raw results", "smoke run"} {
		if !strings.Contains(md, section) {
			t.Errorf("BENCHMARKS.md lacks %q", section)
		}
	}
	for _, bad := range []string{"NaN", "%!", "+Inf"} {
		if strings.Contains(md, bad) {
			t.Errorf("BENCHMARKS.md contains %q", bad)
		}
	}
}

func checkGoBench(t *testing.T, bs []results.Benchmark) {
	t.Helper()
	var names []string
	for _, b := range bs {
		names = append(names, b.Name)
		if b.N <= 0 || b.Metrics["ns/op"] <= 0 {
			t.Errorf("benchmark %s: %d iterations, %v ns/op", b.Name, b.N, b.Metrics["ns/op"])
		}
	}
	for _, want := range []string{"BenchmarkScrape/rules=10", "BenchmarkScrape/rules=1000", "BenchmarkScrape/rules=4096",
		"BenchmarkDecodeBatch/ipv4", "BenchmarkConsumerEvent", "BenchmarkParseProcStats", "BenchmarkParseProcRuleStats/rules=1000",
		"BenchmarkParseProcHooks", "BenchmarkParseCommands/rules=1000"} {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, want+"-") || n == want }) {
			t.Errorf("no %s among the Go benchmarks", want)
		}
	}
}

func checkPacketPath(t *testing.T, pp *results.PacketPath) {
	t.Helper()
	if pp == nil {
		t.Error("no packet path results")
		return
	}
	baseline := map[string]float64{} // path/round → no-filter pps
	for _, tr := range pp.Trials {
		if tr.Config == "none" {
			baseline[fmt.Sprint(tr.Path, tr.Round)] = tr.PPS()
		}
	}
	seen := map[string]bool{}
	for _, tr := range pp.Trials {
		seen[tr.Config+" "+tr.Path] = true
		// The links carry nothing but the floods, but leave room for a
		// stray packet.
		if tr.PPS() <= 0 || tr.Counted > tr.Sent+tr.Sent/1000+10 {
			t.Errorf("%s %s: counted %d of %d sent in %.2fs", tr.Config, tr.Path, tr.Counted, tr.Sent, tr.Seconds)
		}
		if tr.Check != "" {
			t.Errorf("%s %s: rule counters: %s", tr.Config, tr.Path, tr.Check)
		}
		// Broad: a filter may cost much, a busy host blurs everything, but a
		// ratio outside these bounds means a broken measurement.
		if base := baseline[fmt.Sprint(tr.Path, tr.Round)]; tr.Path != results.PathInject && base > 0 {
			if r := tr.PPS() / base; r < 0.01 || r > 5 {
				t.Errorf("%s %s: %.3f of the no-filter rate", tr.Config, tr.Path, r)
			}
		}
	}
	want := []string{"none inject"}
	for _, path := range []string{results.PathForward, results.PathInput} {
		want = append(want, "none "+path)
		for _, kind := range []string{"kfw", "nft", "iptables"} {
			for _, n := range pp.RuleCounts {
				want = append(want, fmt.Sprintf("%s-%d %s", kind, n, path))
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no trial of %s", w)
		}
	}
}

func checkEvents(t *testing.T, ev *results.Events) {
	t.Helper()
	if ev == nil {
		t.Error("no event pipeline results")
		return
	}
	costs := map[string]bool{}
	for _, c := range ev.Cost {
		costs[c.Config] = true
		if c.PPS() <= 0 {
			t.Errorf("cost flood %s: %.0f drops/s", c.Config, c.PPS())
		}
	}
	if len(costs) != 3 {
		t.Errorf("cost floods of %v, want quiet, kfw-events, drop-monitor", costs)
	}
	if len(ev.Series) == 0 {
		t.Error("no event series")
	}
	lossless := false
	for _, se := range ev.Series {
		if len(se.Steps) == 0 || len(se.DropMonitor) == 0 {
			t.Errorf("%s: %d steps, %d drop monitor steps", se.Name, len(se.Steps), len(se.DropMonitor))
		}
		for _, st := range se.Steps {
			k, x := st.Kernel, st.Exporter
			if k.Generated == 0 || st.Drops == 0 || st.Drops > st.Sent {
				t.Errorf("%s at %.0f/s: %d generated, %d dropped of %d sent", se.Name, st.Offered, k.Generated, st.Drops, st.Sent)
			}
			// Every generated event is received or counted lost: the
			// exporter's accounting is exact, with or without loss.
			if !st.Exact || x.Received+x.Lost != k.Generated {
				t.Errorf("%s at %.0f/s: received %d + lost %d != generated %d", se.Name, st.Offered, x.Received, x.Lost, k.Generated)
			}
			if k.Suppressed != 0 {
				t.Errorf("%s at %.0f/s: %d suppressed with rate limits off", se.Name, st.Offered, k.Suppressed)
			}
			if x.CPUNanos == 0 || st.RSSBytes == 0 {
				t.Errorf("%s at %.0f/s: exporter CPU %d ns, RSS %d", se.Name, st.Offered, x.CPUNanos, st.RSSBytes)
			}
			lossless = lossless || (x.Lost == 0 && k.QueueOverflows == 0)
		}
		if ov := se.Overload; ov != nil && !ov.Step.Exact {
			x := ov.Step.Exporter
			t.Errorf("%s, exporter stopped: received %d + lost %d != generated %d", se.Name, x.Received, x.Lost, ov.Step.Kernel.Generated)
		}
		for _, st := range se.DropMonitor {
			if st.Drops == 0 || st.Matching > st.Drops {
				t.Errorf("%s NET_DM at %.0f/s: %d alerts for %d drops", se.Name, st.Offered, st.Matching, st.Drops)
			}
		}
	}
	if !lossless {
		t.Error("no event step was lossless, not even the slowest")
	}
}

func checkScrapes(t *testing.T, where string, s *results.ScrapeSet) {
	t.Helper()
	if s == nil {
		t.Errorf("%s: no scrapes", where)
		return
	}
	if len(s.Kfw.Seconds) == 0 || len(s.Kfw.Seconds) != len(s.Node.Seconds) {
		t.Errorf("%s: %d kfw_exporter and %d node_exporter scrapes", where, len(s.Kfw.Seconds), len(s.Node.Seconds))
	}
	// Every rule has at least its four counters.
	if s.Kfw.Series < 4*s.Rules || s.Node.Series == 0 {
		t.Errorf("%s: kfw_exporter %d samples for %d rules, node_exporter %d", where, s.Kfw.Series, s.Rules, s.Node.Series)
	}
	for i := range s.Kfw.Seconds {
		if s.Kfw.Seconds[i] <= 0 || s.Node.Seconds[i] <= 0 {
			t.Errorf("%s: scrape %d took %v / %v s", where, i, s.Kfw.Seconds[i], s.Node.Seconds[i])
		}
	}
}
