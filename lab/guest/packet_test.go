package guest

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// pseudoHeaderSum is the sum of the TCP/UDP pseudo-header, built the way
// RFC 793 (IPv4) and RFC 8200 section 8.1 (IPv6) lay it out.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	var ph []byte
	if src.Is4() {
		ph = make([]byte, 12)
		copy(ph[0:4], src.AsSlice())
		copy(ph[4:8], dst.AsSlice())
		ph[9] = proto
		binary.BigEndian.PutUint16(ph[10:], uint16(length))
	} else {
		ph = make([]byte, 40)
		copy(ph[0:16], src.AsSlice())
		copy(ph[16:32], dst.AsSlice())
		binary.BigEndian.PutUint32(ph[32:], uint32(length))
		ph[39] = proto
	}
	return ChecksumAdd(0, ph)
}

func TestChecksumRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := FoldChecksum(ChecksumAdd(0, b)); got != ^uint16(0xddf2) {
		t.Errorf("checksum %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	// An odd last byte counts as the high byte of a word.
	if got, want := ChecksumAdd(0, []byte{0x12, 0x34, 0x56}), uint32(0x1234+0x5600); got != want {
		t.Errorf("odd length: sum %#x, want %#x", got, want)
	}
	// Carries fold back in.
	if got := FoldChecksum(0x2fffe); got != ^uint16(0x0001) {
		t.Errorf("FoldChecksum(0x2fffe) = %#04x, want %#04x", got, ^uint16(0x0001))
	}
	// A buffer with its own checksum in it sums to all ones: folds to 0.
	sum := FoldChecksum(ChecksumAdd(0, b))
	withSum := binary.BigEndian.AppendUint16(append([]byte(nil), b...), sum)
	if got := FoldChecksum(ChecksumAdd(0, withSum)); got != 0 {
		t.Errorf("verifying a checksummed buffer: %#04x, want 0", got)
	}
}

func TestTCPSYNPacket(t *testing.T) {
	for _, c := range []struct {
		name     string
		src, dst netip.AddrPort
	}{
		{"ipv4", netip.MustParseAddrPort("10.1.0.2:40000"), netip.MustParseAddrPort("10.2.0.2:443")},
		{"ipv4 loopback", netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:65535")},
		{"ipv6", netip.MustParseAddrPort("[fd00:1::2]:40000"), netip.MustParseAddrPort("[fd00:2::2]:22")},
		{"ipv6 loopback", netip.MustParseAddrPort("[::1]:5"), netip.MustParseAddrPort("[::1]:6")},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := TCPSYNPacket(c.src, c.dst)
			var seg []byte
			if c.src.Addr().Is4() {
				if len(p) != IPv4HeaderLen+TCPHeaderLen {
					t.Fatalf("length %d, want %d", len(p), IPv4HeaderLen+TCPHeaderLen)
				}
				if p[0] != 0x45 || binary.BigEndian.Uint16(p[2:]) != uint16(len(p)) || p[8] != 64 || p[9] != 6 {
					t.Errorf("IPv4 header: version/IHL %#x, total length %d, TTL %d, protocol %d",
						p[0], binary.BigEndian.Uint16(p[2:]), p[8], p[9])
				}
				if id, frag := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]); id != 0 || frag != 0 {
					t.Errorf("id %#x, frag_off %#x, want 0 and 0", id, frag)
				}
				if got := [2]netip.Addr{netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))}; got != [2]netip.Addr{c.src.Addr(), c.dst.Addr()} {
					t.Errorf("addresses %v, want %v -> %v", got, c.src.Addr(), c.dst.Addr())
				}
				// The header checksum is the kernel's to fill in; with
				// it filled in, the header verifies.
				if s := binary.BigEndian.Uint16(p[10:]); s != 0 {
					t.Errorf("IPv4 header checksum %#04x, want 0 (the kernel's)", s)
				}
				hdr := append([]byte(nil), p[:IPv4HeaderLen]...)
				binary.BigEndian.PutUint16(hdr[10:], FoldChecksum(ChecksumAdd(0, hdr)))
				if got := FoldChecksum(ChecksumAdd(0, hdr)); got != 0 {
					t.Errorf("IPv4 header with its checksum does not verify: %#04x", got)
				}
				seg = p[IPv4HeaderLen:]
			} else {
				if len(p) != IPv6HeaderLen+TCPHeaderLen {
					t.Fatalf("length %d, want %d", len(p), IPv6HeaderLen+TCPHeaderLen)
				}
				if p[0] != 0x60 || binary.BigEndian.Uint16(p[4:]) != TCPHeaderLen || p[6] != 6 || p[7] != 64 {
					t.Errorf("IPv6 header: version %#x, payload length %d, next header %d, hop limit %d",
						p[0], binary.BigEndian.Uint16(p[4:]), p[6], p[7])
				}
				if got := [2]netip.Addr{netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))}; got != [2]netip.Addr{c.src.Addr(), c.dst.Addr()} {
					t.Errorf("addresses %v, want %v -> %v", got, c.src.Addr(), c.dst.Addr())
				}
				seg = p[IPv6HeaderLen:]
			}
			if sp, dp := binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:]); sp != c.src.Port() || dp != c.dst.Port() {
				t.Errorf("ports %d -> %d, want %d -> %d", sp, dp, c.src.Port(), c.dst.Port())
			}
			if seq, off, flags, win := binary.BigEndian.Uint32(seg[4:]), seg[12]>>4, seg[13], binary.BigEndian.Uint16(seg[14:]); seq != 1 || off != 5 || flags != 0x02 || win != 65535 {
				t.Errorf("seq %d, data offset %d, flags %#x, window %d; want 1, 5, SYN, 65535", seq, off, flags, win)
			}
			sum := pseudoHeaderSum(c.src.Addr(), c.dst.Addr(), 6, len(seg))
			if got := FoldChecksum(ChecksumAdd(sum, seg)); got != 0 {
				t.Errorf("TCP checksum %#04x does not verify (%#04x)", binary.BigEndian.Uint16(seg[16:]), got)
			}
			if binary.BigEndian.Uint16(seg[16:]) == 0 {
				t.Error("TCP checksum is zero")
			}
		})
	}
}

