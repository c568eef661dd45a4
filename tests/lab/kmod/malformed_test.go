//go:build labvm

package kmod

import (
	"encoding/binary"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestMalformedIPv6 sends IPv6 packets whose headers end early and checks
// what each rule sees: with the extension chain cut short the protocol is
// unknown (only rules without proto or ports match); with a transport
// header too short for ports, the protocol matches but no port rule does.
func TestMalformedIPv6(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	const n = 5

	// Hop-by-hop options (8 bytes, PadN) announcing destination options
	// that are not there: the chain ends inside a header.
	hbh := []byte{60, 0, 1, 4, 0, 0, 0, 0}
	cutChain := guest.IPv6Packet(0, loopback6, loopback6, hbh)
	mustWriteRules(t, "flush",
		"add id=1 action=accept family=ipv6 proto=0 hooks=output",
		"add id=2 action=accept family=ipv6 proto=60 hooks=output",
		"add id=3 action=accept proto=tcp dport=0-65535 hooks=output",
		"add id=4 action=accept proto=udp hooks=output",
		"add id=5 action=accept family=ipv6 dst=::1/128 hooks=output",
		"add id=6 action=accept family=ipv6 dst=::1/128 hooks=input")
	sendRaw(t, ns, loopback6, n, cutChain)
	waitRulePackets(t, 6, n)
	size := uint64(len(cutChain))
	checkRuleCounts(t, map[uint32]counts{1: {}, 2: {}, 3: {}, 4: {}, 5: {n, n * size}, 6: {n, n * size}})

	// A TCP header of 2 bytes: protocol tcp, ports unknown.
	shortTCP := guest.IPv6Packet(6, loopback6, loopback6, []byte{0x12, 0x34})
	// A UDP header behind a complete hop-by-hop header: the protocol
	// after the extension headers, and its ports.
	behindHBH := guest.IPv6Packet(0, loopback6, loopback6,
		append([]byte{17, 0, 1, 4, 0, 0, 0, 0}, udpHeader(1000, 53, 0)...))
	mustWriteRules(t, "flush",
		"add id=1 action=accept proto=tcp dport=0-65535 hooks=output",
		"add id=2 action=accept proto=tcp hooks=output",
		"add id=3 action=accept proto=udp dport=53 hooks=output")
	sendRaw(t, ns, loopback6, n, shortTCP, behindHBH)
	waitRulePackets(t, 3, n)
	checkRuleCounts(t, map[uint32]counts{
		1: {},
		2: {n, n * uint64(len(shortTCP))},
		3: {n, n * uint64(len(behindHBH))},
	})

	// A non-first fragment: the fragment header's protocol, no ports.
	frag := make([]byte, 8)
	frag[0] = 17                               // next header: udp
	binary.BigEndian.PutUint16(frag[2:], 8<<3) // offset 8 (64 bytes), last fragment
	binary.BigEndian.PutUint32(frag[4:], 0x4b46)
	laterFragment := guest.IPv6Packet(44, loopback6, loopback6, append(frag, udpHeader(1000, 53, 8)...))
	mustWriteRules(t, "flush",
		"add id=1 action=accept proto=udp dport=53 hooks=output",
		"add id=2 action=accept proto=udp hooks=output")
	sendRaw(t, ns, loopback6, n, laterFragment)
	waitRulePackets(t, 2, n)
	checkRuleCounts(t, map[uint32]counts{1: {}, 2: {n, n * uint64(len(laterFragment))}})
}

// TestIPv4Fragments checks that only a first fragment carries ports: a
// later fragment whose payload looks like a UDP header to port 53 never
// matches a port rule, and a first fragment too short for ports neither.
// The output hook sees fragments as sent; local input sees them only
// reassembled.
func TestIPv4Fragments(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	const n = 5
	const mf = 0x2000

	first := ipv4Packet(17, loopback4, loopback4, mf, udpHeader(1000, 53, 8))
	later := ipv4Packet(17, loopback4, loopback4, 8, udpHeader(1000, 53, 8))
	tiny := ipv4Packet(17, loopback4, loopback4, mf, []byte{0x03, 0xe8})
	mustWriteRules(t, "flush",
		"add id=1 action=accept proto=udp dport=53 hooks=output",
		"add id=2 action=accept proto=udp hooks=output")
	sendRaw(t, ns, loopback4, n, first, later, tiny)
	waitRulePackets(t, 2, 2*n)
	checkRuleCounts(t, map[uint32]counts{
		1: {n, n * uint64(len(first))},
		2: {2 * n, n * uint64(len(later)+len(tiny))},
	})
}

// udpHeader returns a UDP header followed by payload zero bytes; the
// checksum is left zero (the packets never reach a socket).
func udpHeader(sport, dport uint16, payload int) []byte {
	h := make([]byte, guest.UDPHeaderLen+payload)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(len(h)))
	return h
}
