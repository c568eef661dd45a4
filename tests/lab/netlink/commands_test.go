//go:build labvm

package netlink

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// TestStatsMatchProc compares KFW_CMD_GET_STATS with /proc/kfw/stats at
// quiet moments: after load, after rules, after events.
func TestStatsMatchProc(t *testing.T) {
	labtest.LoadModule(t, "max_rules=321")
	cl := labtest.DialNetlink(t)
	compare := func(when string) {
		t.Helper()
		got, err := cl.Stats(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if want := labtest.ReadProcStats(t); got != want {
			t.Errorf("%s: netlink stats\n%+v\n/proc/kfw/stats\n%+v", when, got, want)
		}
	}
	compare("after load")

	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output", "add id=2 action=accept")
	compare("after a /proc write")

	ns := newNetNS(t)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	c := labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
	if err := sendDropped(c, 30, 10); err != nil {
		t.Fatal(err)
	}
	generated, _ := checkAccounting(t, rec, labtest.ReadProcStats(t).Instance, tally{}, 0)
	if generated != 30 {
		t.Errorf("generated %d, want 30", generated)
	}
	compare("after events")
	st := labtest.ReadProcStats(t)
	if st.MaxRules != 321 || st.Rules != 2 || st.Generation != 1 || st.EventsMessagesSent == 0 {
		t.Errorf("stats %+v: want max_rules 321, 2 rules, generation 1, some messages sent", st)
	}
}

// TestDumpMatchesProc dumps the table with counters and compares it with
// /proc/kfw/rules and /proc/kfw/rule_stats, rule by rule.
func TestDumpMatchesProc(t *testing.T) {
	labtest.LoadModule(t)
	cl := labtest.DialNetlink(t)
	writeRules(t,
		"add id=3 action=drop family=ipv6 proto=tcp src=2001:db8::/32 dst=2001:db8:1::1 sport=1-1023 dport=22 iif=veth0 hooks=input,forward log=1 rate=100 burst=200",
		"add id=5 action=accept proto=udp dport=53 oif=lo hooks=output",
		"add id=7 action=drop family=ipv4 proto=icmp src=10.0.0.0/8",
		"add id=9 action=drop proto=udp dport=9 hooks=output",
		"add id=65535 action=accept proto=200",
		"policy hook=forward action=drop")
	ns := newNetNS(t)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	for _, a := range []string{"127.0.0.1:9", "[::1]:9"} {
		c := labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort(a))
		if err := sendDropped(c, 7, 33); err != nil {
			t.Fatal(err)
		}
	}
	checkAccounting(t, rec, labtest.ReadProcStats(t).Instance, tally{}, 0)

	rules, err := cl.Rules(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var dumped []string
	for _, ri := range rules {
		dumped = append(dumped, "add "+ri.Rule.String())
	}
	procLines := strings.Split(strings.TrimSuffix(labtest.ReadProc(t, abi.ProcRules), "\n"), "\n")
	var procAdds []string
	for _, l := range procLines {
		if strings.HasPrefix(l, "add ") {
			procAdds = append(procAdds, l)
		}
	}
	if strings.Join(dumped, "\n") != strings.Join(procAdds, "\n") {
		t.Errorf("dump:\n%s\n/proc/kfw/rules:\n%s", strings.Join(dumped, "\n"), strings.Join(procAdds, "\n"))
	}

	stats := procRuleStats(t)
	if len(stats) != len(rules) {
		t.Fatalf("%d rules dumped, %d in rule_stats", len(rules), len(stats))
	}
	for i, ri := range rules {
		row := stats[i]
		got := abi.ProcRuleCounters{ID: uint32(ri.Rule.ID), Action: ri.Rule.Action, Packets: ri.Counters.Packets,
			Bytes: ri.Counters.Bytes, Events: ri.Counters.Events, Suppressed: ri.Counters.Suppressed}
		if got != row {
			t.Errorf("rule %d: dump %+v, rule_stats %+v", ri.Rule.ID, got, row)
		}
	}
	if r9 := stats[3]; r9.ID != 9 || r9.Packets != 14 || r9.Bytes != 7*(20+8+33)+7*(40+8+33) || r9.Events != 14 {
		t.Errorf("rule 9 counters %+v: want 14 packets, their bytes, 14 events", r9)
	}

	policies, err := cl.Policies(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []abi.Policy{{Hook: abi.HookInput, Action: abi.ActionAccept}, {Hook: abi.HookForward, Action: abi.ActionDrop}, {Hook: abi.HookOutput, Action: abi.ActionAccept}}
	if fmt.Sprint(policies) != fmt.Sprint(want) {
		t.Errorf("policies %v, want %v", policies, want)
	}
}

// bigTable returns n rules whose text is well over a page.
func bigTable(n int) []abi.Rule {
	rules := make([]abi.Rule, n)
	for i := range rules {
		r, err := abi.ParseRule(strings.Fields(fmt.Sprintf(
			"id=%d action=drop family=ipv6 proto=tcp src=2001:db8:%x::/48 dst=2001:db8:ffff:%x::/64 dport=%d-%d hooks=input,forward log=1 rate=%d",
			i+1, i, i, 1000+i, 2000+i, i+1)))
		if err != nil {
			panic(err)
		}
		rules[i] = r
	}
	return rules
}

// TestReplaceLargerThanPage loads a table far larger than the one page a
// /proc write takes, in one REPLACE: one generation, every rule, the
// policies given, and counters kept for rules that stay the same.
func TestReplaceLargerThanPage(t *testing.T) {
	labtest.LoadModule(t)
	cl := labtest.DialNetlink(t)
	ns := newNetNS(t)
	writeRules(t, "add id=1 action=accept proto=udp dport=9 hooks=output")
	c := labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)

	keep, err := abi.ParseRule(strings.Fields("id=1 action=accept proto=udp dport=9 hooks=output"))
	if err != nil {
		t.Fatal(err)
	}
	rules := append([]abi.Rule{keep}, bigTable(400)...)
	for i := 1; i < len(rules); i++ {
		rules[i].ID += 1
	}
	var text strings.Builder
	for _, r := range rules {
		text.WriteString("add " + r.String() + "\n")
	}
	if text.Len() < 8*abi.MaxProcWriteBytes {
		t.Fatalf("the table is only %d bytes of text", text.Len())
	}
	policies := []abi.Policy{{Hook: abi.HookInput, Action: abi.ActionDrop}}
	if err := cl.Replace(ctx(t), policies, rules); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t)
	if after.generation != before.generation+1 {
		t.Errorf("generation %d -> %d, want one step", before.generation, after.generation)
	}
	want := "flush\npolicy hook=input action=drop\npolicy hook=forward action=accept\npolicy hook=output action=accept\n" +
		text.String()
	if after.rules != want {
		t.Errorf("/proc/kfw/rules after REPLACE differs from what was sent (%d vs %d bytes)", len(after.rules), len(want))
	}
	if row := procRuleStats(t)[0]; row.ID != 1 || row.Packets != 1 {
		t.Errorf("rule 1 kept its spec but its counters are %+v, want 1 packet", row)
	}
	// Restore the input policy: the test's own namespace has none, but be tidy.
	if err := cl.SetPolicy(ctx(t), abi.Policy{Hook: abi.HookInput, Action: abi.ActionAccept}); err != nil {
		t.Fatal(err)
	}
}

