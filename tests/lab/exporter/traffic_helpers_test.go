//go:build labvm

package exporter

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// pause between two packets of a test: a few hundred packets per second,
// which TCG sustains without starving the guest's other work.
const pause = 3 * time.Millisecond

func ipHeaderLen(a netip.Addr) uint64 {
	if a.Is4() {
		return guest.IPv4HeaderLen
	}
	return guest.IPv6HeaderLen
}

func familyLabel(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// netnsPrefix starts the names of the suite's network namespaces.
const netnsPrefix = "kfwe"

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends. Traffic inside it is the test's own.
func newNetNS(t *testing.T) string { return labtest.NewNetNS(t, netnsPrefix) }

// newQuietTopology creates the lab's client/router/server topology and
// silences what the stack sends by itself, so that every packet kfw counts
// afterwards is one the test sent: static neighbour entries (no neighbour
// discovery, no probes when entries age) and no router solicitations from
// client and server (the kernel repeats them forever; accept_ra=0 stops the
// pending timer). What was sent while the links came up (a first
// solicitation, MLD reports) is over once waitQuiet returns.
func newQuietTopology(t *testing.T) guest.Topology {
	t.Helper()
	topo := labtest.NewTopology(t)
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
	labtest.InNetNS(t, e.NS, func() error {
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
	last := labtest.ReadProc(t, "hooks")
	since := time.Now()
	waitFor(t, "kfw's hook counters to stand still for "+quietSpan.String(), func() (bool, string) {
		now := labtest.ReadProc(t, "hooks")
		if now != last {
			last, since = now, time.Now()
		}
		return time.Since(since) >= quietSpan, strings.ReplaceAll(now, "\n", "; ")
	})
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

// sendRaw sends pkt, a whole IP packet, n times from ns through a raw
// IPPROTO_RAW socket, paced: it passes the hooks exactly as built.
func sendRaw(t *testing.T, ns string, dst netip.Addr, pkt []byte, n int) {
	t.Helper()
	labtest.SendRaw(t, ns, dst, n, pause, pkt)
}
