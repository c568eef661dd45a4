//go:build labvm

package exporter

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// scrapeRecord is what one scrape of the background scraper saw.
type scrapeRecord struct {
	err  error // a failed request or an answer other than HTTP 200
	m    metrics
	when time.Time
}

// scraper scrapes an exporter again and again in the background, as a
// too eager Prometheus would, and keeps every result.
type scraper struct {
	e       *exporter
	stop    func() // ends the scrapes and waits for the one in progress
	mu      sync.Mutex
	records []scrapeRecord
}

func startScraper(t *testing.T, e *exporter) *scraper {
	s := &scraper{e: e}
	s.stop = labtest.Repeat(t, 50*time.Millisecond, func() {
		m, err := e.scrapeErr()
		s.mu.Lock()
		s.records = append(s.records, scrapeRecord{err: err, m: m, when: time.Now()})
		s.mu.Unlock()
	})
	return s
}

// all returns the records so far.
func (s *scraper) all() []scrapeRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.records)
}

// last returns the newest successful scrape (nil before the first).
func (s *scraper) last() metrics {
	recs := s.all()
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].err == nil {
			return recs[i].m
		}
	}
	return nil
}

// waitScrape waits until a scrape satisfies cond and returns it.
func (s *scraper) waitScrape(t *testing.T, what string, cond func(m metrics) bool) metrics {
	t.Helper()
	var m metrics
	waitFor(t, what, func() (bool, string) {
		m = s.last()
		if m == nil {
			return false, "no scrape yet"
		}
		return cond(m), summary(m)
	})
	return m
}

// summary describes the health series of a scrape, for messages.
func summary(m metrics) string {
	var parts []string
	for _, name := range []string{"kfw_up", "kfw_netlink_subscribed", "kfw_netlink_resubscriptions_total",
		"kfw_events_lost_total", "kfw_events_received_total", "kfw_module_info"} {
		parts = append(parts, m.describe(name))
	}
	return strings.Join(parts, "; ")
}

// transitions returns the values of one series over the scrapes that had
// it, with repeats collapsed: 1, 0, 1 for a gauge that dropped once.
func transitions(recs []scrapeRecord, name string) []float64 {
	var out []float64
	for _, r := range recs {
		if r.err != nil {
			continue
		}
		v, ok := r.m.value(name)
		if ok && (len(out) == 0 || out[len(out)-1] != v) {
			out = append(out, v)
		}
	}
	return out
}

// loopbackTraffic opens, in a namespace of its own, one socket whose
// datagrams rule dropRule drops at output (port 9) and one whose datagrams
// rule hitRule accepts with a hit event (port 10, where a socket listens).
func loopbackTraffic(t *testing.T) (drop, hit *net.UDPConn) {
	t.Helper()
	ns := newNetNS(t)
	lo := netip.MustParseAddr("127.0.0.1")
	sink := labtest.ListenUDP(t, ns, netip.AddrPortFrom(lo, 10))
	go drain(sink)
	return labtest.DialUDP(t, ns, netip.AddrPortFrom(lo, 9)), labtest.DialUDP(t, ns, netip.AddrPortFrom(lo, 10))
}

