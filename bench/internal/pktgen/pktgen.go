// Package pktgen injects small UDP/IPv4 frames into a network interface as
// fast as one CPU can, or at a paced rate: whole Ethernet frames written to
// an AF_PACKET socket with sendmmsg, bypassing the qdisc. Unlike a UDP
// socket, the sender's own network stack (routing, output hooks, neighbour
// lookup) does no work per packet, so nearly all the CPU time a frame costs
// is spent where the benchmark looks: in the device under test.
package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Frame describes the frames a Sender sends: one Ethernet frame carrying
// one UDP/IPv4 datagram, the same bytes every time.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.AddrPort // IPv4 only
	Payload        int            // UDP payload bytes
}

// Header sizes of a frame.
const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	udpHeaderLen  = 8
)

// Bytes encodes the frame: IPv4 header checksum set, UDP checksum 0 ("none",
// valid for IPv4), TTL 64, no fragmentation.
func (f Frame) Bytes() ([]byte, error) {
	if !f.Src.Addr().Is4() || !f.Dst.Addr().Is4() {
		return nil, errors.New("pktgen: IPv4 addresses only")
	}
	if len(f.SrcMAC) != 6 || len(f.DstMAC) != 6 {
		return nil, errors.New("pktgen: MAC addresses must be 6 bytes")
	}
	if f.Payload < 0 || f.Payload > 1472 {
		return nil, fmt.Errorf("pktgen: payload %d bytes: want 0..1472 (one unfragmented frame)", f.Payload)
	}
	b := make([]byte, ethHeaderLen+ipv4HeaderLen+udpHeaderLen+f.Payload)
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:], unix.ETH_P_IP)

	ip := b[ethHeaderLen:]
	ip[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HeaderLen+udpHeaderLen+f.Payload))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	src, dst := f.Src.Addr().As4(), f.Dst.Addr().As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:ipv4HeaderLen]))

	udp := ip[ipv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], f.Src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.Dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHeaderLen+f.Payload))
	return b, nil
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// MaxBatch is the most frames one sendmmsg call carries.
const MaxBatch = 64

// Sender writes one frame repeatedly to an interface. Its socket belongs to
// the network namespace it was opened in; any goroutine may then use it,
// one at a time.
type Sender struct {
	fd    int
	frame []byte
	iov   unix.Iovec
	msgs  [MaxBatch]unix.Mmsghdr
}

// Open opens an AF_PACKET socket on the interface ifindex of the current
// network namespace, for frame. The socket's protocol is 0, so it receives
// nothing.
func Open(ifindex int, frame []byte) (*Sender, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pktgen: AF_PACKET socket: %w", err)
	}
	s := &Sender{fd: fd, frame: frame}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		s.Close()
		return nil, fmt.Errorf("pktgen: bind to ifindex %d: %w", ifindex, err)
	}
	// Straight to the driver: the qdisc is not what we measure.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		s.Close()
		return nil, fmt.Errorf("pktgen: PACKET_QDISC_BYPASS: %w", err)
	}
	s.iov.Base = &s.frame[0]
	s.iov.SetLen(len(s.frame))
	for i := range s.msgs {
		s.msgs[i].Hdr.Iov = &s.iov
		s.msgs[i].Hdr.SetIovlen(1)
	}
	return s, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return unix.Close(s.fd) }

// send sends n ≤ MaxBatch frames with one sendmmsg and returns how many the
// kernel took.
func (s *Sender) send(n int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.msgs[0])),
		uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// Counts is what a Run did.
type Counts struct {
	Sent   uint64        // frames the kernel accepted
	Errors uint64        // failed sendmmsg calls (ENOBUFS and the like), each counted once
	Time   time.Duration // from the first send to the stop
}

// Run sends until stop is set: at rate frames per second, or as fast as it
// can when rate is 0. It checks stop once per batch. A failed send is
// counted and retried at the next batch; only an error that is not
// transient (EBADF, ENXIO when the interface went away) ends the run.
func (s *Sender) Run(stop *atomic.Bool, rate float64) (Counts, error) {
	var c Counts
	var offered uint64 // frames handed to sendmmsg, taken or not
	start := time.Now()
	for !stop.Load() {
		n := MaxBatch
		if rate > 0 {
			due := uint64(time.Since(start).Seconds() * rate)
			if due <= offered {
				// Sleep about half a batch's time; a late wake-up is
				// caught up by a full batch.
				time.Sleep(time.Duration(float64(time.Second) * MaxBatch / 2 / rate))
				continue
			}
			n = int(min(due-offered, MaxBatch))
		}
		offered += uint64(n)
		sent, err := s.send(n)
		switch {
		case err == nil:
			c.Sent += uint64(sent)
		case errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			c.Errors++
		default:
			c.Time = time.Since(start)
			return c, fmt.Errorf("pktgen: sendmmsg: %w", err)
		}
	}
	c.Time = time.Since(start)
	return c, nil
}
