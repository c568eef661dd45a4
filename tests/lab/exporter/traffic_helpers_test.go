//go:build labvm

package exporter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// pause between two packets of a test: a few hundred packets per second,
// which TCG sustains without starving the guest's other work.
const pause = 3 * time.Millisecond

// IP and transport header sizes: kfw counts IP packet lengths.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	tcpHeaderLen  = 20
)

func ipHeaderLen(a netip.Addr) uint64 {
	if a.Is4() {
		return ipv4HeaderLen
	}
	return ipv6HeaderLen
}

func familyLabel(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func udpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// inNS runs fn in network namespace ns and fails the test on error.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := guest.InNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

var netnsSeq atomic.Int64

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends. Traffic inside it is the test's own.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("kfwe%d", netnsSeq.Add(1))
	if err := guest.AddNetNS(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guest.DeleteNetNS(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// newQuietTopology creates the lab's client/router/server topology and
// silences what the stack sends by itself, so that every packet kfw counts
// afterwards is one the test sent: static neighbour entries (no neighbour
// discovery, no probes when entries age) and no router solicitations from
// client and server (the kernel repeats them forever; accept_ra=0 stops the
// pending timer). What was sent while the links came up (a first
// solicitation, MLD reports) is over once waitQuiet returns.
func newQuietTopology(t *testing.T) guest.Topology {
	t.Helper()
	topo, err := guest.NewTopology()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Destroy(); err != nil {
			t.Error(err)
		}
	})
	for _, host := range []guest.Endpoint{topo.Client, topo.Server} {
		if err := guest.Sysctl(host.NS, "net.ipv6.conf."+host.Iface+".accept_ra", "0"); err != nil {
			t.Fatal(err)
		}
	}
	for _, link := range [][2]guest.Endpoint{{topo.Client, topo.RouterClient}, {topo.Server, topo.RouterServer}} {
		for i, local := range link {
			peer := link[1-i]
			mac := hardwareAddr(t, peer)
			for _, addr := range []netip.Addr{peer.IPv4.Addr(), peer.IPv6.Addr()} {
				if _, err := guest.Run("ip", "-n", local.NS, "neigh", "replace", addr.String(),
					"lladdr", mac, "dev", local.Iface, "nud", "permanent"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return topo
}

// hardwareAddr is the MAC address of an endpoint's interface.
func hardwareAddr(t *testing.T, e guest.Endpoint) string {
	t.Helper()
	var mac string
	inNS(t, e.NS, func() error {
		ifi, err := net.InterfaceByName(e.Iface)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr.String()
		return nil
	})
	return mac
}

// quietSpan is how long /proc/kfw/hooks must stand still before waitQuiet
// trusts it: longer than the first router solicitation's retransmission
// timer (4 s), after which accept_ra=0 stops them.
const quietSpan = 5 * time.Second

// waitQuiet waits until kfw's hook counters stop moving: the links' start
// up chatter is over and only the test's packets will count from now on.
func waitQuiet(t *testing.T) {
	t.Helper()
	last := readProc(t, "hooks")
	since := time.Now()
	waitFor(t, "kfw's hook counters to stand still for "+quietSpan.String(), func() (bool, string) {
		now := readProc(t, "hooks")
		if now != last {
			last, since = now, time.Now()
		}
		return time.Since(since) >= quietSpan, strings.ReplaceAll(now, "\n", "; ")
	})
}

// listenUDP opens a UDP socket bound to addr in ns.
func listenUDP(t *testing.T, ns string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() (err error) {
		c, err = net.ListenUDP(udpNetwork(addr.Addr()), net.UDPAddrFromAddrPort(addr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// dialUDP opens a UDP socket in ns connected to raddr.
func dialUDP(t *testing.T, ns string, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNS(t, ns, func() (err error) {
		c, err = net.DialUDP(udpNetwork(raddr.Addr()), nil, net.UDPAddrFromAddrPort(raddr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// sendUDP sends n datagrams of payload bytes, paced, failing on any error.
func sendUDP(t *testing.T, c *net.UDPConn, n, payload int) {
	t.Helper()
	buf := make([]byte, payload)
	for i := range n {
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("sending datagram %d of %d to %s: %v", i+1, n, c.RemoteAddr(), err)
		}
		time.Sleep(pause)
	}
}

// recvUDP receives exactly n datagrams on c.
func recvUDP(t *testing.T, c *net.UDPConn, n int) {
	t.Helper()
	buf := make([]byte, 65536)
	for i := range n {
		if err := c.SetReadDeadline(time.Now().Add(hangLimit)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("received %d of %d datagrams on %s: %v", i, n, c.LocalAddr(), err)
		}
	}
}

// sendDropped sends n datagrams that kfw drops at output, as fast as it
// can: each send fails with EPERM, which is how a local sender learns of
// the drop, so the count of drops is exact.
func sendDropped(c *net.UDPConn, n, payload int, gap time.Duration) error {
	buf := make([]byte, payload)
	for i := range n {
		if _, err := c.Write(buf); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("datagram %d of %d: send returned %v, want EPERM (dropped at output)", i+1, n, err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	return nil
}

// pacedSender sends datagrams on conns in the background, one per pause
// on each, until stop; it counts the sends kfw refused at output (EPERM).
// Without the module, datagrams to a closed port pass and the next send
// may report the port unreachable that came back (ECONNREFUSED): neither
// is a drop.
type pacedSender struct {
	quit    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	dropped uint64
	err     error
	stopped bool
}

func startPacedSender(t *testing.T, conns ...*net.UDPConn) *pacedSender {
	t.Helper()
	p := &pacedSender{quit: make(chan struct{})}
	for _, c := range conns {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 32)
			for {
				select {
				case <-p.quit:
					return
				case <-time.After(pause):
				}
				_, err := c.Write(buf)
				p.mu.Lock()
				switch {
				case errors.Is(err, unix.EPERM):
					p.dropped++
				case err != nil && !errors.Is(err, unix.ECONNREFUSED) && p.err == nil:
					p.err = fmt.Errorf("send to %s: %w", c.RemoteAddr(), err)
				}
				p.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the sends and returns how many kfw dropped.
func (p *pacedSender) stop(t *testing.T) uint64 {
	t.Helper()
	if !p.stopped {
		p.stopped = true
		close(p.quit)
		p.wg.Wait()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return p.dropped
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

// tcpSYN returns a whole IP packet carrying a TCP SYN from src to dst,
// checksums correct. Raw SYNs give exact TCP counts: a real connection's
// segment count depends on the stack's timing.
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

// sendRaw sends pkt, a whole IP packet, n times from ns through a raw
// IPPROTO_RAW socket, paced: it passes the hooks exactly as built.
func sendRaw(t *testing.T, ns string, dst netip.Addr, pkt []byte, n int) {
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
		for i := range n {
			if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
				return fmt.Errorf("raw packet %d of %d to %s: %w", i+1, n, dst, err)
			}
			time.Sleep(pause)
		}
		return nil
	})
}
