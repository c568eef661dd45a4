package collector

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kfwlabs/kfw_exporter/abi"
)

func init() {
	registerCollector("stats", true, newStatsCollector)
}

// statsCollector exports /proc/kfw/stats: whether the module is usable, its
// identity, the ruleset and the kernel side of the event pipeline.
type statsCollector struct {
	proc   *kfwProc
	logger *slog.Logger

	up, info, generation, rules, rulesMax typedDesc
	generated, suppressed, queueOverflows typedDesc
	messagesSent, noListener              typedDesc
	allocFailures, nobufs                 typedDesc
}

func newStatsCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	kernelEvents := func(name, help string) typedDesc {
		return newTypedDesc(prometheus.BuildFQName(namespace, "kernel_events", name), help, prometheus.CounterValue)
	}
	return &statsCollector{
		proc:   newKfwProc(cfg.ProcPath),
		logger: logger,
		up: newTypedDesc("kfw_up",
			"Whether the kfw module is loaded and speaks an ABI version this exporter supports (1) or not (0).",
			prometheus.GaugeValue),
		info: newTypedDesc("kfw_module_info",
			"The loaded kfw module: its version, ABI version and instance (random id of this load).",
			prometheus.GaugeValue, "version", "abi_version", "module_instance"),
		generation: newTypedDesc("kfw_ruleset_generation",
			"Committed ruleset transactions since the module was loaded.", prometheus.GaugeValue),
		rules:    newTypedDesc("kfw_rules", "Rules in the table.", prometheus.GaugeValue),
		rulesMax: newTypedDesc("kfw_rules_max", "Capacity of the rule table (module parameter max_rules).", prometheus.GaugeValue),
		generated: kernelEvents("generated_total",
			"Events that passed the rate limits and got a sequence number: each is delivered or counted as lost."),
		suppressed: kernelEvents("suppressed_total",
			"Events not generated because a rule's rate limit or the global ceiling refused them."),
		queueOverflows: kernelEvents("queue_overflows_total",
			"Generated events dropped because their CPU's event queue was full."),
		messagesSent: kernelEvents("messages_sent_total",
			"Event batches (netlink messages) multicast to at least one listener."),
		noListener: kernelEvents("no_listener_total",
			"Event batches built but multicast to nobody because the last listener had left."),
		allocFailures: kernelEvents("alloc_failures_total",
			"Events lost because an event batch could not be allocated."),
		nobufs: kernelEvents("nobufs_total",
			"Event multicasts for which at least one listener's receive buffer was full (ENOBUFS)."),
	}, nil
}

func (c *statsCollector) descs() []typedDesc {
	return []typedDesc{c.up, c.info, c.generation, c.rules, c.rulesMax, c.generated, c.suppressed,
		c.queueOverflows, c.messagesSent, c.noListener, c.allocFailures, c.nobufs}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d.desc
	}
}

// Update reports kfw_up 0 whenever the module cannot be used. A module that
// is not loaded is a fact this collector reports, not a failure; a file it
// cannot parse or an ABI version it does not know is a failure.
func (c *statsCollector) Update(ch chan<- prometheus.Metric) error {
	st, err := c.proc.stats()
	if err != nil {
		ch <- c.up.metric(0)
		if errors.Is(err, ErrNoData) {
			c.logger.Debug("kfw module not loaded", "err", err)
			return nil
		}
		return err
	}
	ch <- c.up.metric(1)
	ch <- c.info.metric(1, st.Version, strconv.FormatUint(uint64(st.ABIVersion), 10), abi.FormatInstance(st.Instance))
	ch <- c.generation.metric(float64(st.Generation))
	ch <- c.rules.metric(float64(st.Rules))
	ch <- c.rulesMax.metric(float64(st.MaxRules))
	ch <- c.generated.metric(float64(st.EventsGenerated))
	ch <- c.suppressed.metric(float64(st.EventsSuppressed))
	ch <- c.queueOverflows.metric(float64(st.EventsQueueOverflows))
	ch <- c.messagesSent.metric(float64(st.EventsMessagesSent))
	ch <- c.noListener.metric(float64(st.EventsNoListener))
	ch <- c.allocFailures.metric(float64(st.EventsAllocFailures))
	ch <- c.nobufs.metric(float64(st.EventsNobufs))
	return nil
}
