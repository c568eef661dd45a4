package grafanagen

//lint:file-ignore SA1019 The SDK prefers dashboardv2, Grafana 12's experimental resource format, which
// Grafana 11 cannot import; the classic dashboard model imports into both.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// selRule adds the rule variable to sel.
const selRule = sel + `, rule=~"$rule"`

// Rules builds "kfw rules": what each rule of the table does. Per-rule
// series are read raw, not through recording rules: a table holds up to
// max_rules rules per host, and recording them all would double the
// largest part of kfw's series for a dashboard read now and then.
func Rules() (dashboard.Dashboard, error) {
	d, err := newDashboard("kfw-rules", "kfw rules",
		"kfw rule table: per-rule packet, byte and event rates, the rules that drop most, rules that never "+
			"matched, per-rule suppressed events and the current table.").
		WithVariable(ruleVariable()).
		WithRow(dashboard.NewRowBuilder("Top rules")).
		WithPanel(topDroppingRules()).
		WithPanel(topSuppressedRules()).
		WithRow(dashboard.NewRowBuilder("Per rule")).
		WithPanel(rulePackets()).
		WithPanel(ruleBytes()).
		WithPanel(ruleSuppressed()).
		WithPanel(ruleEvents()).
		WithRow(dashboard.NewRowBuilder("Rule table")).
		WithPanel(neverMatched()).
		WithPanel(currentRules()).
		Build()
	if err != nil {
		return dashboard.Dashboard{}, err
	}
	return finish(d), nil
}

func ruleVariable() *dashboard.QueryVariableBuilder {
	return queryVariable("rule", "Rule",
		`label_values(kfw_rule_packets_total{job=~"$job", instance=~"$instance"}, rule)`, true)
}

func topDroppingRules() dashboardPanel {
	return barGaugePanel(spec{
		title: "Top 10 rules by dropped packets",
		description: "Drop rules that dropped the most packets during the dashboard's time range " +
			"(kfw_rule_packets_total of action=drop). Drops by the hooks' default policies are on the kfw overview.",
		unit:       unitCount,
		thresholds: neutral(),
		width:      12, height: 8,
		targets: []target{{
			expr:    fmt.Sprintf(`topk(10, increase(kfw_rule_packets_total{%s, action="drop"}[$__range]))`, selRule),
			legend:  "{{instance}} rule {{rule}}",
			instant: true,
		}},
	}).Decimals(0)
}

func topSuppressedRules() dashboardPanel {
	return barGaugePanel(spec{
		title: "Top 10 rules by suppressed events",
		description: "Rules whose events a rate limit (the rule's rate/burst or the module's event_rate_limit) refused " +
			"most during the time range (kfw_rule_events_suppressed_total): their packets are counted but not reported " +
			"one by one. Raise the rule's rate or burst if the events matter. Alert: KfwEventsSuppressed.",
		unit:       unitCount,
		thresholds: anyIsBad(),
		width:      12, height: 8,
		targets: []target{{
			expr:    fmt.Sprintf(`topk(10, increase(kfw_rule_events_suppressed_total{%s}[$__range]))`, selRule),
			legend:  "{{instance}} rule {{rule}}",
			instant: true,
		}},
	}).Decimals(0)
}

func rulePackets() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Packets per rule",
		description: "Packets per second each rule matched, all hooks and families (kfw_rule_packets_total). " +
			"A rule's counters restart when the rule is changed or the module is reloaded.",
		unit:  unitPacketsPerSecond,
		width: 12, height: 8,
		targets: []target{{
			expr:   fmt.Sprintf(`rate(kfw_rule_packets_total{%s}[$__rate_interval])`, selRule),
			legend: "{{instance}} rule {{rule}} ({{action}})",
		}},
	})
}

func ruleBytes() dashboardPanel {
	return timeseriesPanel(spec{
		title:       "Bytes per rule",
		description: "Bytes per second (IP packet length) of the packets each rule matched (kfw_rule_bytes_total).",
		unit:        unitBytesPerSecond,
		width:       12, height: 8,
		targets: []target{{
			expr:   fmt.Sprintf(`rate(kfw_rule_bytes_total{%s}[$__rate_interval])`, selRule),
			legend: "{{instance}} rule {{rule}} ({{action}})",
		}},
	})
}

