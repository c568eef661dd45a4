package collector

import (
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kfwlabs/kfw_exporter/abi"
)

func init() {
	registerCollector("rules", true, newRulesCollector)
}

// rulesCollector exports /proc/kfw/rule_stats: per-rule counters. Its series
// follow the table: a deleted rule's series are gone at the next scrape.
type rulesCollector struct {
	proc                                 *kfwProc
	packets, bytes, events, suppressedEv typedDesc
	// labels of the rows of the last scrape, in table order: a table
	// that did not change is exported without building labels again.
	labels atomic.Pointer[[]ruleLabels]
}

// ruleLabels are the label pairs of one rule, shared by its four series.
type ruleLabels struct {
	id     uint32
	action abi.Action
	pairs  []*dto.LabelPair
}

func newRulesCollector(cfg Config, _ *slog.Logger) (Collector, error) {
	labels := []string{"rule", "action"}
	return &rulesCollector{
		proc: newKfwProc(cfg.ProcPath),
		packets: newTypedDesc("kfw_rule_packets_total",
			"Packets the rule matched, at any hook, both families.", prometheus.CounterValue, labels...),
		bytes: newTypedDesc("kfw_rule_bytes_total",
			"Bytes (IP packet length) of the packets the rule matched.", prometheus.CounterValue, labels...),
		events: newTypedDesc("kfw_rule_events_generated_total",
			"Events generated for the rule (drop events, or hit events with log=1).", prometheus.CounterValue, labels...),
		suppressedEv: newTypedDesc("kfw_rule_events_suppressed_total",
			"Events of the rule refused by its own rate limit or by the global ceiling.", prometheus.CounterValue, labels...),
	}, nil
}

func (c *rulesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets.desc
	ch <- c.bytes.desc
	ch <- c.events.desc
	ch <- c.suppressedEv.desc
}

// Update streams the table: rows parsed before a garbled line are exported,
// and the garbled line fails the collector.
func (c *rulesCollector) Update(ch chan<- prometheus.Metric) error {
	if err := c.proc.checkModule(); err != nil {
		return err
	}
	var prev []ruleLabels
	if p := c.labels.Load(); p != nil {
		prev = *p
	}
	var (
		next    []ruleLabels // built from the first row that differs from prev
		changed bool
		n       int
	)
	err := c.proc.ruleStats(func(r abi.ProcRuleCounters) error {
		var l ruleLabels
		if !changed && n < len(prev) && prev[n].id == r.ID && prev[n].action == r.Action {
			l = prev[n]
		} else {
			if !changed {
				changed = true
				next = append(make([]ruleLabels, 0, max(len(prev), n+1)), prev[:n]...)
			}
			l = ruleLabels{r.ID, r.Action, prometheus.MakeLabelPairs(c.packets.desc,
				[]string{strconv.FormatUint(uint64(r.ID), 10), r.Action.String()})}
		}
		if changed {
			next = append(next, l)
		}
		n++
		m := &[4]presetCounter{
			{c.packets.desc, l.pairs, float64(r.Packets)},
			{c.bytes.desc, l.pairs, float64(r.Bytes)},
			{c.events.desc, l.pairs, float64(r.Events)},
			{c.suppressedEv.desc, l.pairs, float64(r.Suppressed)},
		}
		for i := range m {
			ch <- &m[i]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !changed && n < len(prev) {
		// Rows deleted at the end: do not keep their labels around.
		next, changed = prev[:n:n], true
	}
	if changed {
		c.labels.Store(&next)
	}
	return nil
}
