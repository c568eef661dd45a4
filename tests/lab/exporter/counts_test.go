//go:build labvm

package exporter

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// The traffic of TestExactCounts, per family, from the client through the
// router to the server. Ports name the classes in the rules below.
const (
	acceptedUDP    = 30 // UDP 5001: accepted at forward (rule 10) and input (rule 11)
	acceptedUDPLen = 64
	droppedUDP     = 30 // UDP 6001: dropped at forward (rule 20, events limited to 1/s)
	droppedUDPLen  = 32
	droppedSYN     = 20 // TCP 7002: forwarded, dropped at the server's input (rule 30)
	loggedSYN      = 20 // TCP 8002: accepted at forward with a hit event (rule 40), then
	// dropped by the input policy at the server
)

var exactRules = []string{
	"flush",
	"policy hook=input action=drop",
	"policy hook=forward action=accept",
	"policy hook=output action=accept",
	"add id=10 action=accept proto=udp dport=5001 hooks=forward",
	"add id=11 action=accept proto=udp dport=5001 hooks=input",
	"add id=20 action=drop proto=udp dport=6001 hooks=forward rate=1 burst=1",
	"add id=30 action=drop proto=tcp dport=7002 hooks=input",
	"add id=40 action=accept proto=tcp dport=8002 hooks=forward log=1",
	// Telnet from a documentation network: never matches.
	"add id=90 action=drop family=ipv4 proto=tcp src=192.0.2.0/24 dport=23",
}

// TestExactCounts sends known IPv4 and IPv6, UDP and TCP packets through
// the forward and input hooks and checks every number the exporter derives
// from them: rule counters, hook counter deltas, events by rule, family,
// hook and protocol, and that drops equal drop events plus lost plus
// suppressed events; also that the scrape equals /proc/kfw exactly.
//
// The exporter serves on a Unix socket (systemd socket activation): an
// HTTP scrape over TCP would itself cross the input and output hooks.
func TestExactCounts(t *testing.T) {
	labtest.LoadModule(t)
	writeRules(t, exactRules...)
	e := startExporter(t, exporterConfig{unixSocket: true})
	e.waitSubscribed()
	topo := newQuietTopology(t)
	servers := []netip.Addr{topo.Server.IPv4.Addr(), topo.Server.IPv6.Addr()}
	sinks := map[netip.Addr]*net.UDPConn{}
	for _, s := range servers {
		sinks[s] = labtest.ListenUDP(t, topo.Server.NS, netip.AddrPortFrom(s, 5001))
	}
	waitQuiet(t)

	before := e.scrape()
	checkScrapeMatchesProc(t, before)
	for _, server := range servers {
		client := topo.Client.IPv4.Addr()
		if server.Is6() {
			client = topo.Client.IPv6.Addr()
		}
		sendUDP(t, labtest.DialUDP(t, topo.Client.NS, netip.AddrPortFrom(server, 5001)), acceptedUDP, acceptedUDPLen)
		recvUDP(t, sinks[server], acceptedUDP)
		sendUDP(t, labtest.DialUDP(t, topo.Client.NS, netip.AddrPortFrom(server, 6001)), droppedUDP, droppedUDPLen)
		sendRaw(t, topo.Client.NS, server, guest.TCPSYNPacket(netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(server, 7002)), droppedSYN)
		sendRaw(t, topo.Client.NS, server, guest.TCPSYNPacket(netip.AddrPortFrom(client, 40001), netip.AddrPortFrom(server, 8002)), loggedSYN)
	}
	waitFor(t, "the kernel to count every packet sent", func() (bool, string) {
		rs := procRuleStats(t)
		return rs[20].Packets == 2*droppedUDP && rs[30].Packets == 2*droppedSYN && rs[40].Packets == 2*loggedSYN,
			fmt.Sprintf("%+v", rs)
	})
	after := e.waitEventsSettled()
	checkScrapeMatchesProc(t, after)

	checkRuleCounters(t, after, servers)
	checkHookDeltas(t, before, after, servers)
	checkEventDeltas(t, before, after, servers)
	for _, name := range []string{"kfw_up", "kfw_netlink_subscribed"} {
		if v := after.mustValue(t, name); v != 1 {
			t.Errorf("%s %v, want 1", name, v)
		}
	}
	for _, c := range []string{"stats", "hooks", "rules", "events"} {
		if v := after.mustValue(t, "kfw_exporter_collector_success", "collector", c); v != 1 {
			t.Errorf("collector %s: success %v, want 1", c, v)
		}
	}
}

