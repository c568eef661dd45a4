package grafanagen

//lint:file-ignore SA1019 The SDK prefers dashboardv2, Grafana 12's experimental resource format, which
// Grafana 11 cannot import; the classic dashboard model imports into both.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Overview builds "kfw overview": is kfw up and reporting, what it does to
// traffic, and how healthy the event pipeline is. Its rates come from the
// recording rules of dashboards/prometheus/kfw.rules.yml.
func Overview() (dashboard.Dashboard, error) {
	d, err := newDashboard("kfw-overview", "kfw overview",
		"kfw firewall module and kfw_exporter: status, traffic by hook and verdict, event pipeline health. "+
			"Needs the recording rules of kfw.rules.yml.").
		WithRow(dashboard.NewRowBuilder("Status")).
		WithPanel(moduleUp()).
		WithPanel(exporterUp()).
		WithPanel(subscribed()).
		WithPanel(rulesCount()).
		WithPanel(ruleTableUsed()).
		WithPanel(generation()).
		WithPanel(dropShare()).
		WithPanel(eventsLostInRange()).
		WithPanel(moduleInfo()).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(packetsByHookVerdict()).
		WithPanel(bytesByHookVerdict()).
		WithPanel(dropsByFamilyHook()).
		WithPanel(dropRateBaseline()).
		WithRow(dashboard.NewRowBuilder("Event pipeline")).
		WithPanel(eventsReceived()).
		WithPanel(eventLoss()).
		WithPanel(suppressedShare()).
		WithPanel(eventDelay()).
		WithPanel(sinceLastEvent()).
		WithPanel(resubscriptions()).
		WithRow(dashboard.NewRowBuilder("Exporter")).
		WithPanel(collectorSuccess()).
		WithPanel(collectorDuration()).
		Build()
	if err != nil {
		return dashboard.Dashboard{}, err
	}
	return finish(d), nil
}

func moduleUp() dashboardPanel {
	return statPanel(spec{
		title: "Module",
		description: "kfw_up: UP when kfw_exporter can read /proc/kfw and speaks its ABI version; DOWN when the module " +
			"is not loaded, /proc/kfw is unreadable, or its ABI version is unsupported. Alert: KfwModuleDown.",
		unit:       unitNone,
		thresholds: upDownThresholds(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_up{%s}`, sel), legend: "{{instance}}", instant: true}},
	}).Mappings(states("DOWN", "UP"))
}

func exporterUp() dashboardPanel {
	return statPanel(spec{
		title: "Exporter scrape",
		description: "Prometheus's up for kfw_exporter: whether the last scrape succeeded. While it is DOWN every other " +
			"panel is empty for that instance. Alert: KfwExporterDown.",
		unit:       unitNone,
		thresholds: upDownThresholds(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`up{%s}`, sel), legend: "{{instance}}", instant: true}},
	}).Mappings(states("DOWN", "UP"))
}

func subscribed() dashboardPanel {
	return statPanel(spec{
		title: "Events subscribed",
		description: "kfw_netlink_subscribed: whether kfw_exporter is a member of the module's events multicast group. " +
			"Without it no drop or hit event, loss or delay is measured. Alert: KfwEventsNotSubscribed.",
		unit:       unitNone,
		thresholds: upDownThresholds(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_netlink_subscribed{%s}`, sel), legend: "{{instance}}", instant: true}},
	}).Mappings(states("NO", "YES"))
}

func rulesCount() dashboardPanel {
	return statPanel(spec{
		title:       "Rules",
		description: "kfw_rules: rules in the table now.",
		unit:        unitCount,
		thresholds:  neutral(),
		width:       3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_rules{%s}`, sel), legend: "{{instance}}", instant: true}},
	})
}

func ruleTableUsed() dashboardPanel {
	return statPanel(spec{
		title: "Rule table used",
		description: "kfw_rules / kfw_rules_max: how full the rule table is. A transaction past max_rules fails " +
			"with ENOSPC. Orange from 75 %, red from 90 % (alert KfwRuleTableNearlyFull).",
		unit:       unitShare,
		thresholds: thresholds("green", step{0.75, "orange"}, step{0.9, "red"}),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_rules{%[1]s} / kfw_rules_max{%[1]s}`, sel), legend: "{{instance}}", instant: true}},
	}).Min(0).Max(1)
}

