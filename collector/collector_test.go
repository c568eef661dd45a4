package collector

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// logBuffer collects log output; collectors log from parallel goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// idleSource is an event source that delivers nothing.
type idleSource struct{}

func (idleSource) Run(ctx context.Context, _ netlinkclient.Handler) error {
	<-ctx.Done()
	return ctx.Err()
}

func testConfig(fixture string) Config {
	return Config{ProcPath: fixturePath(fixture), EventSource: idleSource{}, EventsMaxRules: 1024}
}

// newTestCollector builds a KfwCollector running only the named collectors,
// whatever the command line flags say.
func newTestCollector(t testing.TB, cfg Config, names ...string) (*KfwCollector, *logBuffer) {
	t.Helper()
	logger, logs := newTestLogger()
	k := &KfwCollector{Collectors: map[string]Collector{}, logger: logger}
	for _, n := range names {
		c, err := factories[n](cfg, logger.With("collector", n))
		if err != nil {
			t.Fatalf("collector %s: %v", n, err)
		}
		k.Collectors[n] = c
	}
	return k, logs
}

// stableGatherer gathers c through a pedantic registry and leaves out the
// collector durations, the only values that change from run to run.
func stableGatherer(t testing.TB, c prometheus.Collector) prometheus.Gatherer {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := reg.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool {
			return mf.GetName() == "kfw_exporter_collector_duration_seconds"
		}), err
	})
}

// compareCollector checks everything a collector exports against want.
func compareCollector(t *testing.T, c prometheus.Collector, want string) {
	t.Helper()
	if err := testutil.GatherAndCompare(stableGatherer(t, c), strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func successLine(name string, v int) string {
	return `# HELP kfw_exporter_collector_success kfw_exporter: whether a collector succeeded (1) or failed (0) during the scrape.
# TYPE kfw_exporter_collector_success gauge
kfw_exporter_collector_success{collector="` + name + `"} ` + map[int]string{0: "0", 1: "1"}[v] + "\n"
}

func TestRegisterCollectorFlags(t *testing.T) {
	saved := map[string]bool{}
	for n, s := range collectorState {
		saved[n] = *s
	}
	t.Cleanup(func() {
		for n, v := range saved {
			*collectorState[n] = v
		}
		clear(forcedCollectors)
	})
	if _, err := kingpin.CommandLine.Parse([]string{"--no-collector.hooks"}); err != nil {
		t.Fatal(err)
	}
	k, err := NewKfwCollector(testConfig("proc"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(func(yield func(string) bool) {
		for n := range k.Collectors {
			if !yield(n) {
				return
			}
		}
	})
	if want := []string{"events", "rules", "stats"}; !slices.Equal(got, want) {
		t.Errorf("enabled %v, want %v", got, want)
	}

	clear(forcedCollectors)
	if _, err := kingpin.CommandLine.Parse([]string{"--collector.rules"}); err != nil {
		t.Fatal(err)
	}
	DisableDefaultCollectors()
	for n, s := range collectorState {
		if *s != (n == "rules") {
			t.Errorf("after DisableDefaultCollectors with --collector.rules: %s enabled = %v", n, *s)
		}
	}
}

func TestNewKfwCollectorFactoryError(t *testing.T) {
	saved := *collectorState["events"]
	t.Cleanup(func() { *collectorState["events"] = saved })
	*collectorState["events"] = true
	_, err := NewKfwCollector(Config{ProcPath: fixturePath("proc")}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "collector events: no event source") {
		t.Errorf("got %v, want the events collector to refuse a missing source", err)
	}
}

// failing is a collector that sends one metric and then fails.
type failing struct {
	desc *prometheus.Desc
	err  error
}

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failing) Update(ch chan<- prometheus.Metric) error {
	ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, 1)
	return f.err
}

func TestKfwCollectorReportsEachCollector(t *testing.T) {
	logger, logs := newTestLogger()
	k := &KfwCollector{logger: logger, Collectors: map[string]Collector{
		"ok":     failing{prometheus.NewDesc("test_ok", "ok", nil, nil), nil},
		"nodata": failing{prometheus.NewDesc("test_nodata", "no data", nil, nil), ErrNoData},
		"broken": failing{prometheus.NewDesc("test_broken", "broken", nil, nil), errors.New("file is garbled")},
	}}
	want := `# HELP kfw_exporter_collector_success kfw_exporter: whether a collector succeeded (1) or failed (0) during the scrape.
# TYPE kfw_exporter_collector_success gauge
kfw_exporter_collector_success{collector="broken"} 0
kfw_exporter_collector_success{collector="nodata"} 0
kfw_exporter_collector_success{collector="ok"} 1
# HELP test_broken broken
# TYPE test_broken gauge
test_broken 1
# HELP test_nodata no data
# TYPE test_nodata gauge
test_nodata 1
# HELP test_ok ok
# TYPE test_ok gauge
test_ok 1
`
	compareCollector(t, k, want)
	if n := testutil.CollectAndCount(k, "kfw_exporter_collector_duration_seconds"); n != 3 {
		t.Errorf("%d duration series, want 3", n)
	}
	out := logs.String()
	if !strings.Contains(out, `level=ERROR msg="collector failed" collector=broken`) || !strings.Contains(out, `err="file is garbled"`) {
		t.Errorf("no error log for the broken collector:\n%s", out)
	}
	if !strings.Contains(out, `level=DEBUG msg="collector returned no data" collector=nodata`) {
		t.Errorf("no debug log for the collector without data:\n%s", out)
	}
}

func TestKfwCollectorRunStopsWithContext(t *testing.T) {
	k, _ := newTestCollector(t, testConfig("proc"), "stats", "events")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// allCollectorsWithEvents is every collector on the proc fixture, with
// events of every kind counted, so that every metric family exists.
func allCollectorsWithEvents(t *testing.T) *KfwCollector {
	k, _ := newTestCollector(t, testConfig("proc"), "stats", "hooks", "rules", "events")
	ec := k.Collectors["events"].(*eventsCollector).consumer
	feed(ec, drop(20, 6), hit(10, 17), drop(0, 1), ev(9, 0, 1))
	ec.HandleLoss(1, 0, 2)
	ec.HandleOverrun()
	ec.HandleDecodeError(errors.New("bad"))
	ec.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 30})
	return k
}

func TestMetricsLint(t *testing.T) {
	k := allCollectorsWithEvents(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(k)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) < 30 {
		t.Errorf("only %d metric families: some collector exported nothing", len(mfs))
	}
}

func TestMetricsPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus)")
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(allCollectorsWithEvents(t))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	enc := expfmt.NewEncoder(&text, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = &text
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