// checkScrapeMatchesProc compares a scrape with /proc/kfw read right after
// it, on a quiet system: module identity, kernel event counters, hooks and
// rules must be the very numbers of the files.
func checkScrapeMatchesProc(t *testing.T, m metrics) {
	t.Helper()
	st := labtest.ReadProcStats(t)
	info := m["kfw_module_info"]
	wantInfo := map[string]string{
		"version":         st.Version,
		"abi_version":     strconv.FormatUint(uint64(st.ABIVersion), 10),
		"module_instance": abi.FormatInstance(st.Instance),
	}
	if len(info) != 1 || !includes(info[0].labels, wantInfo) || len(info[0].labels) != len(wantInfo) || info[0].value != 1 {
		t.Errorf("kfw_module_info: %s; /proc/kfw/stats says %s", m.describe("kfw_module_info"), formatLabels(wantInfo))
	}
	for name, want := range map[string]uint64{
		"kfw_ruleset_generation":                  st.Generation,
		"kfw_rules":                               uint64(st.Rules),
		"kfw_rules_max":                           uint64(st.MaxRules),
		"kfw_kernel_events_generated_total":       st.EventsGenerated,
		"kfw_kernel_events_suppressed_total":      st.EventsSuppressed,
		"kfw_kernel_events_queue_overflows_total": st.EventsQueueOverflows,
		"kfw_kernel_events_messages_sent_total":   st.EventsMessagesSent,
		"kfw_kernel_events_no_listener_total":     st.EventsNoListener,
		"kfw_kernel_events_alloc_failures_total":  st.EventsAllocFailures,
		"kfw_kernel_events_nobufs_total":          st.EventsNobufs,
	} {
		if got := m.mustValue(t, name); got != float64(want) {
			t.Errorf("%s %v, /proc/kfw/stats says %d", name, got, want)
		}
	}
	for _, row := range procHooks(t) {
		kv := []string{"family", abi.FamilyName(row.Family), "hook", row.Hook.String(), "verdict", row.Verdict.String()}
		if got := m.mustValue(t, "kfw_packets_total", kv...); got != float64(row.Packets) {
			t.Errorf("kfw_packets_total%s %v, /proc/kfw/hooks says %d", formatLabels(pairs(kv)), got, row.Packets)
		}
		if got := m.mustValue(t, "kfw_bytes_total", kv...); got != float64(row.Bytes) {
			t.Errorf("kfw_bytes_total%s %v, /proc/kfw/hooks says %d", formatLabels(pairs(kv)), got, row.Bytes)
		}
	}
	rules := procRuleStats(t)
	for name, field := range map[string]func(abi.ProcRuleCounters) uint64{
		"kfw_rule_packets_total":           func(r abi.ProcRuleCounters) uint64 { return r.Packets },
		"kfw_rule_bytes_total":             func(r abi.ProcRuleCounters) uint64 { return r.Bytes },
		"kfw_rule_events_generated_total":  func(r abi.ProcRuleCounters) uint64 { return r.Events },
		"kfw_rule_events_suppressed_total": func(r abi.ProcRuleCounters) uint64 { return r.Suppressed },
	} {
		if len(m[name]) != len(rules) {
			t.Errorf("%s has %d series for %d rules: %s", name, len(m[name]), len(rules), m.describe(name))
		}
		for id, r := range rules {
			got := m.mustValue(t, name, "rule", strconv.FormatUint(uint64(id), 10), "action", r.Action.String())
			if got != float64(field(r)) {
				t.Errorf("%s{rule=%q} %v, /proc/kfw/rule_stats says %d", name, strconv.FormatUint(uint64(id), 10), got, field(r))
			}
		}
	}
}