func generation() dashboardPanel {
	return statPanel(spec{
		title: "Ruleset generation",
		description: "kfw_ruleset_generation: committed ruleset transactions since the module was loaded. Each change " +
			"is also an annotation on the graphs.",
		unit:       unitNone,
		thresholds: neutral(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_ruleset_generation{%s}`, sel), legend: "{{instance}}", instant: true}},
	})
}

func dropShare() dashboardPanel {
	return statPanel(spec{
		title: "Dropped share (5m)",
		description: "Share of the packets kfw saw in the last 5 minutes that it dropped, all hooks and families. " +
			"What is normal depends on the host; see the drop rate against its baseline below.",
		unit:       unitShare,
		thresholds: neutral(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`instance:kfw_packets_dropped:ratio_rate5m{%s}`, sel), legend: "{{instance}}", instant: true}},
	}).Decimals(1)
}

func eventsLostInRange() dashboardPanel {
	return statPanel(spec{
		title: "Events lost (range)",
		description: "kfw events generated by the kernel but never received by kfw_exporter during the dashboard's " +
			"time range, counted exactly from sequence gaps (increase() may show fractions). Alert: KfwEventsLost.",
		unit:       unitCount,
		thresholds: anyIsBad(),
		width:      3, height: 4,
		targets: []target{{expr: fmt.Sprintf(`increase(kfw_events_lost_total{%s}[$__range])`, sel), legend: "{{instance}}", instant: true}},
	}).Decimals(0)
}

func moduleInfo() dashboardPanel {
	return tablePanel(spec{
		title: "Module version and instance",
		description: "kfw_module_info: the loaded module's version, ABI version and module_instance, a random id that " +
			"changes at every load (the kernel counters restart with it).",
		unit:       unitNone,
		thresholds: neutral(),
		width:      24, height: 4,
		targets: []target{{expr: fmt.Sprintf(`kfw_module_info{%s}`, sel), instant: true, table: true}},
	}).WithTransformation(organize(
		[]string{"Time", "Value", "__name__"},
		map[string]string{"abi_version": "ABI version", "module_instance": "module instance"},
		[]string{"job", "instance", "version", "abi_version", "module_instance"},
	))
}

func packetsByHookVerdict() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Packets by hook and verdict",
		description: "Packets per second kfw saw at each hook, by the verdict it gave (a rule's or the hook's default " +
			"policy), IPv4 and IPv6 together. 5-minute rates from kfw_packets_total.",
		unit:  unitPacketsPerSecond,
		width: 12, height: 8,
		targets: []target{{
			expr:   fmt.Sprintf(`sum by (job, instance, hook, verdict) (instance_family_hook_verdict:kfw_packets:rate5m{%s})`, sel),
			legend: "{{instance}} {{hook}} {{verdict}}",
		}},
	}).OverrideByRegexp(".* drop$", redSeries())
}

func bytesByHookVerdict() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Bytes by hook and verdict",
		description: "Bytes per second (IP packet length, header included) kfw saw at each hook, by verdict. " +
			"5-minute rates from kfw_bytes_total.",
		unit:  unitBytesPerSecond,
		width: 12, height: 8,
		targets: []target{{
			expr:   fmt.Sprintf(`sum by (job, instance, hook, verdict) (instance_family_hook_verdict:kfw_bytes:rate5m{%s})`, sel),
			legend: "{{instance}} {{hook}} {{verdict}}",
		}},
	}).OverrideByRegexp(".* drop$", redSeries())
}

func dropsByFamilyHook() dashboardPanel {
	return timeseriesPanel(spec{
		title:       "Drops by family and hook",
		description: "Packets per second dropped, by IP family and hook (5-minute rates).",
		unit:        unitPacketsPerSecond,
		width:       12, height: 8,
		targets: []target{{
			expr:   fmt.Sprintf(`sum by (job, instance, family, hook) (instance_family_hook_verdict:kfw_packets:rate5m{%s, verdict="drop"})`, sel),
			legend: "{{instance}} {{family}} {{hook}}",
		}},
	})
}

func dropRateBaseline() dashboardPanel {
	return withThresholdLines(timeseriesPanel(spec{
		title: "Drop rate against its baseline",
		description: "The 5-minute drop rate and the spike threshold of alert KfwDropRateSpike: 3 times the mean " +
			"drop rate of the hour before the last 10 minutes. The alert fires when the rate stays above the threshold " +
			"and above 1 packet/s (dashed line) for 5 minutes.",
		unit:       unitPacketsPerSecond,
		thresholds: thresholds("green", step{1, "orange"}),
		width:      12, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`instance_verdict:kfw_packets:rate5m{%s, verdict="drop"}`, sel), legend: "{{instance}} dropped"},
			{
				expr:   fmt.Sprintf(`3 * avg_over_time(instance_verdict:kfw_packets:rate5m{%s, verdict="drop"}[1h] offset 10m)`, sel),
				legend: "{{instance}} spike threshold",
			},
		},
	}))
}

func eventsReceived() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Events generated and received",
		description: "Events per second the kernel generated (passed the rate limits) and kfw_exporter received, by " +
			"type. Without loss the two match.",
		unit:  unitEventsPerSecond,
		width: 8, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`instance:kfw_kernel_events_generated:rate5m{%s}`, sel), legend: "{{instance}} generated"},
			{expr: fmt.Sprintf(`instance_type:kfw_events_received:rate5m{%s}`, sel), legend: "{{instance}} received {{type}}"},
		},
	})
}

func eventLoss() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Loss, overruns and errors",
		description: "Per second: events lost (exact, from sequence gaps; alert KfwEventsLost), and where they were " +
			"lost: kernel queue overflows, batch allocation failures, multicasts that hit a full socket (nobufs, any " +
			"listener), ENOBUFS seen by kfw_exporter's socket (overruns), undecodable messages. All should be 0.",
		unit:       unitCountsPerSecond,
		thresholds: anyIsBad(),
		width:      8, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`instance:kfw_events_lost:rate5m{%s}`, sel), legend: "{{instance}} lost events"},
			{expr: fmt.Sprintf(`instance:kfw_kernel_events_queue_overflows:rate5m{%s}`, sel), legend: "{{instance}} kernel queue overflows"},
			{expr: fmt.Sprintf(`instance:kfw_kernel_events_alloc_failures:rate5m{%s}`, sel), legend: "{{instance}} kernel alloc failures"},
			{expr: fmt.Sprintf(`instance:kfw_kernel_events_nobufs:rate5m{%s}`, sel), legend: "{{instance}} kernel nobufs"},
			{expr: fmt.Sprintf(`instance:kfw_netlink_overruns:rate5m{%s}`, sel), legend: "{{instance}} exporter overruns"},
			{expr: fmt.Sprintf(`instance:kfw_netlink_decode_errors:rate5m{%s}`, sel), legend: "{{instance}} decode errors"},
		},
	})
}

func suppressedShare() dashboardPanel {
	return withThresholdLines(timeseriesPanel(spec{
		title: "Events suppressed by rate limits",
		description: "Share of the events kfw wanted to report that a rule's rate limit or the global ceiling " +
			"refused: suppressed / (generated + suppressed). The packets are still counted. Alert KfwEventsSuppressed " +
			"above 10 % (dashed line) for 15 minutes; the kfw rules dashboard shows which rules.",
		unit:       unitShare,
		thresholds: thresholds("green", step{0.1, "red"}),
		width:      8, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`instance:kfw_kernel_events_suppressed:ratio_rate5m{%s}`, sel), legend: "{{instance}}"},
		},
	}).Max(1))
}

func eventDelay() dashboardPanel {
	return withThresholdLines(timeseriesPanel(spec{
		title: "Event delay",
		description: "Median and 99th percentile of the time from the kernel timestamp of an event to its receipt by " +
			"kfw_exporter (5 minutes). Growing delay means the exporter or the kernel worker falls behind; a backlog " +
			"ends in socket overruns. Dashed lines at 100 ms and 1 s.",
		unit:       unitSeconds,
		thresholds: thresholds("green", step{0.1, "orange"}, step{1, "red"}),
		width:      8, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`instance_quantile:kfw_event_delay_seconds:histogram_quantile5m{%s}`, sel), legend: "{{instance}} q{{quantile}}"},
		},
	}))
}

func sinceLastEvent() dashboardPanel {
	return statPanel(spec{
		title: "Since the last event",
		description: "Time since the kernel timestamp of the newest event kfw_exporter received. A quiet host can " +
			"legitimately go long without drops or logged hits; empty until the first event.",
		unit:       unitDurationFromSecs,
		thresholds: neutral(),
		width:      8, height: 8,
		targets: []target{{expr: fmt.Sprintf(`time() - kfw_last_event_timestamp_seconds{%s}`, sel), legend: "{{instance}}", instant: true}},
	})
}

func resubscriptions() dashboardPanel {
	return timeseriesPanel(spec{
		title: "Resubscriptions",
		description: "Times kfw_exporter joined the events group again (after a module reload or a reopened socket). " +
			"One per reload is expected; a steady stream is not.",
		unit:  unitCount,
		width: 8, height: 8,
		targets: []target{
			{expr: fmt.Sprintf(`increase(kfw_netlink_resubscriptions_total{%s}[$__rate_interval])`, sel), legend: "{{instance}}"},
		},
	}).Decimals(0)
}

func collectorSuccess() dashboardPanel {
	return statPanel(spec{
		title: "Collectors",
		description: "kfw_exporter_collector_success: whether each collector succeeded at the last scrape. FAIL " +
			"means its metrics are missing; the exporter log says why. Alert: KfwCollectorFailing.",
		unit:       unitNone,
		thresholds: upDownThresholds(),
		width:      12, height: 6,
		targets: []target{{
			expr:    fmt.Sprintf(`kfw_exporter_collector_success{%s}`, sel),
			legend:  "{{instance}} {{collector}}",
			instant: true,
		}},
	}).Mappings(states("FAIL", "OK"))
}

func collectorDuration() dashboardPanel {
	return withThresholdLines(timeseriesPanel(spec{
		title: "Collector duration",
		description: "kfw_exporter_collector_duration_seconds: time each collector took at each scrape. A full " +
			"rule table should still take milliseconds; the dashed line marks 1 s.",
		unit:       unitSeconds,
		thresholds: thresholds("green", step{1, "orange"}),
		width:      12, height: 6,
		targets: []target{{
			expr:   fmt.Sprintf(`kfw_exporter_collector_duration_seconds{%s}`, sel),
			legend: "{{instance}} {{collector}}",
		}},
	}))
}
