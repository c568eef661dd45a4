//go:build labvm

package stress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// The ports of the counting rules, which the churn never touches.
const (
	dropPort = 9  // rule 1 drops UDP to it at output
	hitPort  = 10 // rule 2 accepts UDP to it at output with a hit event, rule 3 at input
)

// payloadLen is the UDP payload of every datagram the tests send.
const payloadLen = 32

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.MustParseAddr("::1")
	loopbacks = []netip.Addr{loopback4, loopback6}
)

// familyOf is the KFW_FAMILY_* of an address.
func familyOf(a netip.Addr) uint8 {
	if a.Is4() {
		return abi.FamilyIPv4
	}
	return abi.FamilyIPv6
}

// packetLen is the IP length of one of the tests' datagrams to a: what
// kfw counts in bytes.
func packetLen(a netip.Addr) uint64 {
	const udpHeader = 8
	if a.Is4() {
		return 20 + udpHeader + payloadLen
	}
	return 40 + udpHeader + payloadLen
}

func udpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// verdict is what kfw must do at output with a target's datagrams.
type verdict int

const (
	mustDrop   verdict = iota // every send fails with EPERM (rule 1)
	mustAccept                // every send succeeds
	mayDrop                   // whatever the table says at the moment (churn)
)

// target is where a flow sends.
type target struct {
	dst     netip.AddrPort
	verdict verdict
}

func (tg target) String() string { return "udp " + tg.dst.String() }

// sink receives and counts the datagrams to one address.
type sink struct {
	c        *net.UDPConn
	received atomic.Uint64
}

// flows holds, in one namespace, a sink on every port the tests send to
// that kfw may accept (so that no datagram ever earns an ICMP error) and
// one connected socket per CPU and target.
type flows struct {
	ns      string
	targets []target
	conns   [][]*net.UDPConn // [cpu][target]
	sinks   map[netip.AddrPort]*sink
}

// newFlows opens the sockets for targets in ns, one set per CPU; a sink
// listens on every destination but the drop port.
func newFlows(t *testing.T, ns string, ncpu int, targets []target) *flows {
	t.Helper()
	f := &flows{ns: ns, targets: targets, sinks: map[netip.AddrPort]*sink{}}
	for _, tg := range targets {
		if tg.dst.Port() == dropPort || f.sinks[tg.dst] != nil {
			continue
		}
		f.sinks[tg.dst] = listenSink(t, ns, tg.dst)
	}
	f.conns = make([][]*net.UDPConn, ncpu)
	for cpu := range f.conns {
		for _, tg := range targets {
			f.conns[cpu] = append(f.conns[cpu], labtest.DialUDP(t, ns, tg.dst))
		}
	}
	return f
}

// listenSink binds a sink to addr in ns and drains it until the test ends.
// Its buffer is forced large: a datagram must not be lost between the
// input hook and the count.
func listenSink(t *testing.T, ns string, addr netip.AddrPort) *sink {
	t.Helper()
	s := &sink{}
	err := guest.InNetNS(ns, func() (err error) {
		s.c, err = net.ListenUDP(udpNetwork(addr.Addr()), net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		return forceReadBuffer(s.c, 8<<20)
	})
	if err != nil {
		t.Fatalf("sink on %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, err := s.c.Read(buf); err != nil {
				return
			}
			s.received.Add(1)
		}
	}()
	t.Cleanup(func() {
		s.c.Close()
		<-done
	})
	return s
}

// forceReadBuffer sets SO_RCVBUFFORCE (root may exceed rmem_max).
func forceReadBuffer(c *net.UDPConn, n int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	return serr
}

// received is what the sink of dst has received so far.
func (f *flows) received(dst netip.AddrPort) uint64 { return f.sinks[dst].received.Load() }

// outcome counts the sends of one sender to one target.
type outcome struct {
	passed  uint64 // the send succeeded
	dropped uint64 // EPERM: kfw dropped the datagram at output
	refused uint64 // ECONNREFUSED: an earlier datagram met no socket
}

// send sends one datagram and classifies the result; other errors are
// returned.
func send(c *net.UDPConn, buf []byte, o *outcome) error {
	_, err := c.Write(buf)
	switch {
	case err == nil:
		o.passed++
	case errors.Is(err, unix.EPERM):
		o.dropped++
	case errors.Is(err, unix.ECONNREFUSED):
		o.refused++
	default:
		return err
	}
	return nil
}

// check says whether an outcome is what kfw must have done with the
// target's datagrams. moduleMayBeAbsent allows rule 1's datagrams to pass:
// without the module (or before its rules are restored) they do, and the
// port's unreachable error comes back on a later send.
func (tg target) check(o outcome, moduleMayBeAbsent bool) error {
	switch {
	case tg.verdict == mustDrop && !moduleMayBeAbsent && o.passed+o.refused > 0:
		return fmt.Errorf("%s: %d datagrams passed and %d sends were refused: rule 1 was not in the table",
			tg, o.passed, o.refused)
	case tg.verdict == mustAccept && o.dropped+o.refused > 0:
		return fmt.Errorf("%s: %d datagrams dropped at output, %d sends refused; every one must pass",
			tg, o.dropped, o.refused)
	case tg.verdict == mayDrop && o.refused > 0:
		return fmt.Errorf("%s: %d sends refused: a datagram met no socket", tg, o.refused)
	}
	return nil
}

