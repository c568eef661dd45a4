//go:build labvm

package exporter

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one series of a scrape: its labels and value (a histogram's
// sample count).
type sample struct {
	labels map[string]string
	value  float64
}

// metrics is one parsed scrape, by metric name.
type metrics map[string][]sample

// parseMetrics parses the Prometheus text format; a series that appears
// twice is an error.
func parseMetrics(body []byte) (metrics, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing the scrape: %w", err)
	}
	m := metrics{}
	for name, f := range families {
		for _, mt := range f.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, lp := range mt.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				s.value = mt.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				s.value = mt.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				s.value = float64(mt.GetHistogram().GetSampleCount())
			default:
				s.value = mt.GetUntyped().GetValue()
			}
			for _, other := range m[name] {
				if maps.Equal(other.labels, s.labels) {
					return nil, fmt.Errorf("the scrape has %s%s twice", name, formatLabels(s.labels))
				}
			}
			m[name] = append(m[name], s)
		}
	}
	return m, nil
}

// pairs turns "k1", "v1", "k2", "v2" into a label map.
func pairs(kv []string) map[string]string {
	if len(kv)%2 != 0 {
		panic(fmt.Sprintf("odd label list %q", kv))
	}
	l := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// value returns the series of name whose labels are exactly kv.
func (m metrics) value(name string, kv ...string) (float64, bool) {
	want := pairs(kv)
	for _, s := range m[name] {
		if maps.Equal(s.labels, want) {
			return s.value, true
		}
	}
	return 0, false
}

// mustValue is value, failing the test when the series is missing.
func (m metrics) mustValue(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	v, ok := m.value(name, kv...)
	if !ok {
		t.Fatalf("no series %s%s in the scrape (it has %s)", name, formatLabels(pairs(kv)), m.describe(name))
	}
	return v
}

// sum adds the series of name whose labels include kv (all of them
// without kv); a missing metric sums to 0.
func (m metrics) sum(name string, kv ...string) float64 {
	want := pairs(kv)
	var total float64
	for _, s := range m[name] {
		if includes(s.labels, want) {
			total += s.value
		}
	}
	return total
}

func includes(labels, want map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// labelValues lists the distinct values of label over every series of
// every metric whose name starts with prefix, sorted.
func (m metrics) labelValues(prefix, label string) []string {
	seen := map[string]bool{}
	for name, series := range m {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, s := range series {
			if v, ok := s.labels[label]; ok {
				seen[v] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// describe lists the series of name, for messages.
func (m metrics) describe(name string) string {
	var out []string
	for _, s := range m[name] {
		out = append(out, fmt.Sprintf("%s%s %v", name, formatLabels(s.labels), s.value))
	}
	if len(out) == 0 {
		return "no " + name
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, fmt.Sprintf("%s=%q", k, l[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
