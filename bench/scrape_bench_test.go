package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/bench/internal/procfixture"
	"github.com/kfwlabs/kfw_exporter/collector"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// scrapeSizes are the table sizes of the scrape benchmarks: a small
// ruleset, a large one, the module's default max_rules.
var scrapeSizes = []int{10, 1000, 4096}

// oneEventPerRule is an event source that delivers one drop event for each
// rule of a procfixture table, as kfw_exporter would have seen after some
// traffic, then idles: every rule has its event series.
type oneEventPerRule struct {
	rules int
	fed   chan struct{}
}

func (s oneEventPerRule) Run(ctx context.Context, h netlinkclient.Handler) error {
	h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 30})
	for i := 1; i <= s.rules; i++ {
		h.HandleEvent(&netlinkclient.Event{
			Type: abi.EventDrop, Rule: procfixture.RuleID(i), Family: abi.FamilyIPv4, Hook: abi.HookForward,
			Proto: 6, Instance: procfixture.Instance, Seq: uint64(i),
		})
	}
	close(s.fed)
	<-ctx.Done()
	return nil
}

// defaultCollectors enables the collectors kfw_exporter enables by
// default: their flags take their defaults when the command line is
// parsed.
var defaultCollectors = sync.OnceValue(func() error {
	_, err := kingpin.CommandLine.Parse(nil)
	return err
})

// scrapeRegistry is a registry with kfw_exporter's default collectors on a
// table of n rules, each with one event series.
func scrapeRegistry(b *testing.B, n int) *prometheus.Registry {
	b.Helper()
	if err := defaultCollectors(); err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	if err := procfixture.Write(root, n); err != nil {
		b.Fatal(err)
	}
	src := oneEventPerRule{rules: n, fed: make(chan struct{})}
	k, err := collector.NewKfwCollector(collector.Config{ProcPath: root, EventSource: src, EventsMaxRules: n},
		slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	<-src.fed
	reg := prometheus.NewRegistry()
	reg.MustRegister(k)
	return reg
}

// BenchmarkGather is the collection part of a scrape: the /proc reads and
// parsing, and building and sorting every series (about 4 per rule, 1 event
// series per rule).
func BenchmarkGather(b *testing.B) {
	for _, n := range scrapeSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			reg := scrapeRegistry(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScrape is a whole scrape through promhttp's handler, text
// format, no compression: what one GET /metrics costs the exporter besides
// its process and Go runtime metrics.
func BenchmarkScrape(b *testing.B) {
	for _, n := range scrapeSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			h := promhttp.HandlerFor(scrapeRegistry(b, n), promhttp.HandlerOpts{})
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
				size = w.Body.Len()
				_, _ = io.Copy(io.Discard, w.Body)
			}
			b.SetBytes(int64(size))
		})
	}
}
