package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// scriptedSource runs the steps a test sends it on its own goroutine, as a
// netlinkclient.Subscriber calls its handler, and tells when each is done.
type scriptedSource struct {
	steps chan func(netlinkclient.Handler)
	done  chan struct{}
}

func newScriptedSource() *scriptedSource {
	return &scriptedSource{steps: make(chan func(netlinkclient.Handler)), done: make(chan struct{})}
}

func (s *scriptedSource) Run(ctx context.Context, h netlinkclient.Handler) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case step := <-s.steps:
			step(h)
			s.done <- struct{}{}
		}
	}
}

// do runs step on the source's goroutine and waits for it.
func (s *scriptedSource) do(step func(netlinkclient.Handler)) {
	s.steps <- step
	<-s.done
}

// startEvents builds the events collector on procPath with its source
// running until the test ends.
func startEvents(t *testing.T, procPath string, src EventSource, maxRules int) (*KfwCollector, *eventsCollector, *logBuffer) {
	t.Helper()
	k, logs := newTestCollector(t, Config{ProcPath: procPath, EventSource: src, EventsMaxRules: maxRules}, "events")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := k.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return k, k.Collectors["events"].(*eventsCollector), logs
}

// copyFixture copies a fixture tree into a temporary procfs the test may change.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(fixturePath(name))); err != nil {
		t.Fatal(err)
	}
	return root
}

// editKfwFile rewrites one /proc/kfw file of a copied tree.
func editKfwFile(t *testing.T, root, file string, edit func(string) string) {
	t.Helper()
	path := filepath.Join(root, abi.ProcDir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
}

func deleteRuleRow(id string) func(string) string {
	return func(s string) string {
		lines := strings.SplitAfter(s, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, id+" ") {
				return strings.Join(append(lines[:i:i], lines[i+1:]...), "")
			}
		}
		panic("no rule " + id)
	}
}

func setGeneration(g int) func(string) string {
	return func(s string) string {
		i := strings.Index(s, "generation ")
		j := i + strings.IndexByte(s[i:], '\n')
		return s[:i] + fmt.Sprintf("generation %d", g) + s[j:]
	}
}

// eventSeriesText is the exposition of the drop and hit series alone.
func eventSeriesText(t *testing.T, k *KfwCollector) string {
	t.Helper()
	var b strings.Builder
	mfs, err := stableGatherer(t, k).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kfw_drop_events_total" && mf.GetName() != "kfw_hit_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "%s{", strings.TrimSuffix(strings.TrimPrefix(mf.GetName(), "kfw_"), "_events_total"))
			for i, l := range m.GetLabel() {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, "%s=%s", l.GetName(), l.GetValue())
			}
			fmt.Fprintf(&b, "} %v\n", m.GetCounter().GetValue())
		}
	}
	return b.String()
}

func wantSeries(t *testing.T, k *KfwCollector, want string) {
	t.Helper()
	if got := eventSeriesText(t, k); got != want {
		t.Errorf("series:\n%s\nwant:\n%s", got, want)
	}
}

func TestEventsCountPerLabel(t *testing.T) {
	k, c, _ := startEvents(t, fixturePath("proc"), idleSource{}, 1024)
	v6fwd := drop(20, 17)
	v6fwd.Family, v6fwd.Hook = abi.FamilyIPv6, abi.HookForward
	out := hit(10, 6)
	out.Hook = abi.HookOutput
	// Values outside the ABI: two different ones make one series each.
	oddFamily, oddFamily2, oddHook, oddHook2 := drop(40, 6), drop(40, 6), drop(40, 6), drop(40, 6)
	oddFamily.Family, oddFamily2.Family, oddHook.Hook, oddHook2.Hook = 7, 200, 9, 3
	feed(c.consumer,
		drop(20, 6), drop(20, 6), drop(20, 6), v6fwd, out,
		drop(0, 1), drop(0, 1), drop(0, 58), drop(0, 47), drop(0, 255),
		oddFamily, oddFamily2, oddHook, oddHook2, ev(abi.EventType(9), 20, 6))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=icmp,rule=policy} 2
