package collector

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// fullTableRegistry has every collector on the 4096-rule fixture, with one
// drop series per rule in the events collector as well.
func fullTableRegistry(b *testing.B) *prometheus.Registry {
	cfg := testConfig("rules4096")
	cfg.EventsMaxRules = 4096
	k, _ := newTestCollector(b, cfg, "stats", "hooks", "rules", "events")
	c := k.Collectors["events"].(*eventsCollector).consumer
	for i := uint32(1); i <= 4096; i++ {
		feed(c, drop(i*10, 6))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(k)
	return reg
}

// BenchmarkGather4096Rules is the collection part of a scrape of a full
// default-sized table: four /proc reads, about 16k rule series and 4k event
// series, gathered and sorted.
func BenchmarkGather4096Rules(b *testing.B) {
	reg := fullTableRegistry(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScrape4096Rules adds the HTTP handler and the text encoding.
func BenchmarkScrape4096Rules(b *testing.B) {
	h := promhttp.HandlerFor(fullTableRegistry(b), promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		b.SetBytes(int64(w.Body.Len()))
		_, _ = io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkConsumerEvent is the per-event cost of the consumer in steady
// state: events spread over 64 rules, both families, three hooks.
func BenchmarkConsumerEvent(b *testing.B) {
	logger, _ := newTestLogger()
	c := newEventConsumer(1024, logger)
	evs := make([]netlinkclient.Event, 0, 64*6)
	for r := uint32(1); r <= 64; r++ {
		for _, fam := range []uint8{abi.FamilyIPv4, abi.FamilyIPv6} {
			for _, hook := range abi.Hooks() {
				e := drop(r, 6)
				e.Family, e.Hook, e.Timestamp = fam, hook, 1
				evs = append(evs, e)
			}
		}
	}
	feed(c, evs...)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.HandleEvent(&evs[i])
		if i++; i == len(evs) {
			i = 0
		}
	}
}