// pacedTraffic is a sender per CPU, bound to it, sending to some targets
// of its flows in turn with a pause after each datagram, until stop.
type pacedTraffic struct {
	f      *flows
	which  []int // indices of the targets
	absent bool  // moduleMayBeAbsent for every check
	// Senders hold mu shared around a send and its count, so that snapshot
	// sees every send that has returned and no half-counted one.
	mu     sync.RWMutex
	counts [][]outcome // [cpu][target]
	quit   chan struct{}
	wg     sync.WaitGroup
	err    atomic.Pointer[error]
}

// startPaced starts paced senders to the targets which of f on every CPU;
// the test stops them when it ends if it has not already.
func startPaced(t *testing.T, f *flows, which []int, pause time.Duration, moduleMayBeAbsent bool) *pacedTraffic {
	t.Helper()
	p := &pacedTraffic{f: f, which: which, absent: moduleMayBeAbsent, quit: make(chan struct{})}
	p.counts = make([][]outcome, len(f.conns))
	for cpu := range f.conns {
		p.counts[cpu] = make([]outcome, len(f.targets))
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if err := guest.OnCPU(cpu, func() error { return p.run(cpu, pause) }); err != nil {
				err = fmt.Errorf("sender on cpu %d: %w", cpu, err)
				p.err.CompareAndSwap(nil, &err)
			}
		}()
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *pacedTraffic) run(cpu int, pause time.Duration) error {
	buf := make([]byte, payloadLen)
	for i := 0; ; i++ {
		select {
		case <-p.quit:
			return nil
		default:
		}
		ti := p.which[i%len(p.which)]
		p.mu.RLock()
		err := send(p.f.conns[cpu][ti], buf, &p.counts[cpu][ti])
		o := p.counts[cpu][ti]
		p.mu.RUnlock()
		if err != nil {
			return fmt.Errorf("%s: %w", p.f.targets[ti], err)
		}
		if err := p.f.targets[ti].check(o, p.absent); err != nil {
			return err
		}
		time.Sleep(pause)
	}
}

// snapshotPerCPU returns the outcomes by CPU and target of every send
// that has returned.
func (p *pacedTraffic) snapshotPerCPU() [][]outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]outcome, len(p.counts))
	for cpu := range p.counts {
		out[cpu] = slices.Clone(p.counts[cpu])
	}
	return out
}

// snapshot returns the outcomes per target, summed over the CPUs, of every
// send that has returned.
func (p *pacedTraffic) snapshot() []outcome {
	sum := make([]outcome, len(p.f.targets))
	for _, perCPU := range p.snapshotPerCPU() {
		for ti, o := range perCPU {
			sum[ti].passed += o.passed
			sum[ti].dropped += o.dropped
			sum[ti].refused += o.refused
		}
	}
	return sum
}

// sentAtLeast reports whether every CPU's sender has sent n datagrams.
func (p *pacedTraffic) sentAtLeast(n uint64) bool {
	for _, perCPU := range p.snapshotPerCPU() {
		var sent uint64
		for _, o := range perCPU {
			sent += o.passed + o.dropped + o.refused
		}
		if sent < n {
			return false
		}
	}
	return true
}

// failed returns the first sender error so far.
func (p *pacedTraffic) failed() error {
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

// stop stops the senders (once) and returns their outcomes; a sender's
// error fails the test.
func (p *pacedTraffic) stop(t *testing.T) []outcome {
	t.Helper()
	select {
	case <-p.quit:
	default:
		close(p.quit)
	}
	p.wg.Wait()
	if err := p.failed(); err != nil {
		t.Fatal(err)
	}
	return p.snapshot()
}

// sendExact sends n datagrams to each target from every CPU at once, one
// sender bound to each CPU, and fails unless each had exactly the outcome
// its target demands (mayDrop targets are not allowed here).
func (f *flows) sendExact(t *testing.T, targets []int, n int) {
	t.Helper()
	errs := make(chan error, len(f.conns))
	var wg sync.WaitGroup
	for cpu := range f.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- guest.OnCPU(cpu, func() error {
				buf := make([]byte, payloadLen)
				for _, ti := range targets {
					var o outcome
					for range n {
						if err := send(f.conns[cpu][ti], buf, &o); err != nil {
							return fmt.Errorf("cpu %d: %s: %w", cpu, f.targets[ti], err)
						}
					}
					want := outcome{passed: uint64(n)}
					if f.targets[ti].verdict == mustDrop {
						want = outcome{dropped: uint64(n)}
					}
					if o != want {
						return fmt.Errorf("cpu %d: %s: %+v for %d sends, want %+v", cpu, f.targets[ti], o, n, want)
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
