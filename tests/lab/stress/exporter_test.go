//go:build labvm

package stress

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// exporter is a running $KFW_BIN/kfw_exporter on a free loopback port.
type exporter struct {
	*labtest.Process
	url    string
	client *http.Client
}

// startExporter starts kfw_exporter and waits until it answers. When the
// test ends it is stopped with SIGTERM and must exit cleanly. It starts
// from a locked thread that lives as long as the exporter: the test's
// guest.OnCPU and InNetNS goroutines end their threads, and Pdeathsig
// would fire if one of them had started it.
func startExporter(t *testing.T) *exporter {
	t.Helper()
	bin, err := guest.Bin("kfw_exporter")
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(labtest.FreePort(t)))
	e := &exporter{
		url:    "http://" + addr + "/metrics",
		client: &http.Client{Timeout: 30 * time.Second},
	}
	e.Process = labtest.StartProcess(t, "kfw_exporter", exec.Command(bin, "--web.listen-address="+addr),
		labtest.ProcessOptions{HangLimit: hangLimit, FromLockedThread: true})
	waitFor(t, "kfw_exporter to answer", func() (bool, string) {
		e.FatalIfExited(t, "at start")
		_, err := e.scrape()
		return err == nil, fmt.Sprint(err)
	})
	return e
}

// metrics is one parsed scrape: the value of every series, by name and
// then by its labels ("" for none, else `k="v",...` sorted by name).
type metrics map[string]map[string]float64

// scrape fetches and parses /metrics; anything but HTTP 200 with a well
// formed body is an error.
func (e *exporter) scrape() (metrics, error) {
	resp, err := e.client.Get(e.url)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape: reading the body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: HTTP %d: %.300s", resp.StatusCode, body)
	}
	return parseMetrics(body)
}

func parseMetrics(body []byte) (metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("scrape: parsing: %w", err)
	}
	m := metrics{}
	for name, f := range families {
		m[name] = map[string]float64{}
		for _, mt := range f.GetMetric() {
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = mt.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				v = mt.GetUntyped().GetValue()
			default:
				continue
			}
			labels := map[string]string{}
			for _, lp := range mt.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			m[name][labelKey(labels)] = v
		}
	}
	return m, nil
}

// labelKey is a canonical form of a label set.
func labelKey(labels map[string]string) string {
	var b bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	return b.String()
}

// value returns the series of name with exactly the labels kv ("k1", "v1",
// ...).
func (m metrics) value(name string, kv ...string) (float64, bool) {
	labels := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	v, ok := m[name][labelKey(labels)]
	return v, ok
}

// sum adds every series of name.
func (m metrics) sum(name string) float64 {
	var total float64
	for _, v := range m[name] {
		total += v
	}
	return total
}

// scrapeRecord is what one background scrape saw.
type scrapeRecord struct {
	seq  int
	when time.Time
	err  error
	m    metrics
}

// scraper scrapes an exporter again and again in the background, as an
// eager Prometheus would. It keeps every failure and the latest result.
type scraper struct {
	e        *exporter
	stop     func() // ends the scrapes and waits for the one in progress
	mu       sync.Mutex
	n        int
	failures []scrapeRecord
	last     scrapeRecord
}

func startScraper(t *testing.T, e *exporter, every time.Duration) *scraper {
	t.Helper()
	s := &scraper{e: e}
	s.stop = labtest.Repeat(t, every, func() {
		m, err := e.scrape()
		s.mu.Lock()
		s.n++
		r := scrapeRecord{seq: s.n, when: time.Now(), err: err, m: m}
		if err != nil {
			s.failures = append(s.failures, r)
		} else {
			s.last = r
		}
		s.mu.Unlock()
	})
	return s
}

// count returns the number of scrapes so far and the failed ones.
func (s *scraper) count() (int, []scrapeRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, append([]scrapeRecord(nil), s.failures...)
}

// waitScrape waits for a successful scrape that started after this call
// and satisfies cond, and returns it.
func (s *scraper) waitScrape(t *testing.T, what string, cond func(m metrics) (bool, string)) metrics {
	t.Helper()
	s.mu.Lock()
	after := s.n + 1 // the scrape in progress may have read /proc before now
	s.mu.Unlock()
	var m metrics
	waitFor(t, what, func() (bool, string) {
		s.mu.Lock()
		r := s.last
		s.mu.Unlock()
		if r.seq <= after {
			return false, "no new scrape yet"
		}
		m = r.m
		return cond(m)
	})
	return m
}
