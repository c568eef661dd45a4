package guestbench

import (
	"strings"
	"testing"
)

func TestSNMPSection(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 120 3 40 0 37 0 0 0 0\n" +
		"UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n"
	m, err := snmpSection([]byte(snmp), "Udp")
	if err != nil {
		t.Fatal(err)
	}
	if m["InDatagrams"] != 120 || m["RcvbufErrors"] != 37 {
		t.Errorf("%v", m)
	}
	if _, err := snmpSection([]byte(snmp), "Tcp"); err == nil {
		t.Error("missing section accepted")
	}
}

func TestFilterRules(t *testing.T) {
	ports := filterPorts(3)
	if len(ports) != 3 || ports[0] != fillerPortBase+1 || ports[2] != benchPort {
		t.Errorf("ports %v", ports)
	}
	rules, err := kfwRules(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1000 || rules[999].Dport.Min != benchPort || rules[0].Dport.Min == benchPort {
		t.Errorf("kfw rules: %d, last %+v", len(rules), rules[len(rules)-1])
	}
	nft := nftRuleset(10)
	if strings.Count(nft, "counter accept") != 20 || !strings.Contains(nft, "hook forward priority filter") {
		t.Errorf("nft ruleset:\n%s", nft)
	}
	ipt := iptablesRuleset(10)
	if strings.Count(ipt, "-j ACCEPT") != 20 || !strings.HasSuffix(ipt, "COMMIT\n") {
		t.Errorf("iptables ruleset:\n%s", ipt)
	}
}

func TestNftCounters(t *testing.T) {
	// Shape of nft -j list ruleset (nftables 1.0.6), trimmed.
	out := `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "ip", "name": "kfwbench", "handle": 1}},
{"chain": {"family": "ip", "table": "kfwbench", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "ip", "table": "kfwbench", "chain": "forward", "handle": 3, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 10001}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "kfwbench", "chain": "forward", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 9000}}, {"counter": {"packets": 5000, "bytes": 230000}}, {"accept": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 5, "expr": [{"counter": {"packets": 7, "bytes": 322}}, {"accept": null}]}}]}`
	rc, err := nftCounters([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if f := rc["forward"]; f.last != 5000 || f.others != 0 {
		t.Errorf("forward %+v", f)
	}
	if in := rc["input"]; in.last != 7 {
		t.Errorf("input %+v", in)
	}
}
