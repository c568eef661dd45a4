//go:build labvm

package netlink

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// addRule adds a rule written in the rule language through netlink.
func addRule(t *testing.T, cl *netlinkclient.Client, words string) {
	t.Helper()
	r, err := abi.ParseRule(strings.Fields(words))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.AddRule(ctx(t), r); err != nil {
		t.Fatal(err)
	}
}

// eventCase sends one packet that exactly one rule (or a policy) reports.
type eventCase struct {
	name   string
	rule   string     // rule language; "" for a default-policy case
	policy abi.Policy // the policy case's
	send   func(t *testing.T) (sport uint16)
	want   netlinkclient.Event // Sport from send; CPU, Seq, Instance, Timestamp checked apart
}

// TestEventFields sends TCP and UDP, IPv4 and IPv6 packets through the
// topology, each reported by one rule (a drop, or a hit of a log=1 accept)
// or by a default policy at one hook, and checks every field of every
// event against what was sent.
func TestEventFields(t *testing.T) {
	ncpu := cpus()
	labtest.LoadModule(t)
	topo := labtest.NewTopology(t)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	cl := labtest.DialNetlink(t)
	instance := labtest.ReadProcStats(t).Instance

	router := topo.Router()
	routerC := ifindex(t, router, topo.RouterClient.Iface)
	routerS := ifindex(t, router, topo.RouterServer.Iface)
	clientIf := ifindex(t, topo.Client.NS, topo.Client.Iface)
	serverIf := ifindex(t, topo.Server.NS, topo.Server.Iface)

	const payload = 100
	var cases []eventCase
	for fi, fam := range []struct {
		name           string
		client, server netip.Addr
		family         uint8
	}{
		{"ipv4", topo.Client.IPv4.Addr(), topo.Server.IPv4.Addr(), abi.FamilyIPv4},
		{"ipv6", topo.Client.IPv6.Addr(), topo.Server.IPv6.Addr(), abi.FamilyIPv6},
	} {
		hdr := uint32(ipHeaderLen(fam.client))
		udp := func(dport uint16) func(t *testing.T) uint16 {
			return func(t *testing.T) uint16 {
				c := labtest.DialUDPFrom(t, topo.Client.NS, netip.AddrPort{}, netip.AddrPortFrom(fam.server, dport))
				if _, err := c.Write(make([]byte, payload)); err != nil {
					t.Fatal(err)
				}
				return localPort(c)
			}
		}
		syn := func(sport, dport uint16) func(t *testing.T) uint16 {
			return func(t *testing.T) uint16 {
				labtest.SendRaw(t, topo.Client.NS, fam.server, 1, 0, // once, unpaced
					guest.TCPSYNPacket(netip.AddrPortFrom(fam.client, sport), netip.AddrPortFrom(fam.server, dport)))
				return sport
			}
		}
		id := uint32(10 + 10*fi)
		port := uint16(7000 + 10*fi)
		want := func(typ abi.EventType, rule uint32, hook abi.Hook, proto uint8, dport uint16,
			iif, oif, length uint32) netlinkclient.Event {
			return netlinkclient.Event{Type: typ, Rule: rule, Family: fam.family, Hook: hook, Proto: proto,
				Src: fam.client, Dst: fam.server, Dport: dport, Iif: iif, Oif: oif, Len: length}
		}
		cases = append(cases,
			eventCase{
				name: fam.name + " udp drop at forward",
				rule: fmt.Sprintf("id=%d action=drop proto=udp dport=%d hooks=forward", id, port),
				send: udp(port),
				want: want(abi.EventDrop, id, abi.HookForward, 17, port, routerC, routerS, hdr+guest.UDPHeaderLen+payload),
			},
			eventCase{
				name: fam.name + " tcp drop at input",
				rule: fmt.Sprintf("id=%d action=drop proto=tcp dport=%d hooks=input", id+1, port+1),
				send: syn(40001, port+1),
				want: want(abi.EventDrop, id+1, abi.HookInput, 6, port+1, serverIf, 0, hdr+guest.TCPHeaderLen),
			},
			eventCase{
				name: fam.name + " udp hit at output",
				rule: fmt.Sprintf("id=%d action=accept proto=udp dport=%d hooks=output log=1", id+2, port+2),
				send: udp(port + 2),
				want: want(abi.EventHit, id+2, abi.HookOutput, 17, port+2, 0, clientIf, hdr+guest.UDPHeaderLen+payload),
			},
			eventCase{
				name: fam.name + " tcp hit at forward",
				rule: fmt.Sprintf("id=%d action=accept proto=tcp dport=%d hooks=forward log=1", id+3, port+3),
				send: syn(40003, port+3),
				want: want(abi.EventHit, id+3, abi.HookForward, 6, port+3, routerC, routerS, hdr+guest.TCPHeaderLen),
			},
			eventCase{
				name:   fam.name + " udp drop by the forward policy",
				policy: abi.Policy{Hook: abi.HookForward, Action: abi.ActionDrop},
				send:   udp(port + 4),
				want: want(abi.EventDrop, abi.RuleIDPolicy, abi.HookForward, 17, port+4, routerC, routerS,
					hdr+guest.UDPHeaderLen+payload),
			},
		)
	}

	for _, c := range cases {
		if c.rule != "" {
			addRule(t, cl, c.rule)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.rule == "" {
				if err := cl.SetPolicy(ctx(t), c.policy); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := cl.SetPolicy(ctx(t), abi.Policy{Hook: c.policy.Hook, Action: abi.ActionAccept}); err != nil {
						t.Error(err)
					}
				}()
			}
			before := time.Now()
			c.want.Sport = c.send(t)
			match := func(ev *netlinkclient.Event) bool {
				return ev.Rule == c.want.Rule && ev.Family == c.want.Family && ev.Dport == c.want.Dport
			}
			evs := rec.waitEvents(t, c.name, 1, match)
			after := time.Now()
			if len(evs) != 1 {
				t.Errorf("%d events, want 1", len(evs))
			}
			checkEvent(t, evs[0], c.want, instance, ncpu, before, after)
		})
	}

	// One packet, one event: nothing else was generated, nothing lost.
	generated, tl := checkAccounting(t, rec, instance, tally{}, 0)
	if generated != uint64(len(cases)) || tl.lost != 0 {
		t.Errorf("kernel generated %d events, listener lost %d; want %d and 0", generated, tl.lost, len(cases))
	}
	checkSequences(t, rec, instance)
	for _, row := range procRuleStats(t) {
		if row.Events != 1 || row.Suppressed != 0 {
			t.Errorf("rule %d: events %d, suppressed %d; want 1 and 0", row.ID, row.Events, row.Suppressed)
		}
	}
}

