//go:build labvm

package kmod

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestForward routes UDP and TCP from the client namespace through the
// router namespace to the server namespace and checks the forward hook:
// interface matches by direction, exact counts, drops and the policy.
func TestForward(t *testing.T) {
	labtest.LoadModule(t)
	topo := labtest.NewTopology(t)
	router := topo.Router()
	for _, server := range []netip.Addr{topo.Server.IPv4.Addr(), topo.Server.IPv6.Addr()} {
		t.Run(familyName(server), func(t *testing.T) {
			fam := family(server)
			const n, payload = 20, 60
			size := udpPacketLen(server, payload)
			recv := labtest.ListenUDP(t, topo.Server.NS, netip.AddrPortFrom(server, 0))
			port := boundPort(recv)
			send := labtest.DialUDP(t, topo.Client.NS, netip.AddrPortFrom(server, port))

			mustWriteRules(t, "flush", "policy hook=forward action=accept")
			// Let neighbour discovery finish before counting.
			sendUDP(t, send, 1, payload)
			recvUDP(t, recv, 1)

			mustWriteRules(t, "flush",
				fmt.Sprintf("add id=10 action=accept proto=udp dport=%d iif=%s hooks=forward", port, topo.RouterServer.Iface),
				fmt.Sprintf("add id=11 action=accept proto=udp dport=%d oif=%s hooks=forward", port, topo.RouterClient.Iface),
				fmt.Sprintf("add id=12 action=accept proto=udp dport=%d iif=%s oif=%s hooks=forward",
					port, topo.RouterClient.Iface, topo.RouterServer.Iface),
				fmt.Sprintf("add id=13 action=accept proto=udp dport=%d hooks=input,output", port))
			before := readHooks(t)
			sendUDP(t, send, n, payload)
			recvUDP(t, recv, n)
			after := readHooks(t)
			// 10 and 11 name the reverse direction; 13 sees the datagrams
			// leave the client and enter the server.
			checkRuleCounts(t, map[uint32]counts{10: {}, 11: {}, 12: {n, n * size}, 13: {2 * n, 2 * n * size}})
			forward := hookKey{fam, abi.HookForward, abi.ActionAccept}
			if got := (counts{after[forward].packets - before[forward].packets,
				after[forward].bytes - before[forward].bytes}); got != (counts{n, n * size}) {
				t.Errorf("hooks %s moved by %v, want %v", forward, got, counts{n, n * size})
			}

			mustWriteRules(t, fmt.Sprintf("add id=5 action=drop iif=%s hooks=forward proto=udp dport=%d",
				topo.RouterClient.Iface, port))
			before = readHooks(t)
			sendUDP(t, send, n, payload)
			waitRulePackets(t, 5, n)
			checkNoUDP(t, recv)
			after = readHooks(t)
			drop := hookKey{fam, abi.HookForward, abi.ActionDrop}
			if got := after[drop].packets - before[drop].packets; got != n {
				t.Errorf("hooks %s moved by %d packets, want %d", drop, got, n)
			}

			// TCP across the router, then the forward policy.
			_, tport := listenTCP(t, topo.Server.NS, netip.AddrPortFrom(server, 0))
			tserver := netip.AddrPortFrom(server, tport)
			if err := tcpExchange(topo.Client.NS, tserver, connectTimeout); err != nil {
				t.Fatalf("tcp through the router: %v", err)
			}
			mustWriteRules(t, "policy hook=forward action=drop")
			if err := tcpExchange(topo.Client.NS, tserver, droppedTimeout); err == nil {
				t.Fatal("tcp crossed a forward policy drop")
			}
			// The router itself still answers: its input and output accept.
			routerAddr := topo.RouterClient.IPv4.Addr()
			if server.Is6() {
				routerAddr = topo.RouterClient.IPv6.Addr()
			}
			_, rport := listenTCP(t, router, netip.AddrPortFrom(routerAddr, 0))
			if err := tcpExchange(topo.Client.NS, netip.AddrPortFrom(routerAddr, rport), connectTimeout); err != nil {
				t.Fatalf("tcp to the router under a forward drop policy: %v", err)
			}
			// Stateless: both directions need a rule.
			mustWriteRules(t, fmt.Sprintf("add id=20 action=accept proto=tcp dport=%d hooks=forward", tport),
				fmt.Sprintf("add id=21 action=accept proto=tcp sport=%d hooks=forward", tport))
			if err := tcpExchange(topo.Client.NS, tserver, connectTimeout); err != nil {
				t.Fatalf("tcp with accept rules over the drop policy: %v", err)
			}
		})
	}
}

// TestInterfaceMatch checks iif at input and oif at output by name, in
// every namespace: the rule table is global.
func TestInterfaceMatch(t *testing.T) {
	labtest.LoadModule(t)
	topo := labtest.NewTopology(t)
	routerAddr := topo.RouterClient.IPv4.Addr()
	recv := labtest.ListenUDP(t, topo.Router(), netip.AddrPortFrom(routerAddr, 0))
	port := boundPort(recv)
	send := labtest.DialUDP(t, topo.Client.NS, netip.AddrPortFrom(routerAddr, port))
	sendUDP(t, send, 1, 10)
	recvUDP(t, recv, 1)

	const n, payload = 9, 10
	size := udpPacketLen(routerAddr, payload)
	mustWriteRules(t, "flush",
		fmt.Sprintf("add id=1 action=accept proto=udp dport=%d iif=%s", port, topo.RouterServer.Iface),
		fmt.Sprintf("add id=2 action=accept proto=udp dport=%d iif=%s hooks=input,output", port, topo.RouterClient.Iface),
		fmt.Sprintf("add id=3 action=accept proto=udp dport=%d oif=%s hooks=output,forward", port, topo.Client.Iface),
		fmt.Sprintf("add id=4 action=accept proto=udp dport=%d oif=eth", port))
	sendUDP(t, send, n, payload)
	recvUDP(t, recv, n)
	// Rule 2 sees input at the router (output has no input interface),
	// rule 3 output at the client; a name is matched whole ("eth" is not
	// "eth0").
	checkRuleCounts(t, map[uint32]counts{1: {}, 2: {n, n * size}, 3: {n, n * size}, 4: {}})
}