drop{family=ipv4,hook=input,proto=icmpv6,rule=policy} 1
drop{family=ipv4,hook=input,proto=other,rule=policy} 2
drop{family=ipv4,hook=input,proto=tcp,rule=20} 3
drop{family=ipv4,hook=unknown,proto=tcp,rule=40} 2
drop{family=ipv6,hook=forward,proto=udp,rule=20} 1
drop{family=unknown,hook=input,proto=tcp,rule=40} 2
hit{family=ipv4,hook=output,proto=tcp,rule=10} 1
`)
	want := `# HELP kfw_events_received_total Events received from the module over netlink, by type.
# TYPE kfw_events_received_total counter
kfw_events_received_total{type="drop"} 13
kfw_events_received_total{type="hit"} 1
kfw_events_received_total{type="unknown"} 1
`
	if err := testutil.GatherAndCompare(stableGatherer(t, k), strings.NewReader(want), "kfw_events_received_total"); err != nil {
		t.Error(err)
	}
}

func TestEventsFreshCollector(t *testing.T) {
	k, _, logs := startEvents(t, fixturePath("proc"), idleSource{}, 1024)
	want := `# HELP kfw_events_received_total Events received from the module over netlink, by type.
# TYPE kfw_events_received_total counter
kfw_events_received_total{type="drop"} 0
kfw_events_received_total{type="hit"} 0
# HELP kfw_events_lost_total Events the module generated that never reached this exporter, counted exactly from sequence numbers.
# TYPE kfw_events_lost_total counter
kfw_events_lost_total 0
# HELP kfw_netlink_overruns_total Times the event socket's receive buffer overflowed (ENOBUFS); the lost events are in kfw_events_lost_total.
# TYPE kfw_netlink_overruns_total counter
kfw_netlink_overruns_total 0
# HELP kfw_netlink_decode_errors_total Event messages that could not be decoded and were skipped.
# TYPE kfw_netlink_decode_errors_total counter
kfw_netlink_decode_errors_total 0
# HELP kfw_netlink_subscribed Whether the exporter is subscribed to the module's events multicast group (1) or not (0).
# TYPE kfw_netlink_subscribed gauge
kfw_netlink_subscribed 0
# HELP kfw_netlink_resubscriptions_total Subscriptions to the events group after the first one (module reloaded, socket reopened).
# TYPE kfw_netlink_resubscriptions_total counter
kfw_netlink_resubscriptions_total 0
# HELP kfw_events_over_rule_limit_total Events counted under rule="other" because --collector.events.max-rules rules already had series.
# TYPE kfw_events_over_rule_limit_total counter
kfw_events_over_rule_limit_total 0
# HELP kfw_event_delay_seconds Time from the kernel timestamp of an event to its receipt by the exporter.
# TYPE kfw_event_delay_seconds histogram
kfw_event_delay_seconds_bucket{le="0.0001"} 0
kfw_event_delay_seconds_bucket{le="0.00025"} 0
kfw_event_delay_seconds_bucket{le="0.0005"} 0
kfw_event_delay_seconds_bucket{le="0.001"} 0
kfw_event_delay_seconds_bucket{le="0.0025"} 0
kfw_event_delay_seconds_bucket{le="0.005"} 0
kfw_event_delay_seconds_bucket{le="0.01"} 0
kfw_event_delay_seconds_bucket{le="0.025"} 0
kfw_event_delay_seconds_bucket{le="0.05"} 0
kfw_event_delay_seconds_bucket{le="0.1"} 0
kfw_event_delay_seconds_bucket{le="0.25"} 0
kfw_event_delay_seconds_bucket{le="0.5"} 0
kfw_event_delay_seconds_bucket{le="1"} 0
kfw_event_delay_seconds_bucket{le="2.5"} 0
kfw_event_delay_seconds_bucket{le="5"} 0
kfw_event_delay_seconds_bucket{le="10"} 0
kfw_event_delay_seconds_bucket{le="+Inf"} 0
kfw_event_delay_seconds_sum 0
kfw_event_delay_seconds_count 0
`
	compareCollector(t, k, want+successLine("events", 1))
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("unexpected error log:\n%s", logs)
	}
}

func TestEventsLossesAndOverruns(t *testing.T) {
	src := newScriptedSource()
	k, _, _ := startEvents(t, fixturePath("proc"), src, 1024)
	src.do(func(h netlinkclient.Handler) {
		h.HandleLoss(0x5f3a9c0d12e4b7a8, 0, 5)
		h.HandleOverrun()
		h.HandleOverrun()
		h.HandleLoss(0x5f3a9c0d12e4b7a8, 1, 2)
	})
	want := `# HELP kfw_events_lost_total Events the module generated that never reached this exporter, counted exactly from sequence numbers.