// drain reads a socket until it is closed.
func drain(c *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// TestReloadWhileScraping unloads and reloads the module while events flow
// and the exporter is scraped every 50 ms: every scrape answers 200;
// kfw_up and kfw_netlink_subscribed go 1, 0, 1; the exporter resubscribes
// once by itself; the reload costs no phantom loss; the new instance's
// events are all accounted for; and the series of the old table's rules
// disappear once the new table is in place.
func TestReloadWhileScraping(t *testing.T) {
	labtest.LoadModule(t)
	writeRules(t,
		"add id=1 action=drop proto=udp dport=9 hooks=output",
		"add id=2 action=accept proto=udp dport=10 hooks=output log=1")
	first := labtest.ReadProcStats(t).Instance
	e := startExporter(t, exporterConfig{})
	e.waitSubscribed()
	drop, hit := loopbackTraffic(t)
	traffic := startPacedSender(t, drop, hit)
	s := startScraper(t, e)

	s.waitScrape(t, "events of both rules of the first instance", func(m metrics) bool {
		return m.sum("kfw_drop_events_total", "rule", "1") >= 20 && m.sum("kfw_hit_events_total", "rule", "2") >= 20
	})
	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("rmmod while events flow and the exporter scrapes: %v", err)
	}
	absent := s.waitScrape(t, "kfw_up 0 and kfw_netlink_subscribed 0 without the module", func(m metrics) bool {
		up, _ := m.value("kfw_up")
		sub, _ := m.value("kfw_netlink_subscribed")
		return up == 0 && sub == 0
	})
	// Without a table to compare with, the event series stay.
	for _, rule := range []string{"1", "2"} {
		if len(eventSeriesOf(absent, rule)) == 0 {
			t.Errorf("the event series of rule %s went with the module; they should stay until a table replaces it", rule)
		}
	}
	if got := absent.mustValue(t, "kfw_exporter_collector_success", "collector", "stats"); got != 1 {
		t.Errorf("stats collector success %v without the module, want 1 (absence is a fact, not a failure)", got)
	}
	settled := waitStable(t, s, "kfw_events_received_total")
	received0 := settled.sum("kfw_events_received_total")
	lost0 := settled.mustValue(t, "kfw_events_lost_total")
	resubs0 := settled.mustValue(t, "kfw_netlink_resubscriptions_total")

	if err := guest.LoadModule(); err != nil {
		t.Fatal(err)
	}
	second := labtest.ReadProcStats(t).Instance
	if second == first {
		t.Fatalf("instance %016x did not change across the reload", first)
	}
	s.waitScrape(t, "the exporter to resubscribe to the new instance", func(m metrics) bool {
		sub, _ := m.value("kfw_netlink_subscribed")
		return sub == 1
	})
	// The new table: rule 3 drops what rule 1 dropped; nothing logs hits.
	writeRules(t, "add id=3 action=drop proto=udp dport=9 hooks=output")
	s.waitScrape(t, "drop events of the new instance's rule", func(m metrics) bool {
		return m.sum("kfw_drop_events_total", "rule", "3") >= 20
	})
	traffic.stop(t)
	final := s.waitScrape(t, "every event of the new instance to be received or counted as lost", func(m metrics) bool {
		return m.sum("kfw_events_received_total")-received0+m.sum("kfw_events_lost_total")-lost0 ==
			m.sum("kfw_kernel_events_generated_total")
	})
	s.stop()

	// Every event the new instance generated was received or counted as
	// lost, and none was lost: the reload itself is no loss.
	generated := final.mustValue(t, "kfw_kernel_events_generated_total")
	received := final.sum("kfw_events_received_total") - received0
	lost := final.mustValue(t, "kfw_events_lost_total") - lost0
	if received+lost != generated || lost != 0 {
		t.Errorf("second instance: %v events generated, %v received and %v lost since the reload; want all received",
			generated, received, lost)
	}
	if got := final.mustValue(t, "kfw_netlink_resubscriptions_total"); got != resubs0+1 {
		t.Errorf("kfw_netlink_resubscriptions_total %v after one reload, was %v", got, resubs0)
	}
	wantInfo := abi.FormatInstance(second)
	if info := final["kfw_module_info"]; len(info) != 1 || info[0].labels["module_instance"] != wantInfo {
		t.Errorf("kfw_module_info after the reload: %s, want one series of instance %s", final.describe("kfw_module_info"), wantInfo)
	}
	if got := final.labelValues("kfw_", "rule"); !slices.Equal(got, []string{"3"}) {
		t.Errorf("rule label values after the new table: %q, want only the new table's rule 3", got)
	}

	recs := s.all()
	var failed []string
	for _, r := range recs {
		if r.err != nil {
			failed = append(failed, r.when.Format("15:04:05.000")+": "+r.err.Error())
		} else if v := r.m.mustValue(t, "kfw_events_lost_total"); v != lost0 {
			t.Errorf("kfw_events_lost_total %v at %s, was %v before the reload: a phantom loss", v, r.when.Format("15:04:05.000"), lost0)
			break
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d scrapes failed:\n%s", len(failed), len(recs), strings.Join(failed, "\n"))
	}
	for _, name := range []string{"kfw_up", "kfw_netlink_subscribed"} {
		if got := transitions(recs, name); !slices.Equal(got, []float64{1, 0, 1}) {
			t.Errorf("%s went %v over the scrapes, want 1, 0, 1", name, got)
		}
	}
	t.Logf("%d scrapes, all HTTP 200; instance %016x then %016x; %v events of the second instance received",
		len(recs), first, second, received)
}

// eventSeriesOf returns the event series of rule in a scrape.
func eventSeriesOf(m metrics, rule string) []sample {
	var out []sample
	for _, name := range []string{"kfw_drop_events_total", "kfw_hit_events_total"} {
		for _, s := range m[name] {
			if s.labels["rule"] == rule {
				out = append(out, s)
			}
		}
	}
	return out
}

// waitStable waits until the sum of a metric stays the same over ten
// successive scrapes and returns the last of them: the exporter has
// processed what was in its socket.
func waitStable(t *testing.T, s *scraper, name string) metrics {
	t.Helper()
	var m metrics
	waitFor(t, name+" to stop moving", func() (bool, string) {
		recs := s.all()
		if len(recs) < 10 {
			return false, "fewer than 10 scrapes"
		}
		tail := recs[len(recs)-10:]
		for _, r := range tail {
			if r.err != nil || r.m.sum(name) != tail[0].m.sum(name) {
				return false, fmt.Sprintf("%s still moving", name)
			}
		}
		m = tail[len(tail)-1].m
		return true, ""
	})
	return m
}