func ruleSuppressed() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Suppressed events per rule",
		description: "Events per second of each rule refused by its own rate limit or the global ceiling " +
			"(kfw_rule_events_suppressed_total), next to the events generated for it (kfw_rule_events_generated_total).",
		unit:       unitEventsPerSecond,
		thresholds: anyIsBad(),
		width:      12, height: 8,
		targets: []target{
			{
				expr:   fmt.Sprintf(`rate(kfw_rule_events_suppressed_total{%s}[$__rate_interval])`, selRule),
				legend: "{{instance}} rule {{rule}} suppressed",
			},
			{
				expr:   fmt.Sprintf(`rate(kfw_rule_events_generated_total{%s}[$__rate_interval])`, selRule),
				legend: "{{instance}} rule {{rule}} generated",
			},
		},
	})
}

func ruleEvents() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Events received by rule, hook and protocol",
		description: "Drop and hit events per second received by kfw_exporter (kfw_drop_events_total, " +
			"kfw_hit_events_total). Rule \"policy\" is a hook's default policy; rule \"other\" collects rules " +
			"beyond the exporter's --collector.events.max-rules.",
		unit:  unitEventsPerSecond,
		width: 12, height: 8,
		targets: []target{
			{
				expr:   fmt.Sprintf(`sum by (job, instance, rule, hook, proto) (rate(kfw_drop_events_total{%s}[$__rate_interval]))`, selRule),
				legend: "{{instance}} drop rule {{rule}} {{hook}} proto {{proto}}",
			},
			{
				expr:   fmt.Sprintf(`sum by (job, instance, rule, hook, proto) (rate(kfw_hit_events_total{%s}[$__rate_interval]))`, selRule),
				legend: "{{instance}} hit rule {{rule}} {{hook}} proto {{proto}}",
			},
		},
	})
}

func neverMatched() dashboardPanel {
	return tablePanel(spec{
		title: "Rules that never matched",
		description: "Rules whose packet counter is still 0: no packet matched them since they were added or last " +
			"changed (or since the module was loaded). Candidates for removal, or rules shadowed by an earlier one.",
		unit:       unitNone,
		thresholds: neutral(),
		width:      8, height: 10,
		targets: []target{{
			expr:    fmt.Sprintf(`kfw_rule_packets_total{%s} == 0`, selRule),
			instant: true,
			table:   true,
		}},
	}).WithTransformation(organize(
		[]string{"Time", "Value", "__name__", "job"},
		nil,
		[]string{"instance", "rule", "action"},
	))
}

func currentRules() dashboardPanel {
	return tablePanel(spec{
		title: "Current rules",
		description: "Every rule in the table with its counters since it was added or last changed: packets, " +
			"bytes, the packet rate of the last 5 minutes, events generated and events suppressed. " +
			"`cat /proc/kfw/rules` or `kfwctl rules` shows the rules themselves.",
		unit:       unitCount,
		thresholds: neutral(),
		width:      16, height: 10,
		targets: []target{
			{expr: fmt.Sprintf(`kfw_rule_packets_total{%s}`, selRule), instant: true, table: true},
			{expr: fmt.Sprintf(`kfw_rule_bytes_total{%s}`, selRule), instant: true, table: true},
			{expr: fmt.Sprintf(`rate(kfw_rule_packets_total{%s}[5m])`, selRule), instant: true, table: true},
			{expr: fmt.Sprintf(`kfw_rule_events_generated_total{%s}`, selRule), instant: true, table: true},
			{expr: fmt.Sprintf(`kfw_rule_events_suppressed_total{%s}`, selRule), instant: true, table: true},
		},
	}).
		WithTransformation(mergeTables()).
		WithTransformation(organize(
			[]string{"Time", "__name__", "job"},
			map[string]string{
				"Value #A": "Packets",
				"Value #B": "Bytes",
				"Value #C": "Packets/s (5m)",
				"Value #D": "Events",
				"Value #E": "Suppressed",
			},
			[]string{"instance", "rule", "action", "Value #A", "Value #B", "Value #C", "Value #D", "Value #E"},
		)).
		OverrideByName("Bytes", columnUnit(unitBytes)).
		OverrideByName("Packets/s (5m)", columnUnit(unitPacketsPerSecond))
}