# TYPE kfw_events_lost_total counter
kfw_events_lost_total 7
# HELP kfw_netlink_overruns_total Times the event socket's receive buffer overflowed (ENOBUFS); the lost events are in kfw_events_lost_total.
# TYPE kfw_netlink_overruns_total counter
kfw_netlink_overruns_total 2
`
	if err := testutil.GatherAndCompare(stableGatherer(t, k), strings.NewReader(want),
		"kfw_events_lost_total", "kfw_netlink_overruns_total"); err != nil {
		t.Error(err)
	}
}

func TestEventsInstanceChange(t *testing.T) {
	root := copyFixture(t, "proc")
	src := newScriptedSource()
	k, _, logs := startEvents(t, root, src, 1024)
	oldInst, newInst := drop(40, 6), drop(20, 6)
	oldInst.Instance, newInst.Instance = 0x5f3a9c0d12e4b7a8, 0x1111222233334444
	src.do(func(h netlinkclient.Handler) { h.HandleEvent(&oldInst) })
	wantSeries(t, k, "drop{family=ipv4,hook=input,proto=tcp,rule=40} 1\n")

	// The module is reloaded with a smaller table; its generation happens
	// to be the same. The new instance alone makes the collector read the
	// table again.
	editKfwFile(t, root, abi.ProcStats, func(s string) string {
		return strings.Replace(s, "5f3a9c0d12e4b7a8", "1111222233334444", 1)
	})
	editKfwFile(t, root, abi.ProcRuleStats, deleteRuleRow("40"))
	src.do(func(h netlinkclient.Handler) {
		h.HandleEvent(&newInst)
		h.HandleEvent(&newInst)
	})
	wantSeries(t, k, "drop{family=ipv4,hook=input,proto=tcp,rule=20} 2\n")
	// Losses are what the tracker reports, and it reported none: a new
	// instance is not a loss.
	want := `# HELP kfw_events_lost_total Events the module generated that never reached this exporter, counted exactly from sequence numbers.
