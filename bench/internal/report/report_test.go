package report

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

func trial(round int, config, path string, pps float64) results.Trial {
	return results.Trial{Round: round, Config: config, Path: path, Sent: uint64(pps * 1.1), Counted: uint64(pps), Seconds: 1}
}

func TestPathResults(t *testing.T) {
	trials := []results.Trial{
		trial(1, "none", "forward", 1000), trial(1, "kfw-10", "forward", 800), trial(1, "nft-10", "forward", 400),
		trial(2, "nft-10", "forward", 600), trial(2, "none", "forward", 1200), trial(2, "kfw-10", "forward", 600),
		trial(1, "none", "input", 5),
	}
	rs := pathResults(trials, "forward", "none", nil)
	if len(rs) != 3 || rs[0].Config != "none" || rs[1].Config != "kfw-10" || rs[2].Config != "nft-10" {
		t.Fatalf("configs %v", rs)
	}
	kfw := rs[1]
	if kfw.PPS.Median != 700 || kfw.Ratio.Min != 0.5 || kfw.Ratio.Max != 0.8 {
		t.Errorf("kfw: pps %+v ratio %+v", kfw.PPS, kfw.Ratio)
	}
	// Per round: 800/400 = 2, 600/600 = 1.
	if vs := pairRatio(rs, "kfw-10", "nft-10"); vs.Median != 1.5 || vs.N != 2 {
		t.Errorf("kfw/nft %+v", vs)
	}
	if got := addedNanos(500, 1000); math.Abs(got-1e6) > 1e-6 {
		t.Errorf("added %v ns", got)
	}
}

// Rates measured while the host gave the VM half as much CPU (half the
// injection rate) count double once adjusted.
func TestInjectionAdjustment(t *testing.T) {
	trials := []results.Trial{
		trial(1, "none", "inject", 2000), trial(1, "none", "forward", 1000),
		trial(1, "kfw-10", "inject", 1000), trial(1, "kfw-10", "forward", 450),
		trial(1, "nft-10", "inject", 2000), trial(1, "nft-10", "forward", 500),
	}
	rs := pathResults(trials, "forward", "none", newInjection(trials))
	kfw, _ := find(rs, "kfw-10")
	if kfw.PPS.Median != 450 || kfw.Adj.Median != 900 || kfw.Ratio.Median != 0.9 {
		t.Errorf("kfw: raw %v adjusted %v ratio %v", kfw.PPS.Median, kfw.Adj.Median, kfw.Ratio.Median)
	}
	if vs := pairRatio(rs, "kfw-10", "nft-10"); vs.Median != 1.8 {
		t.Errorf("kfw/nft %v, want 1.8", vs.Median)
	}
	if newInjection(trials[1:2]) != nil {
		t.Error("injection without injection trials")
	}
	// With bursts, the median of per-turn ratios: the outlying second
	// turn does not move it.
	burst := func(cfg, path string, rates ...float64) results.Trial {
		t := results.Trial{Round: 1, Config: cfg, Path: path}
		for _, r := range rates {
			t.Bursts = append(t.Bursts, results.Burst{Counted: uint64(r), Seconds: 1})
			t.Counted += uint64(r)
			t.Seconds++
		}
		return t
	}
	bt := []results.Trial{
		burst("none", "inject", 100, 10, 100), burst("none", "forward", 50, 50, 50),
	}
	// 0.5 (every turn) times the phase's median injection rate, which is
	// that of its one slot: 210 frames in 3 s.
	if got := newInjection(bt).adjust(bt[1]); got != 35 {
		t.Errorf("adjusted %v, want 0.5 * 70", got)
	}
}

