package collector

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kfwlabs/kfw_exporter/abi"
)

func init() {
	registerCollector("hooks", true, newHooksCollector)
}

// hooksCollector exports /proc/kfw/hooks: every packet kfw saw, by family,
// hook and the verdict it gave.
type hooksCollector struct {
	proc           *kfwProc
	packets, bytes typedDesc
}

func newHooksCollector(cfg Config, _ *slog.Logger) (Collector, error) {
	labels := []string{"family", "hook", "verdict"}
	return &hooksCollector{
		proc: newKfwProc(cfg.ProcPath),
		packets: newTypedDesc("kfw_packets_total",
			"Packets kfw saw at a hook, by the verdict it gave (a rule's or the default policy's).",
			prometheus.CounterValue, labels...),
		bytes: newTypedDesc("kfw_bytes_total",
			"Bytes (IP packet length, header included) kfw saw at a hook, by verdict.",
			prometheus.CounterValue, labels...),
	}, nil
}

func (c *hooksCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.packets.desc
	ch <- c.bytes.desc
}

func (c *hooksCollector) Update(ch chan<- prometheus.Metric) error {
	if err := c.proc.checkModule(); err != nil {
		return err
	}
	rows, err := c.proc.hooks()
	if err != nil {
		return err
	}
	for _, r := range rows {
		family, hook, verdict := abi.FamilyName(r.Family), r.Hook.String(), r.Verdict.String()
		ch <- c.packets.metric(float64(r.Packets), family, hook, verdict)
		ch <- c.bytes.metric(float64(r.Bytes), family, hook, verdict)
	}
	return nil
}