# TYPE kfw_events_lost_total counter
kfw_events_lost_total 0
# HELP kfw_events_received_total Events received from the module over netlink, by type.
# TYPE kfw_events_received_total counter
kfw_events_received_total{type="drop"} 3
kfw_events_received_total{type="hit"} 0
`
	if err := testutil.GatherAndCompare(stableGatherer(t, k), strings.NewReader(want),
		"kfw_events_lost_total", "kfw_events_received_total"); err != nil {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), `msg="kfw module instance changed: module reloaded" collector=events old=5f3a9c0d12e4b7a8 new=1111222233334444`) {
		t.Errorf("no log of the reload:\n%s", logs)
	}
}

func TestEventsDecodeErrors(t *testing.T) {
	k, c, logs := startEvents(t, fixturePath("proc"), idleSource{}, 1024)
	now := time.Unix(1700000000, 0)
	c.consumer.now = func() time.Time { return now }
	for i := range 3 {
		c.consumer.HandleDecodeError(fmt.Errorf("attribute %d: short", i))
	}
	now = now.Add(decodeLogEvery)
	c.consumer.HandleDecodeError(errors.New("attribute 9: short"))
	if got := testutil.ToFloat64(onlyMetric(t, k, "kfw_netlink_decode_errors_total")); got != 4 {
		t.Errorf("decode errors = %v, want 4", got)
	}
	out := logs.String()
	if n := strings.Count(out, "could not be decoded"); n != 2 {
		t.Errorf("%d log lines for 4 errors in two minutes, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, `err="attribute 9: short" not_logged_since_last=2`) {
		t.Errorf("the second log line does not count the errors it stands for:\n%s", out)
	}
}

// onlyMetric is a collector of the one named metric of k.
func onlyMetric(t *testing.T, k *KfwCollector, name string) prometheus.Collector {
	t.Helper()
	mfs, err := stableGatherer(t, k).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x", Help: "x"}, func() float64 { return v })
		}
	}
	t.Fatalf("no single series %s", name)
	return nil
}

func value(t *testing.T, k *KfwCollector, name string) float64 {
	t.Helper()
	return testutil.ToFloat64(onlyMetric(t, k, name))
}

func TestEventsSubscriptionGoneAndBack(t *testing.T) {
	src := newScriptedSource()
	k, _, logs := startEvents(t, fixturePath("proc"), src, 1024)
	check := func(step string, subscribed, resubs float64) {
		t.Helper()
		if got := value(t, k, "kfw_netlink_subscribed"); got != subscribed {
			t.Errorf("%s: subscribed = %v, want %v", step, got, subscribed)
		}
		if got := value(t, k, "kfw_netlink_resubscriptions_total"); got != resubs {
			t.Errorf("%s: resubscriptions = %v, want %v", step, got, resubs)
		}
	}
	check("start", 0, 0)
	src.do(func(h netlinkclient.Handler) {
		h.HandleState(netlinkclient.State{Subscribed: false, Err: errors.New("family kfw not found")})
		h.HandleState(netlinkclient.State{Subscribed: false, Err: errors.New("family kfw not found")})
	})
	check("module absent at start", 0, 0)
	src.do(func(h netlinkclient.Handler) { h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 30}) })
	check("first subscription", 1, 0)
	src.do(func(h netlinkclient.Handler) {
		h.HandleState(netlinkclient.State{Subscribed: false, Err: errors.New("family kfw removed")})
	})
	check("module unloaded", 0, 0)
	src.do(func(h netlinkclient.Handler) {
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 31, Resubscribed: true})
		// Reporting the same subscription again does not count twice.
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 31, Resubscribed: true})
	})
	check("module back", 1, 1)
	// A reload seen only as a new family id is a new subscription too.
	src.do(func(h netlinkclient.Handler) {
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 32, Resubscribed: true})
	})
	check("module reloaded between two reads", 1, 2)

	out := logs.String()
	if n := strings.Count(out, `msg="not subscribed to kfw events" collector=events err="family kfw not found"`); n != 1 {
		t.Errorf("the same reason logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, `msg="not subscribed to kfw events" collector=events err="family kfw removed"`) {
		t.Errorf("no log of the unsubscription:\n%s", out)
	}
}

func TestEventsRuleLimit(t *testing.T) {
	root := copyFixture(t, "proc")
	k, c, logs := startEvents(t, root, idleSource{}, 2)
	feed(c.consumer, drop(20, 6), hit(10, 6), drop(30, 6), drop(40, 6), drop(20, 17), drop(0, 6))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=other} 2
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
drop{family=ipv4,hook=input,proto=udp,rule=20} 1
hit{family=ipv4,hook=input,proto=tcp,rule=10} 1
`)
	if got := value(t, k, "kfw_events_over_rule_limit_total"); got != 2 {
		t.Errorf("over limit = %v, want 2", got)
	}
	if n := strings.Count(logs.String(), "rule limit of the events collector reached"); n != 1 {
		t.Errorf("limit logged %d times, want once:\n%s", n, logs)
	}

	// Deleting rule 10 frees its slot for the next new rule.
	editKfwFile(t, root, abi.ProcRuleStats, deleteRuleRow("10"))
	editKfwFile(t, root, abi.ProcStats, setGeneration(8))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=other} 2
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
drop{family=ipv4,hook=input,proto=udp,rule=20} 1
`)
	feed(c.consumer, drop(40, 6), drop(30, 6))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=40} 1
drop{family=ipv4,hook=input,proto=tcp,rule=other} 3
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
drop{family=ipv4,hook=input,proto=udp,rule=20} 1
`)
	if n := strings.Count(logs.String(), "rule limit of the events collector reached"); n != 2 {
		t.Errorf("limit logged %d times, want again after the slot was taken:\n%s", n, logs)
	}
}