func TestIPv4Packet(t *testing.T) {
	src, dst := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	p := IPv4Packet(17, 0x4b46, 0x2000|3, src, dst, []byte{1, 2, 3})
	if len(p) != IPv4HeaderLen+3 || binary.BigEndian.Uint16(p[2:]) != uint16(len(p)) {
		t.Errorf("length %d, total length field %d", len(p), binary.BigEndian.Uint16(p[2:]))
	}
	if id, frag := binary.BigEndian.Uint16(p[4:]), binary.BigEndian.Uint16(p[6:]); id != 0x4b46 || frag != 0x2003 {
		t.Errorf("id %#x, frag_off %#x; want 0x4b46, 0x2003", id, frag)
	}
	if p[9] != 17 || string(p[IPv4HeaderLen:]) != "\x01\x02\x03" {
		t.Errorf("protocol %d, payload %x", p[9], p[IPv4HeaderLen:])
	}
}

func TestIPv6Packet(t *testing.T) {
	src := netip.MustParseAddr("::1")
	p := IPv6Packet(44, src, src, []byte{9, 8})
	if len(p) != IPv6HeaderLen+2 || binary.BigEndian.Uint16(p[4:]) != 2 || p[6] != 44 || p[7] != 64 {
		t.Errorf("length %d, payload length %d, next header %d, hop limit %d",
			len(p), binary.BigEndian.Uint16(p[4:]), p[6], p[7])
	}
	if string(p[IPv6HeaderLen:]) != "\x09\x08" {
		t.Errorf("payload %x", p[IPv6HeaderLen:])
	}
}