// TestCommandsRoundTrip runs each mutating command once and checks its
// effect on /proc and the generation.
func TestCommandsRoundTrip(t *testing.T) {
	labtest.LoadModule(t)
	cl := labtest.DialNetlink(t)
	step := func(what string, do func() error, wantRules string) {
		t.Helper()
		before := labtest.ReadProcStats(t).Generation
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if g := labtest.ReadProcStats(t).Generation; g != before+1 {
			t.Errorf("%s: generation %d -> %d", what, before, g)
		}
		if got := labtest.ReadProc(t, abi.ProcRules); got != wantRules {
			t.Errorf("%s: /proc/kfw/rules\n%s\nwant\n%s", what, got, wantRules)
		}
	}
	const policies = "flush\npolicy hook=input action=accept\npolicy hook=forward action=accept\npolicy hook=output action=accept\n"
	r20, _ := abi.ParseRule(strings.Fields("id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200"))
	r10, _ := abi.ParseRule(strings.Fields("id=10 action=accept src=fd00::/8 iif=eth0"))
	step("new rule 20", func() error { return cl.AddRule(ctx(t), r20) },
		policies+"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n")
	step("new rule 10", func() error { return cl.AddRule(ctx(t), r10) },
		policies+"add id=10 action=accept src=fd00::/8 iif=eth0\n"+
			"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n")
	step("del rule 20", func() error { return cl.DelRule(ctx(t), 20) },
		policies+"add id=10 action=accept src=fd00::/8 iif=eth0\n")
	step("set policies", func() error {
		return cl.SetPolicy(ctx(t), abi.Policy{Hook: abi.HookForward, Action: abi.ActionDrop},
			abi.Policy{Hook: abi.HookOutput, Action: abi.ActionAccept})
	}, "flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n"+
		"add id=10 action=accept src=fd00::/8 iif=eth0\n")
	step("flush", func() error { return cl.Flush(ctx(t)) },
		"flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n")
	step("empty replace", func() error { return cl.Replace(ctx(t), nil, nil) },
		"flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n")
}

// TestOtherNamespace uses the family from a network namespace other than
// the initial one (netnsok): commands work there on the one global table,
// but events are multicast in the initial namespace only, so a listener
// in the other namespace hears nothing while one in the initial
// namespace hears every drop, including that namespace's.
func TestOtherNamespace(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	var cl *netlinkclient.Client
	labtest.InNetNS(t, ns, func() (err error) {
		cl, err = netlinkclient.Dial(abi.GenlName)
		return err
	})
	defer cl.Close()
	addRule(t, cl, "id=1 action=drop proto=udp dport=9 hooks=output")
	if got := labtest.ReadProcStats(t).Rules; got != 1 {
		t.Fatalf("a rule added from another namespace: %d rules in the table", got)
	}

	outside := subscribe(t, netlinkclient.SubscriberConfig{})
	inside := subscribeIn(t, ns, netlinkclient.SubscriberConfig{})
	c := labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
	if err := sendDropped(c, 10, 8); err != nil {
		t.Fatal(err)
	}
	instance := labtest.ReadProcStats(t).Instance
	if generated, _ := checkAccounting(t, outside, instance, tally{}, 0); generated != 10 {
		t.Errorf("generated %d events for 10 drops", generated)
	}
	if n := len(inside.eventsWhere(nil)); n != 0 {
		t.Errorf("a listener outside the initial namespace received %d events", n)
	}
}

// TestFamilyAlias checks that asking for the family by name can load the
// module: kfw.ko carries the generic netlink alias modprobe looks for.
func TestFamilyAlias(t *testing.T) {
	out, err := guest.Run("modinfo", "-F", "alias", guest.ModulePath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "net-pf-16-proto-16-family-kfw\n") {
		t.Errorf("kfw.ko aliases %q lack net-pf-16-proto-16-family-kfw", out)
	}
}