func TestEventsRuleLimitZero(t *testing.T) {
	k, c, _ := startEvents(t, fixturePath("proc"), idleSource{}, 0)
	feed(c.consumer, drop(20, 6), drop(0, 6), hit(10, 6))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=other} 1
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
hit{family=ipv4,hook=input,proto=tcp,rule=other} 1
`)
}

func TestEventsPruneOnGenerationChange(t *testing.T) {
	root := copyFixture(t, "proc")
	k, c, _ := startEvents(t, root, idleSource{}, 1024)
	feed(c.consumer, drop(20, 6), drop(30, 6), drop(99, 6), drop(0, 6))
	// Rule 99 is not in the table.
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=30} 1
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
`)
	// The table is read again only when its generation changes.
	editKfwFile(t, root, abi.ProcRuleStats, deleteRuleRow("30"))
	wantSeries(t, k, `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=30} 1
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
`)
	editKfwFile(t, root, abi.ProcStats, setGeneration(8))
	want := `drop{family=ipv4,hook=input,proto=tcp,rule=20} 1
drop{family=ipv4,hook=input,proto=tcp,rule=policy} 1
`
	wantSeries(t, k, want)
	// A late event of the deleted rule does not bring it back: the next
	// scrape prunes it against the table it already knows.
	feed(c.consumer, drop(30, 6))
	wantSeries(t, k, want)
	// The module gone: nothing to compare with, the series stay.
	if err := os.RemoveAll(filepath.Join(root, abi.ProcDir)); err != nil {
		t.Fatal(err)
	}
	wantSeries(t, k, want)
	if got := value(t, k, "kfw_exporter_collector_success"); got != 1 {
		t.Errorf("success = %v with the module absent, want 1", got)
	}
}

func TestEventsPruneSparesSeriesBornAfterMark(t *testing.T) {
	logger, _ := newTestLogger()
	c := newEventConsumer(1024, logger)
	var table ruleSet
	table.add(20)
	feed(c, drop(20, 6), drop(50, 6))
	mark := c.mark()
	// Rule 60 was added after the table was read: its events must survive.
	feed(c, drop(60, 6))
	c.prune(&table, mark)
	var rules []uint32
	for k := range c.series {
		rules = append(rules, k.rule)
	}
	if len(rules) != 2 || !(c.series[eventKey{abi.EventDrop, 20, abi.FamilyIPv4, abi.HookInput, protoTCP}] != nil &&
		c.series[eventKey{abi.EventDrop, 60, abi.FamilyIPv4, abi.HookInput, protoTCP}] != nil) {
		t.Errorf("rules with series after the prune: %v, want 20 and 60", rules)
	}
	c.prune(&table, c.mark())
	if len(c.series) != 1 || len(c.rules) != 1 {
		t.Errorf("after a second prune: %d series, %d rules; want rule 20 alone", len(c.series), len(c.rules))
	}
}

func TestEventsCollectorTableErrors(t *testing.T) {
	for _, tc := range []struct{ fixture, log string }{
		{"abi2", "abi2/kfw/stats:1: unsupported ABI version 2"},
		{"garbled/rule_stats-non-numeric", `rule_stats-non-numeric/kfw/rule_stats:4: packets:`},
		{"garbled/stats-truncated", `stats-truncated/kfw/stats:5: truncated`},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			k, c, logs := startEvents(t, fixturePath(tc.fixture), idleSource{}, 1024)
			feed(c.consumer, drop(20, 6))
			// The counts do not come from /proc: they are still exported.
			wantSeries(t, k, "drop{family=ipv4,hook=input,proto=tcp,rule=20} 1\n")
			if got := value(t, k, "kfw_exporter_collector_success"); got != 0 {
				t.Errorf("success = %v, want 0", got)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log does not contain %q:\n%s", tc.log, logs)
			}
		})
	}
}

