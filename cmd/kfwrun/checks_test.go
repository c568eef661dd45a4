package main

import (
	"fmt"
	"strings"
	"testing"
)

// labScrape is a scrape of a healthy lab, with changes applied: a map from
// a series (as written here) to its value; "" removes the line.
func labScrape(t *testing.T, changes map[string]string) metrics {
	t.Helper()
	lines := []struct{ series, value string }{
		{`kfw_up`, "1"},
		{`kfw_rule_packets_total{action="accept",rule="10"}`, "120"},
		{`kfw_rule_packets_total{action="accept",rule="11"}`, "118"},
		{`kfw_rule_packets_total{action="accept",rule="20"}`, "60"},
		{`kfw_rule_packets_total{action="accept",rule="21"}`, "59"},
		{`kfw_rule_packets_total{action="drop",rule="30"}`, "40"},
		{`kfw_rule_packets_total{action="drop",rule="31"}`, "3"},
		{`kfw_rule_packets_total{action="drop",rule="40"}`, "0"},
		{`kfw_packets_total{family="ipv4",hook="forward",verdict="drop"}`, "45"},
		{`kfw_packets_total{family="ipv6",hook="forward",verdict="drop"}`, "8"},
		{`kfw_netlink_subscribed`, "1"},
		{`kfw_drop_events_total{family="ipv4",hook="forward",proto="udp",rule="30"}`, "40"},
		{`kfw_drop_events_total{family="ipv6",hook="forward",proto="tcp",rule="31"}`, "3"},
		{`kfw_drop_events_total{family="ipv4",hook="forward",proto="udp",rule="policy"}`, "5"},
		{`kfw_hit_events_total{family="ipv4",hook="forward",proto="tcp",rule="20"}`, "10"},
		{`kfw_rule_events_suppressed_total{action="accept",rule="20"}`, "50"},
	}
	var b strings.Builder
	for _, l := range lines {
		v, changed := changes[l.series]
		if !changed {
			v = l.value
		}
		if v != "" {
			fmt.Fprintf(&b, "%s %s\n", l.series, v)
		}
	}
	m, err := parseMetrics(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckExporter(t *testing.T) {
	if err := checkExporter(labScrape(t, nil), true); err != nil {
		t.Errorf("a healthy lab fails: %v", err)
	}
	for _, c := range []struct {
		change     map[string]string
		withEvents bool
		want       string
	}{
		{map[string]string{`kfw_up`: "0"}, false, "kfw_up is not 1"},
		{map[string]string{`kfw_up`: ""}, false, "kfw_up is not 1"},
		{map[string]string{`kfw_rule_packets_total{action="accept",rule="11"}`: "0"}, false, `kfw_rule_packets_total{rule="11"} is 0`},
		{map[string]string{`kfw_rule_packets_total{action="drop",rule="31"}`: ""}, false, `kfw_rule_packets_total{rule="31"} is 0`},
		{map[string]string{`kfw_rule_packets_total{action="drop",rule="40"}`: "2"}, false, `kfw_rule_packets_total{rule="40"} = 2`},
		{map[string]string{`kfw_rule_packets_total{action="drop",rule="40"}`: ""}, false, `kfw_rule_packets_total{rule="40"} = 0 (present: false)`},
		{map[string]string{
			`kfw_packets_total{family="ipv4",hook="forward",verdict="drop"}`: "0",
			`kfw_packets_total{family="ipv6",hook="forward",verdict="drop"}`: "0"}, false, "no packet was dropped"},
		{map[string]string{`kfw_netlink_subscribed`: "0"}, true, "kfw_netlink_subscribed is not 1"},
		{map[string]string{`kfw_drop_events_total{family="ipv4",hook="forward",proto="udp",rule="policy"}`: ""}, true, `kfw_drop_events_total{rule="policy"} is 0`},
		{map[string]string{`kfw_hit_events_total{family="ipv4",hook="forward",proto="tcp",rule="20"}`: "0"}, true, `kfw_hit_events_total{rule="20"} is 0`},
		{map[string]string{`kfw_rule_events_suppressed_total{action="accept",rule="20"}`: "0"}, true, "suppressed nothing"},
	} {
		err := checkExporter(labScrape(t, c.change), c.withEvents)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("with %v: checkExporter = %v, want an error containing %q", c.change, err, c.want)
		}
	}
	// Without events, the event metrics do not matter.
	noEvents := labScrape(t, map[string]string{`kfw_netlink_subscribed`: "0", `kfw_hit_events_total{family="ipv4",hook="forward",proto="tcp",rule="20"}`: ""})
	if err := checkExporter(noEvents, false); err != nil {
		t.Errorf("without events: %v", err)
	}
}

func TestCheckGrowth(t *testing.T) {
	before := labScrape(t, nil)
	after := labScrape(t, map[string]string{
		`kfw_rule_packets_total{action="accept",rule="10"}`: "200",
		`kfw_rule_packets_total{action="accept",rule="11"}`: "200",
		`kfw_rule_packets_total{action="accept",rule="20"}`: "100",
		`kfw_rule_packets_total{action="accept",rule="21"}`: "100",
		`kfw_rule_packets_total{action="drop",rule="30"}`:   "80",
		`kfw_rule_packets_total{action="drop",rule="31"}`:   "5",
	})
	if err := checkGrowth(before, after); err != nil {
		t.Errorf("growing counters: %v", err)
	}
	err := checkGrowth(before, before)
	if err == nil || !strings.Contains(err.Error(), `kfw_rule_packets_total{rule="10"} did not grow (120, then 120)`) {
		t.Errorf("checkGrowth of one scrape twice = %v", err)
	}
}
