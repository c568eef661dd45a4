package collector

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// presetCounter is a constant counter whose label pairs were built once and
// are shared between samples and scrapes. prometheus.MustNewConstMetric
// builds them again for every sample, which is most of the cost of a scrape
// with thousands of rules. The registry treats label pairs as immutable.
type presetCounter struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair // from prometheus.MakeLabelPairs: sorted, never modified
	value  float64
}

func (m *presetCounter) Desc() *prometheus.Desc { return m.desc }

func (m *presetCounter) Write(out *dto.Metric) error {
	out.Label = m.labels
	out.Counter = &dto.Counter{Value: &m.value}
	return nil
}