func TestEventsDelayAndLastTimestamp(t *testing.T) {
	k, c, _ := startEvents(t, fixturePath("proc"), idleSource{}, 1024)
	now := time.Unix(1700000000, 0)
	c.consumer.now = func() time.Time { return now }
	stamp := func(d time.Duration) netlinkclient.Event {
		e := drop(20, 6)
		e.Timestamp = now.Add(-d).UnixNano()
		return e
	}
	// 50µs, 300µs, 2ms, 7s, and one from a clock that stepped back: 0.
	feed(c.consumer, stamp(50*time.Microsecond), stamp(300*time.Microsecond), stamp(2*time.Millisecond),
		stamp(7*time.Second), stamp(-time.Second))
	want := `# HELP kfw_event_delay_seconds Time from the kernel timestamp of an event to its receipt by the exporter.
# TYPE kfw_event_delay_seconds histogram
kfw_event_delay_seconds_bucket{le="0.0001"} 2
kfw_event_delay_seconds_bucket{le="0.00025"} 2
kfw_event_delay_seconds_bucket{le="0.0005"} 3
kfw_event_delay_seconds_bucket{le="0.001"} 3
kfw_event_delay_seconds_bucket{le="0.0025"} 4
kfw_event_delay_seconds_bucket{le="0.005"} 4
kfw_event_delay_seconds_bucket{le="0.01"} 4
kfw_event_delay_seconds_bucket{le="0.025"} 4
kfw_event_delay_seconds_bucket{le="0.05"} 4
kfw_event_delay_seconds_bucket{le="0.1"} 4
kfw_event_delay_seconds_bucket{le="0.25"} 4
kfw_event_delay_seconds_bucket{le="0.5"} 4
kfw_event_delay_seconds_bucket{le="1"} 4
kfw_event_delay_seconds_bucket{le="2.5"} 4
kfw_event_delay_seconds_bucket{le="5"} 4
kfw_event_delay_seconds_bucket{le="10"} 5
kfw_event_delay_seconds_bucket{le="+Inf"} 5
kfw_event_delay_seconds_sum 7.00235
kfw_event_delay_seconds_count 5
# HELP kfw_last_event_timestamp_seconds Kernel timestamp (CLOCK_REALTIME) of the newest event received; absent until the first one.
# TYPE kfw_last_event_timestamp_seconds gauge
kfw_last_event_timestamp_seconds 1.700000001e+09
`
	if err := testutil.GatherAndCompare(stableGatherer(t, k), strings.NewReader(want),
		"kfw_event_delay_seconds", "kfw_last_event_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// flakySource fails its first run at once and then behaves.
type flakySource struct {
	runs    atomic.Int32
	running chan struct{}
}

func (f *flakySource) Run(ctx context.Context, h netlinkclient.Handler) error {
	if f.runs.Add(1) == 1 {
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 30})
		return errors.New("socket: operation not permitted")
	}
	close(f.running)
	<-ctx.Done()
	return ctx.Err()
}

func TestEventsRunRestartsAStoppedSource(t *testing.T) {
	src := &flakySource{running: make(chan struct{})}
	k, logs := newTestCollector(t, Config{ProcPath: fixturePath("proc"), EventSource: src, EventsMaxRules: 1}, "events")
	c := k.Collectors["events"].(*eventsCollector)
	c.retryMin = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Run(ctx) }()
	<-src.running
	if got := value(t, k, "kfw_netlink_subscribed"); got != 0 {
		t.Errorf("subscribed = %v after the source stopped, want 0", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if src.runs.Load() != 2 {
		t.Errorf("%d runs, want 2", src.runs.Load())
	}
	if !strings.Contains(logs.String(), `level=ERROR msg="event source stopped; restarting it" collector=events err="socket: operation not permitted" delay=1ms`) {
		t.Errorf("no log of the restart:\n%s", logs)
	}
}

// TestEventsConcurrentScrapes is for -race: the consumer counts while
// scrapes read and prune, and nothing is lost or counted twice.
func TestEventsConcurrentScrapes(t *testing.T) {
	root := copyFixture(t, "proc")
	k, c, _ := startEvents(t, root, idleSource{}, 3)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(k)
	const events = 20000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		rules := []uint32{0, 10, 20, 30, 40, 99, 65535}
		for i := range events {
			e := drop(rules[i%len(rules)], uint8(i%7))
			c.consumer.HandleEvent(&e)
		}
		close(stop)
	})
	for range 4 {
		wg.Go(func() {
			for {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	wg.Wait()
	want := fmt.Sprintf(`# HELP kfw_events_received_total Events received from the module over netlink, by type.
# TYPE kfw_events_received_total counter
kfw_events_received_total{type="drop"} %d
kfw_events_received_total{type="hit"} 0
`, events)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kfw_events_received_total"); err != nil {
		t.Error(err)
	}
}
