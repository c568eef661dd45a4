package collector

import (
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

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
	return c.proc.ruleStats(func(r abi.ProcRuleCounters) error {
		rule, action := strconv.FormatUint(uint64(r.ID), 10), r.Action.String()
		ch <- c.packets.metric(float64(r.Packets), rule, action)
		ch <- c.bytes.metric(float64(r.Bytes), rule, action)
		ch <- c.events.metric(float64(r.Events), rule, action)
		ch <- c.suppressedEv.metric(float64(r.Suppressed), rule, action)
		return nil
	})
}
