package pktgen

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
)

func testFrame() Frame {
	return Frame{
		SrcMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC:  net.HardwareAddr{2, 0, 0, 0, 0, 2},
		Src:     netip.MustParseAddrPort("10.10.1.2:40000"),
		Dst:     netip.MustParseAddrPort("10.10.2.2:9000"),
		Payload: 18,
	}
}

func TestFrameBytes(t *testing.T) {
	b, err := testFrame().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 60 {
		t.Fatalf("frame of %d bytes, want 60", len(b))
	}
	if got := binary.BigEndian.Uint16(b[12:]); got != 0x0800 {
		t.Errorf("ethertype %#x", got)
	}
	ip := b[14:34]
	// A correct header sums to 0xffff, checksum included.
	var sum uint32
	for i := 0; i < len(ip); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff {
		t.Errorf("IPv4 header checksum does not verify: %#x", sum)
	}
	if ip[0] != 0x45 || ip[9] != 17 || binary.BigEndian.Uint16(ip[2:]) != 46 || ip[8] != 64 {
		t.Errorf("IPv4 header % x", ip)
	}
	if netip.AddrFrom4([4]byte(ip[12:16])) != testFrame().Src.Addr() || netip.AddrFrom4([4]byte(ip[16:20])) != testFrame().Dst.Addr() {
		t.Errorf("addresses % x", ip[12:20])
	}
	udp := b[34:42]
	if binary.BigEndian.Uint16(udp[0:]) != 40000 || binary.BigEndian.Uint16(udp[2:]) != 9000 || binary.BigEndian.Uint16(udp[4:]) != 26 {
		t.Errorf("UDP header % x", udp)
	}
}

func TestFrameBytesRefuses(t *testing.T) {
	for name, f := range map[string]func(*Frame){
		"ipv6":     func(f *Frame) { f.Dst = netip.MustParseAddrPort("[fd00::1]:9") },
		"mac":      func(f *Frame) { f.SrcMAC = f.SrcMAC[:4] },
		"payload":  func(f *Frame) { f.Payload = 1473 },
		"negative": func(f *Frame) { f.Payload = -1 },
	} {
		fr := testFrame()
		f(&fr)
		if _, err := fr.Bytes(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
