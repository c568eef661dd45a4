//go:build labvm

package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// IP header sizes: the packet lengths events report include them.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	tcpHeaderLen  = 20
)

func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return ipv4HeaderLen
	}
	return ipv6HeaderLen
}

func udpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// dialUDP opens a UDP socket in ns from laddr (zero port: any) to raddr.
func dialUDP(t *testing.T, ns string, laddr, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() (err error) {
		var la *net.UDPAddr
		if laddr.IsValid() {
			la = net.UDPAddrFromAddrPort(laddr)
		}
		c, err = net.DialUDP(udpNetwork(raddr.Addr()), la, net.UDPAddrFromAddrPort(raddr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func localPort(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// ifindex returns the index of interface name in ns.
func ifindex(t *testing.T, ns, name string) uint32 {
	t.Helper()
	var idx int
	inNS(t, ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	})
	return uint32(idx)
}

// onCPU runs fn on an OS thread bound to cpu, in a goroutine of its own;
// the thread dies with it rather than serve others with that affinity.
func onCPU(cpu int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- fmt.Errorf("bind to cpu %d: %w", cpu, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// cpus is how many CPUs the VM has. The tests send from each, bound to
// it, and expect events from each; only the two-CPU stress test insists
// on two (the lab contract says -smp 2).
func cpus() int { return runtime.NumCPU() }

// twoCPUs fails the test unless the VM has at least two CPUs.
func twoCPUs(t *testing.T) int {
	t.Helper()
	n := cpus()
	if n < 2 {
		t.Fatalf("the lab VM has %d CPU: this test needs two (lab contract: -smp 2)", n)
	}
	return n
}

// sendDropped sends n datagrams that the output hook drops: each send
// fails with EPERM, which is how a local sender learns of the drop, so the
// count of drops is exact.
func sendDropped(c *net.UDPConn, n, payload int) error {
	buf := make([]byte, payload)
	for i := range n {
		if _, err := c.Write(buf); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("datagram %d of %d: send returned %v, want EPERM (dropped at output)", i+1, n, err)
		}
	}
	return nil
}

// sendDroppedOn is sendDropped from a thread bound to cpu, so that every
// event is generated on that CPU.
func sendDroppedOn(cpu int, c *net.UDPConn, n, payload int) error {
	return onCPU(cpu, func() error { return sendDropped(c, n, payload) })
}

func checksum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func foldChecksum(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// tcpSYN returns a whole IP packet carrying a TCP SYN from src:sport to
// dst:dport, checksums correct.
func tcpSYN(src, dst netip.AddrPort) []byte {
	seg := make([]byte, tcpHeaderLen)
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], 1)
	seg[12] = tcpHeaderLen / 4 << 4
	seg[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(seg[14:], 65535)
	sum := checksum(0, src.Addr().AsSlice())
	sum = checksum(sum, dst.Addr().AsSlice())
	sum += uint32(unix.IPPROTO_TCP) + uint32(len(seg))
	sum = checksum(sum, seg)
	binary.BigEndian.PutUint16(seg[16:], foldChecksum(sum))

	if src.Addr().Is4() {
		p := make([]byte, ipv4HeaderLen+len(seg))
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		p[8] = 64
		p[9] = unix.IPPROTO_TCP
		copy(p[12:16], src.Addr().AsSlice())
		copy(p[16:20], dst.Addr().AsSlice())
		copy(p[ipv4HeaderLen:], seg)
		return p
	}
	p := make([]byte, ipv6HeaderLen+len(seg))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(seg)))
	p[6] = unix.IPPROTO_TCP
	p[7] = 64
	copy(p[8:24], src.Addr().AsSlice())
	copy(p[24:40], dst.Addr().AsSlice())
	copy(p[ipv6HeaderLen:], seg)
	return p
}

// sendRaw sends one whole IP packet from ns through a raw IPPROTO_RAW
// socket: it passes the hooks exactly as built.
func sendRaw(t *testing.T, ns string, dst netip.Addr, pkt []byte) {
	t.Helper()
	inNS(t, ns, func() error {
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
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			return fmt.Errorf("sending a raw packet of %d bytes: %w", len(pkt), err)
		}
		return nil
	})
}
