//go:build labvm

package kmod

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestExactCounters sends known packets in a namespace of its own and
// checks that rules and hooks count exactly those packets and bytes: UDP
// through sockets, TCP as raw SYN segments (a real connection's segment
// count depends on the stack's timing).
func TestExactCounters(t *testing.T) {
	labtest.LoadModule(t)
	for _, addr := range loopbacks {
		t.Run(familyName(addr), func(t *testing.T) {
			ns := newNetNS(t)
			fam := family(addr)
			const n, payload = 40, 100
			udpSize := udpPacketLen(addr, payload)

			recv := labtest.ListenUDP(t, ns, netip.AddrPortFrom(addr, 0))
			port := boundPort(recv)
			send := labtest.DialUDP(t, ns, netip.AddrPortFrom(addr, port))
			mustWriteRules(t, "flush",
				fmt.Sprintf("add id=10 action=accept proto=udp dport=%d hooks=output", port),
				fmt.Sprintf("add id=11 action=accept proto=udp dport=%d hooks=input", port))
			before := readHooks(t)
			sendUDP(t, send, n, payload)
			recvUDP(t, recv, n)
			checkRuleCounts(t, map[uint32]counts{10: {n, n * udpSize}, 11: {n, n * udpSize}})
			checkHookDelta(t, before, readHooks(t), map[hookKey]counts{
				{fam, abi.HookOutput, abi.ActionAccept}: {n, n * udpSize},
				{fam, abi.HookInput, abi.ActionAccept}:  {n, n * udpSize},
			})

			// TCP: accepted and counted at output, dropped at input (so the
			// stack sends no reset that would add packets).
			const dport = 4242
			syn := guest.TCPSYNSegment(addr, addr, 40000, dport)
			pkt := ipv4Packet(6, addr, addr, 0, syn)
			tcpSize := uint64(guest.IPv4HeaderLen + guest.TCPHeaderLen)
			if addr.Is6() {
				pkt = guest.IPv6Packet(6, addr, addr, syn)
				tcpSize = guest.IPv6HeaderLen + guest.TCPHeaderLen
			}
			mustWriteRules(t, "flush",
				fmt.Sprintf("add id=20 action=accept family=%s proto=tcp dport=%d hooks=output", familyName(addr), dport),
				fmt.Sprintf("add id=21 action=drop family=%s proto=tcp dport=%d hooks=input", familyName(addr), dport))
			before = readHooks(t)
			sendRaw(t, ns, addr, n, pkt)
			waitRulePackets(t, 21, n)
			checkRuleCounts(t, map[uint32]counts{20: {n, n * tcpSize}, 21: {n, n * tcpSize}})
			checkHookDelta(t, before, readHooks(t), map[hookKey]counts{
				{fam, abi.HookOutput, abi.ActionAccept}: {n, n * tcpSize},
				{fam, abi.HookInput, abi.ActionDrop}:    {n, n * tcpSize},
			})
			mustWriteRules(t, "flush")
		})
	}
}

// TestCountersSurviveUnrelatedChanges checks the counter rule of the ABI: a
// rule keeps its counters while its id and spec stay, whatever else the
// transaction does, and starts from zero when either changes.
func TestCountersSurviveUnrelatedChanges(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	recv := labtest.ListenUDP(t, ns, netip.AddrPortFrom(loopback4, 0))
	port := boundPort(recv)
	send := labtest.DialUDP(t, ns, netip.AddrPortFrom(loopback4, port))
	const n, payload = 10, 20
	size := udpPacketLen(loopback4, payload)
	rule3 := fmt.Sprintf("add id=3 action=accept proto=udp dport=%d", port)

	mustWriteRules(t, rule3, "add id=9 action=accept proto=tcp dport=1")
	sendUDP(t, send, n, payload)
	recvUDP(t, recv, n)
	// At output and at input.
	want := counts{2 * n, 2 * n * size}
	checkRuleCounts(t, map[uint32]counts{3: want})

	unchanged := []struct {
		name  string
		lines []string
	}{
		{"add another rule", []string{"add id=5 action=drop proto=udp dport=9"}},
		{"delete another rule", []string{"del id=5"}},
		{"add and delete in one write", []string{"add id=7 action=drop", "del id=7"}},
		{"change the policies", []string{"policy hook=forward action=drop", "policy hook=forward action=accept"}},
		{"re-add the same spec in another spelling", []string{"del id=3",
			fmt.Sprintf("add dport=%d-%d hooks=output,forward,input proto=17 action=accept family=any id=3", port, port)}},
		{"flush and restore everything", []string{"flush", rule3, "add id=9 action=accept proto=tcp dport=1"}},
	}
	for _, step := range unchanged {
		mustWriteRules(t, step.lines...)
		stats := readRuleStats(t)
		if got := (counts{stats[3].Packets, stats[3].Bytes}); got != want {
			t.Fatalf("after %q: rule 3 has %v, want %v kept", step.name, got, want)
		}
	}

	saved := readRules(t)
	if err := writeRules(saved); err != nil {
		t.Fatalf("restoring the saved table: %v", err)
	}
	checkRuleCounts(t, map[uint32]counts{3: want})

	// A changed spec is another rule: from zero, and the other rule keeps.
	mustWriteRules(t, "del id=3", rule3+" log=1")
	checkRuleCounts(t, map[uint32]counts{3: {}})
	sendUDP(t, send, n, payload)
	recvUDP(t, recv, n)
	checkRuleCounts(t, map[uint32]counts{3: want, 9: {}})

	// Deleted, then added again by another write: from zero.
	mustWriteRules(t, "del id=3")
	mustWriteRules(t, rule3+" log=1")
	checkRuleCounts(t, map[uint32]counts{3: {}})
}

// TestGenerationCountsCommits checks that generation moves by one per
// committed write and never otherwise.
func TestGenerationCountsCommits(t *testing.T) {
	labtest.LoadModule(t)
	if g := generation(t); g != 0 {
		t.Fatalf("generation %d after load, want 0", g)
	}
	steps := []struct {
		write string
		ok    bool
		bump  uint64
	}{
		{"add id=1 action=drop proto=udp dport=7\n", true, 1},
		{"add id=2 action=accept\nadd id=3 action=accept\ndel id=2\n", true, 1},
		{"flush\n", true, 1},
		{"flush\n", true, 1}, // a command, even one that changes nothing
		{"policy hook=input action=accept\n", true, 1},
		{"", true, 0},
		{"\n\n   \n\t\n", true, 0},
		{"# a comment\n   # another\n", true, 0},
		{"add id=4 action=drop\nadd id=4 action=drop\n", false, 0},
		{"del id=4\n", false, 0},
		{"add id=5 action=drop", true, 1}, // no final newline
	}
	want := uint64(0)
	for _, s := range steps {
		err := writeRules(s.write)
		if (err == nil) != s.ok {
			t.Fatalf("write %q: error %v, want success %v", s.write, err, s.ok)
		}
		want += s.bump
		readRules(t) // reading changes nothing
		if g := generation(t); g != want {
			t.Fatalf("after write %q: generation %d, want %d", s.write, g, want)
		}
	}
}