// checkRuleCounters checks each rule's packets and bytes against what was
// sent: the rules were added before the links existed, and no packet of the
// stack's own matches them.
func checkRuleCounters(t *testing.T, m metrics, servers []netip.Addr) {
	t.Helper()
	type counts struct{ packets, bytes uint64 }
	want := map[string]counts{}
	add := func(rule string, n int, size uint64) {
		c := want[rule]
		c.packets += uint64(n)
		c.bytes += uint64(n) * size
		want[rule] = c
	}
	for _, s := range servers {
		h := ipHeaderLen(s)
		add("10", acceptedUDP, h+guest.UDPHeaderLen+acceptedUDPLen)
		add("11", acceptedUDP, h+guest.UDPHeaderLen+acceptedUDPLen)
		add("20", droppedUDP, h+guest.UDPHeaderLen+droppedUDPLen)
		add("30", droppedSYN, h+guest.TCPHeaderLen)
		add("40", loggedSYN, h+guest.TCPHeaderLen)
		add("90", 0, 0)
	}
	actions := map[string]string{"10": "accept", "11": "accept", "20": "drop", "30": "drop", "40": "accept", "90": "drop"}
	for rule, w := range want {
		kv := []string{"rule", rule, "action", actions[rule]}
		got := counts{uint64(m.mustValue(t, "kfw_rule_packets_total", kv...)), uint64(m.mustValue(t, "kfw_rule_bytes_total", kv...))}
		if got != w {
			t.Errorf("rule %s: kfw_rule_packets_total %d, kfw_rule_bytes_total %d; sent %d packets, %d bytes",
				rule, got.packets, got.bytes, w.packets, w.bytes)
		}
	}
}

// checkHookDeltas checks how far each family × hook × verdict series moved
// while the test sent its packets (and nothing else was sent).
func checkHookDeltas(t *testing.T, before, after metrics, servers []netip.Addr) {
	t.Helper()
	type key struct{ family, hook, verdict string }
	packets, bytes := map[key]uint64{}, map[key]uint64{}
	add := func(k key, n int, size uint64) {
		packets[k] += uint64(n)
		bytes[k] += uint64(n) * size
	}
	for _, s := range servers {
		f, h := familyLabel(s), ipHeaderLen(s)
		udpA, udpB, syn := h+guest.UDPHeaderLen+acceptedUDPLen, h+guest.UDPHeaderLen+droppedUDPLen, h+guest.TCPHeaderLen
		// Everything leaves the client at output, accepted.
		add(key{f, "output", "accept"}, acceptedUDP, udpA)
		add(key{f, "output", "accept"}, droppedUDP, udpB)
		add(key{f, "output", "accept"}, droppedSYN+loggedSYN, syn)
		// The router forwards all but the dropped UDP.
		add(key{f, "forward", "accept"}, acceptedUDP, udpA)
		add(key{f, "forward", "drop"}, droppedUDP, udpB)
		add(key{f, "forward", "accept"}, droppedSYN+loggedSYN, syn)
		// The server accepts the UDP and drops both kinds of SYN.
		add(key{f, "input", "accept"}, acceptedUDP, udpA)
		add(key{f, "input", "drop"}, droppedSYN+loggedSYN, syn)
	}
	for _, f := range []string{"ipv4", "ipv6"} {
		for _, hook := range []string{"input", "forward", "output"} {
			for _, verdict := range []string{"accept", "drop"} {
				k := key{f, hook, verdict}
				kv := []string{"family", f, "hook", hook, "verdict", verdict}
				if got := delta(t, before, after, "kfw_packets_total", kv...); got != float64(packets[k]) {
					t.Errorf("kfw_packets_total%s moved by %v, want %d", formatLabels(pairs(kv)), got, packets[k])
				}
				if got := delta(t, before, after, "kfw_bytes_total", kv...); got != float64(bytes[k]) {
					t.Errorf("kfw_bytes_total%s moved by %v, want %d", formatLabels(pairs(kv)), got, bytes[k])
				}
			}
		}
	}
}