// checkEvent compares every field of an event with the one wanted.
func checkEvent(t *testing.T, got, want netlinkclient.Event, instance uint64, ncpu int, before, after time.Time) {
	t.Helper()
	if got.Timestamp < before.UnixNano() || got.Timestamp > after.UnixNano() {
		t.Errorf("timestamp %s outside [%s, %s] around the send",
			time.Unix(0, got.Timestamp).UTC(), before.UTC(), after.UTC())
	}
	if got.Instance != instance {
		t.Errorf("instance %016x, /proc/kfw/stats says %016x", got.Instance, instance)
	}
	if got.CPU >= uint32(ncpu) {
		t.Errorf("cpu %d on a VM with %d", got.CPU, ncpu)
	}
	if got.Suppressed != 0 {
		t.Errorf("suppressed %d, want 0", got.Suppressed)
	}
	got.Timestamp, got.Instance, got.CPU, got.Seq = 0, 0, 0, 0
	if got != want {
		t.Errorf("event\n got %s\nwant %s", eventString(&got), eventString(&want))
	}
}

// TestNoListenerNoEvents drops packets with nobody in the group: the event
// pipeline must not move, and a listener that joins later sees only what
// happens after it joined.
func TestNoListenerNoEvents(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output")
	c := labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
	if err := sendDropped(c, 20, 10); err != nil {
		t.Fatal(err)
	}
	st := labtest.ReadProcStats(t)
	if st.EventsGenerated+st.EventsSuppressed+st.EventsQueueOverflows+st.EventsMessagesSent+
		st.EventsNoListener+st.EventsAllocFailures+st.EventsNobufs != 0 {
		t.Errorf("event counters moved with nobody listening: %+v", st)
	}

	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	if err := sendDropped(c, 5, 10); err != nil {
		t.Fatal(err)
	}
	generated, _ := checkAccounting(t, rec, st.Instance, tally{}, 0)
	if generated != 5 {
		t.Errorf("generated %d events after joining, want 5", generated)
	}
	if got := procRuleStats(t)[0]; got.Packets != 25 || got.Events != 5 {
		t.Errorf("rule 1: packets %d events %d, want 25 and 5", got.Packets, got.Events)
	}
}