func TestSortConfigs(t *testing.T) {
	names := []string{"nft-100", "kfw-1000", "iptables-1", "kfw-10", "none", "nft-1"}
	sortConfigs(names)
	want := "none kfw-10 kfw-1000 nft-1 nft-100 iptables-1"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func step(offered float64, generated, received, lost, queue uint64) results.EventStep {
	return results.EventStep{
		Offered: offered, Seconds: 1, Sent: generated, Drops: generated,
		Kernel:   results.KernelDelta{Generated: generated, QueueOverflows: queue, Nobufs: 2},
		Exporter: results.ExporterDelta{Received: received, Lost: lost, CPUNanos: received * 20000},
		Exact:    received+lost == generated, RSSBytes: 18 << 20, HWMBytes: 19 << 20,
	}
}

func TestLossAnalysis(t *testing.T) {
	steps := []results.EventStep{step(20000, 19000, 16000, 3000, 1000), step(5000, 5000, 5000, 0, 0), step(10000, 9900, 9900, 0, 0)}
	best, ok := losslessStep(steps)
	if !ok || best.Offered != 10000 {
		t.Fatalf("lossless %+v", best)
	}
	worst, ok := slowestLossy(steps)
	if !ok || worst.Offered != 20000 {
		t.Fatalf("lossy %+v", worst)
	}
	if l := splitLoss(worst); l.Queue != 1000 || l.Socket != 2000 {
		t.Errorf("split %+v", l)
	}
	if s := sortedSteps(steps); s[0].Offered != 5000 || s[2].Offered != 20000 {
		t.Errorf("order %v", s)
	}
}

// sampleRun is a complete run with small numbers.
func sampleRun() *results.Run {
	var trials []results.Trial
	for r := 1; r <= 2; r++ {
		for _, path := range []string{"forward", "input"} {
			trials = append(trials, trial(r, "none", path, 60000))
			for _, kind := range []string{"kfw", "nft", "iptables"} {
				for i, n := range []string{"1", "100", "1000"} {
					trials = append(trials, trial(r, kind+"-"+n, path, 50000/float64(i+1)))
					if path == "forward" {
						trials = append(trials, trial(r, kind+"-"+n, "inject", 120000))
					}
				}
			}
		}
		trials = append(trials, trial(r, "none", "inject", 120000))
	}
	cost := []results.Trial{trial(1, "quiet", "drop", 60000), trial(1, "kfw-events", "drop", 40000), trial(1, "drop-monitor", "drop", 15000)}
	scrapes := results.ScrapeSet{Rules: 1000,
		Kfw:  results.ScrapeSample{Seconds: []float64{0.01, 0.012}, CPUNanos: []float64{9e6, 1e7}, Bytes: 240000, Series: 4122},
		Node: results.ScrapeSample{Seconds: []float64{0.008, 0.009}, CPUNanos: []float64{8e6, 8e6}, Bytes: 46000, Series: 377},
	}
	bench := func(name string, metrics map[string]float64) results.Benchmark {
		return results.Benchmark{Pkg: "github.com/kfwlabs/kfw_exporter/bench", Name: name + "-2", N: 10, Metrics: metrics}
	}
	return &results.Run{
		Commands: []string{"make modules", "make bench"},
		Started:  time.Date(2026, 12, 4, 22, 0, 0, 0, time.UTC), Elapsed: 15 * time.Minute,
		Machine: results.Machine{CPUs: 2, CPUModel: "AMD EPYC", MemoryBytes: 24 << 30, VMCPUs: 2, VMMemoryMB: 1024,
			Tools: map[string]string{"nft": "nftables v1.0.6"}},
		GoBench: []results.Benchmark{
			bench("BenchmarkScrape/rules=1000", map[string]float64{"ns/op": 7e6, "B/op": 2.6e6, "allocs/op": 17000, "MB/s": 30}),
			bench("BenchmarkGather/rules=1000", map[string]float64{"ns/op": 6e6, "B/op": 1.7e6, "allocs/op": 17000}),
			bench("BenchmarkDecodeBatch/ipv4", map[string]float64{"ns/op": 90000, "ns/event": 950, "allocs/event": 0}),
			bench("BenchmarkConsumerEvent", map[string]float64{"ns/op": 120, "allocs/op": 0}),
		},
		HostScrape: &scrapes,
		Guest: &results.Guest{Kernel: "generic", Release: "6.1.0-57-amd64", CPUs: 2,
			Packet: &results.PacketPath{Rounds: 2, TrialSeconds: 3, Senders: 1, FrameBytes: 60, RuleCounts: []int{1, 100, 1000}, Trials: trials},
			Events: &results.Events{StepSeconds: 3, ReadBuffer: 4 << 20, DropMonitorQueueLen: 1000, Cost: cost,
				Series: []results.EventSeries{{Name: "dedicated", Producers: 1, ConsumerCPU: 1,
					Steps:     []results.EventStep{step(5000, 5000, 5000, 0, 0), step(20000, 19000, 16000, 3000, 1000)},
					Sustained: &results.Sustained{Step: step(5000, 15000, 15000, 0, 0), RSSSamples: []uint64{18 << 20, 19 << 20}, RSSBefore: 16 << 20},
					Overload:  &results.Overload{Step: step(5000, 30000, 10000, 20000, 0), StallSeconds: 4},
					DropMonitor: []results.DropMonitorStep{{Offered: 5000, Seconds: 1, Sent: 5000, Drops: 5000, Alerts: 5000, Matching: 5000},
						{Offered: 20000, Seconds: 1, Sent: 12000, Drops: 12000, Alerts: 7000, Matching: 7000, QueueDropped: 1000, Overruns: 1}},
				}}},
			Exporter: &results.ExporterInVM{Scrapes: []results.ScrapeSet{scrapes}},
		},
	}
}

func TestMarkdown(t *testing.T) {
	md, err := Markdown(sampleRun(), "/repo/bench/results", "/repo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Summary", "## Machine and method", "## 1. Packet path", "### Forward (router FORWARD hook)",
		"### Local input (router LOCAL_IN hook)", "## 2. Event pipeline", "### dedicated:", "## 3. Exporter",
		"## 4. Go micro-benchmarks", "## Not measured", "## Raw results",
		"**forward hook, 100 rules**", "kfw/nftables = 1.00", "**lossless up to 5,000 events/s**",
		"kernel queue 1,000, socket (ENOBUFS) 2,000", "Sustained for 1 s at 15,000/s: lossless.", "20,000 of 30,000 events lost (kernel queue 0, socket 20,000)",
		"**Above the consumer's capacity.**", "every alert delivered up to 5,000 drops/s",
		"[`bench/results/go-bench.txt`](bench/results/go-bench.txt)", "| iptables-1000 | 16,666 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"NaN", "%!", "Inf"} {
		if strings.Contains(md, bad) {
			t.Errorf("report contains %q", bad)
		}
	}
	if _, err := Markdown(&results.Run{}, "/r", "/r"); err == nil {
		t.Error("a run without VM results rendered")
	}
}
