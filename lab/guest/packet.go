package guest

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Header sizes of the packets the tests build and count: kfw counts IP
// packet lengths, headers included.
const (
	IPv4HeaderLen = 20 // without options
	IPv6HeaderLen = 40
	UDPHeaderLen  = 8
	TCPHeaderLen  = 20 // without options
)

// ChecksumAdd adds b, as big-endian 16-bit words (an odd last byte padded
// with zero), to the running one's complement sum of the Internet
// checksum (RFC 1071). FoldChecksum turns the sum into the checksum.
func ChecksumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// FoldChecksum folds a running sum of ChecksumAdd into 16 bits and
// complements it: the value of a checksum field.
func FoldChecksum(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TCPSYNSegment returns a TCP header without options: a SYN from sport to
// dport, sequence number 1, window 65535, its checksum computed over the
// pseudo-header of src and dst (either family).
func TCPSYNSegment(src, dst netip.Addr, sport, dport uint16) []byte {
	seg := make([]byte, TCPHeaderLen)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], 1)
	seg[12] = TCPHeaderLen / 4 << 4
	seg[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(seg[14:], 65535)
	sum := ChecksumAdd(0, src.AsSlice())
	sum = ChecksumAdd(sum, dst.AsSlice())
	sum += uint32(unix.IPPROTO_TCP) + uint32(len(seg))
	sum = ChecksumAdd(sum, seg)
	binary.BigEndian.PutUint16(seg[16:], FoldChecksum(sum))
	return seg
}

// IPv4Packet returns an IPv4 packet without options carrying payload, TTL
// 64. id is the identification field (0: the kernel picks one when the
// packet is sent on a raw IPPROTO_RAW socket), fragOff the raw frag_off
// field (flags and offset in 8-byte units). The header checksum is left
// zero: the kernel fills it in (and the total length) on such a socket.
func IPv4Packet(proto uint8, id, fragOff uint16, src, dst netip.Addr, payload []byte) []byte {
	p := make([]byte, IPv4HeaderLen+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	binary.BigEndian.PutUint16(p[6:], fragOff)
	p[8] = 64
	p[9] = proto
	copy(p[12:16], src.AsSlice())
	copy(p[16:20], dst.AsSlice())
	copy(p[IPv4HeaderLen:], payload)
	return p
}

// IPv6Packet returns an IPv6 packet whose first next header is next, hop
// limit 64, carrying payload.
func IPv6Packet(next uint8, src, dst netip.Addr, payload []byte) []byte {
	p := make([]byte, IPv6HeaderLen+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6] = next
	p[7] = 64
	copy(p[8:24], src.AsSlice())
	copy(p[24:40], dst.AsSlice())
	copy(p[IPv6HeaderLen:], payload)
	return p
}

// TCPSYNPacket returns a whole IP packet (IPv4 with identification 0, or
// IPv6, after src's family) carrying a TCP SYN from src to dst, TCP
// checksum correct. Raw SYNs give exact TCP counts: a real connection's
// segment count depends on the stack's timing.
func TCPSYNPacket(src, dst netip.AddrPort) []byte {
	seg := TCPSYNSegment(src.Addr(), dst.Addr(), src.Port(), dst.Port())
	if src.Addr().Is4() {
		return IPv4Packet(unix.IPPROTO_TCP, 0, 0, src.Addr(), dst.Addr(), seg)
	}
	return IPv6Packet(unix.IPPROTO_TCP, src.Addr(), dst.Addr(), seg)
}

// SendRaw sends whole IP packets (header included) to dst through a raw
// IPPROTO_RAW socket of the calling thread's network namespace: they pass
// the output hook exactly as built. It sends all of pkts, in order, times
// times, sleeping gap (if positive) after each packet.
func SendRaw(dst netip.Addr, times int, gap time.Duration, pkts ...[]byte) error {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Addr: dst.As16()}
	if dst.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw socket: %w", err)
	}
	defer unix.Close(fd)
	for i := range times {
		for j, p := range pkts {
			if err := unix.Sendto(fd, p, 0, sa); err != nil {
				return fmt.Errorf("raw packet %d of %d (%d bytes) to %s: %w",
					i*len(pkts)+j+1, times*len(pkts), len(p), dst, err)
			}
			if gap > 0 {
				time.Sleep(gap)
			}
		}
	}
	return nil
}
