//go:build labvm

package kmod

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// Timeouts that only bound waiting: a connection kfw accepts completes far
// sooner even on an emulated CPU, one it drops never does.
const (
	connectTimeout = 30 * time.Second
	droppedTimeout = 2 * time.Second
)

// TestFirstMatchWins checks verdicts on loopback with UDP: no rule lets
// traffic through, a drop rule drops, an accept rule with a lower id wins
// over it and one with a higher id does not.
func TestFirstMatchWins(t *testing.T) {
	labtest.LoadModule(t)
	for _, addr := range loopbacks {
		t.Run(familyName(addr), func(t *testing.T) {
			ns := newNetNS(t)
			recv := labtest.ListenUDP(t, ns, netip.AddrPortFrom(addr, 0))
			port := boundPort(recv)
			send := labtest.DialUDP(t, ns, netip.AddrPortFrom(addr, port))
			const payload = 32
			size := udpPacketLen(addr, payload)

			sendUDP(t, send, 3, payload)
			recvUDP(t, recv, 3)

			mustWriteRules(t, fmt.Sprintf("add id=20 action=drop proto=udp dport=%d hooks=input", port))
			sendUDP(t, send, 5, payload)
			waitRulePackets(t, 20, 5)
			checkNoUDP(t, recv)

			mustWriteRules(t, fmt.Sprintf("add id=10 action=accept proto=udp dport=%d", port))
			sendUDP(t, send, 4, payload)
			recvUDP(t, recv, 4)

			mustWriteRules(t, "del id=10",
				fmt.Sprintf("add id=30 action=accept proto=udp dport=%d", port))
			sendUDP(t, send, 6, payload)
			waitRulePackets(t, 20, 5+6)
			checkNoUDP(t, recv)

			// Rule 10 saw 4 packets at output and at input; rule 30 sees
			// the 6 at output only, rule 20 takes them at input.
			checkRuleCounts(t, map[uint32]counts{
				20: {11, 11 * size},
				30: {6, 6 * size},
			})
			mustWriteRules(t, "flush")
		})
	}
}

// TestTCPVerdicts checks real TCP connections on loopback: a drop rule on
// the server port blocks the handshake, an earlier accept rule restores it.
func TestTCPVerdicts(t *testing.T) {
	labtest.LoadModule(t)
	for _, addr := range loopbacks {
		t.Run(familyName(addr), func(t *testing.T) {
			ns := newNetNS(t)
			_, port := listenTCP(t, ns, netip.AddrPortFrom(addr, 0))
			server := netip.AddrPortFrom(addr, port)

			if err := tcpExchange(ns, server, connectTimeout); err != nil {
				t.Fatalf("without rules: %v", err)
			}
			mustWriteRules(t, fmt.Sprintf("add id=50 action=drop proto=tcp dport=%d hooks=input", port))
			if err := tcpExchange(ns, server, droppedTimeout); err == nil {
				t.Fatal("connected through a drop rule")
			}
			if c := ruleCounts(t, 50); c.packets == 0 {
				t.Fatal("the drop rule counted no SYN")
			}
			mustWriteRules(t, fmt.Sprintf("add id=40 action=accept family=%s proto=tcp dport=%d",
				familyName(addr), port))
			if err := tcpExchange(ns, server, connectTimeout); err != nil {
				t.Fatalf("with an earlier accept rule: %v", err)
			}
			if c := ruleCounts(t, 40); c.packets < 3 {
				t.Fatalf("the accept rule counted %v, want the handshake and data", c)
			}
			mustWriteRules(t, "flush")
		})
	}
}

// TestDefaultPolicyPerHook checks that each hook's policy applies to that
// hook only, and that a rule overrides it.
func TestDefaultPolicyPerHook(t *testing.T) {
	labtest.LoadModule(t)
	for _, addr := range loopbacks {
		t.Run(familyName(addr), func(t *testing.T) {
			ns := newNetNS(t)
			recv := labtest.ListenUDP(t, ns, netip.AddrPortFrom(addr, 0))
			port := boundPort(recv)
			send := labtest.DialUDP(t, ns, netip.AddrPortFrom(addr, port))
			const n, payload = 7, 48
			size := udpPacketLen(addr, payload)
			fam := family(addr)

			mustWriteRules(t, "policy hook=input action=drop")
			before := readHooks(t)
			sendUDP(t, send, n, payload)
			waitFor(t, "input drops", func() (bool, string) {
				c := readHooks(t)[hookKey{fam, abi.HookInput, abi.ActionDrop}]
				return c.packets >= before[hookKey{fam, abi.HookInput, abi.ActionDrop}].packets+n, c.String()
			})
			checkNoUDP(t, recv)
			checkHookDelta(t, before, readHooks(t), map[hookKey]counts{
				{fam, abi.HookOutput, abi.ActionAccept}: {n, n * size},
				{fam, abi.HookInput, abi.ActionDrop}:    {n, n * size},
			})

			mustWriteRules(t, fmt.Sprintf("add id=1 action=accept proto=udp dport=%d hooks=input", port))
			sendUDP(t, send, n, payload)
			recvUDP(t, recv, n)
			checkRuleCounts(t, map[uint32]counts{1: {n, n * size}})

			mustWriteRules(t, "flush", "policy hook=input action=accept", "policy hook=output action=drop")
			before = readHooks(t)
			sendUDPRefused(t, send, n, payload)
			checkNoUDP(t, recv)
			checkHookDelta(t, before, readHooks(t), map[hookKey]counts{
				{fam, abi.HookOutput, abi.ActionDrop}: {n, n * size},
			})
			mustWriteRules(t, "policy hook=output action=accept")
			sendUDP(t, send, n, payload)
			recvUDP(t, recv, n)
		})
	}
}