// checkEventDeltas checks the event metrics: exact counts where no rate
// limit applies, and for every drop either a drop event, a loss or a
// suppression.
func checkEventDeltas(t *testing.T, before, after metrics, servers []netip.Addr) {
	t.Helper()
	for _, s := range servers {
		f := familyLabel(s)
		for _, c := range []struct {
			metric, rule, hook string
			want               int
		}{
			{"kfw_drop_events_total", "30", "input", droppedSYN},
			{"kfw_drop_events_total", "policy", "input", loggedSYN},
			{"kfw_hit_events_total", "40", "forward", loggedSYN},
		} {
			kv := []string{"rule", c.rule, "family", f, "hook", c.hook, "proto", "tcp"}
			if got := delta(t, before, after, c.metric, kv...); got != float64(c.want) {
				t.Errorf("%s%s moved by %v, want %d", c.metric, formatLabels(pairs(kv)), got, c.want)
			}
		}
	}

	lost := delta(t, before, after, "kfw_events_lost_total")
	if lost != 0 {
		t.Errorf("kfw_events_lost_total moved by %v in a calm test, want 0", lost)
	}
	rule20Events := sumDelta(before, after, "kfw_drop_events_total", "rule", "20", "hook", "forward", "proto", "udp")
	rule20Suppressed := delta(t, before, after, "kfw_rule_events_suppressed_total", "rule", "20", "action", "drop")
	if rule20Events+rule20Suppressed != 2*droppedUDP || rule20Suppressed == 0 {
		t.Errorf("rule 20 (rate=1 burst=1): %v drop events and %v suppressed for %d drops; want a sum of %d, some suppressed",
			rule20Events, rule20Suppressed, 2*droppedUDP, 2*droppedUDP)
	}
	if got := after.mustValue(t, "kfw_rule_events_generated_total", "rule", "20", "action", "drop"); got != rule20Events {
		t.Errorf("rule 20 generated %v events, the exporter received %v", got, rule20Events)
	}

	drops := sumDelta(before, after, "kfw_packets_total", "verdict", "drop")
	dropEvents := sumDelta(before, after, "kfw_drop_events_total")
	suppressed := delta(t, before, after, "kfw_kernel_events_suppressed_total")
	if drops != dropEvents+lost+suppressed {
		t.Errorf("%v packets dropped, but %v drop events + %v lost + %v suppressed", drops, dropEvents, lost, suppressed)
	}
	if got := delta(t, before, after, "kfw_events_received_total", "type", "drop"); got != dropEvents {
		t.Errorf("kfw_events_received_total{type=\"drop\"} moved by %v, kfw_drop_events_total by %v", got, dropEvents)
	}
	if got := delta(t, before, after, "kfw_events_received_total", "type", "hit"); got != 2*loggedSYN {
		t.Errorf("kfw_events_received_total{type=\"hit\"} moved by %v, want %d", got, 2*loggedSYN)
	}
	received := after.sum("kfw_events_received_total")
	if got := after.mustValue(t, "kfw_event_delay_seconds"); got != received {
		t.Errorf("kfw_event_delay_seconds counts %v events, %v were received", got, received)
	}
	if v, ok := after.value("kfw_last_event_timestamp_seconds"); !ok || v <= 0 {
		t.Errorf("kfw_last_event_timestamp_seconds %v (present %v) after events", v, ok)
	}
	for _, name := range []string{"kfw_netlink_overruns_total", "kfw_netlink_decode_errors_total", "kfw_events_over_rule_limit_total"} {
		if v := after.mustValue(t, name); v != 0 {
			t.Errorf("%s %v, want 0", name, v)
		}
	}
}

// delta is how far a series moved between two scrapes; a series missing
// from the first counts from 0.
func delta(t *testing.T, before, after metrics, name string, kv ...string) float64 {
	t.Helper()
	b, _ := before.value(name, kv...)
	return after.mustValue(t, name, kv...) - b
}

// sumDelta is how far the sum of the series including kv moved.
func sumDelta(before, after metrics, name string, kv ...string) float64 {
	return after.sum(name, kv...) - before.sum(name, kv...)
}
