package guestbench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/bench/internal/pktgen"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// Ports of the floods. The packet path's matching rule accepts benchPort;
// the non-matching rules take ports from fillerPortBase up; the event
// floods go to dropPort, which a drop rule drops.
const (
	benchPort      = 9000
	dropPort       = 9001
	fillerPortBase = 10000
	sourcePort     = 40000
	payloadBytes   = 18 // the smallest Ethernet frame: 14 + 20 + 8 + 18 = 60 bytes
)

// Fake MAC addresses. Frames sent to notRouterMAC reach the router's
// interface but are not addressed to it (PACKET_OTHERHOST), so its IP layer
// discards them on receipt: the injection ceiling. notServerMAC is the
// router's static neighbour entry for the server, so forwarded frames reach
// the server's interface, are counted there, and are discarded before its
// IP stack: the server costs no hook, socket or kfw rule walk.
var (
	notRouterMAC = net.HardwareAddr{0x02, 0x6b, 0x66, 0x77, 0x00, 0x01}
	notServerMAC = net.HardwareAddr{0x02, 0x6b, 0x66, 0x77, 0x00, 0x02}
)

// env is the lab topology with everything the floods need.
type env struct {
	topo   guest.Topology
	logf   func(format string, args ...any)
	frames map[string][]byte // by results.Path*

	clientIfindex int
	inputSink     *net.UDPConn // the router's never-read socket for the input path
}

func newEnv(logf func(string, ...any)) (*env, error) {
	topo, err := guest.NewTopology()
	if err != nil {
		return nil, err
	}
	e := &env{topo: topo, logf: logf, frames: map[string][]byte{}}
	if err := e.setup(); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) setup() error {
	t := e.topo
	var clientMAC, routerMAC net.HardwareAddr
	if err := guest.InNetNS(t.Client.NS, func() error {
		ifi, err := net.InterfaceByName(t.Client.Iface)
		if err != nil {
			return err
		}
		clientMAC, e.clientIfindex = ifi.HardwareAddr, ifi.Index
		return nil
	}); err != nil {
		return fmt.Errorf("client interface: %w", err)
	}
	if err := guest.InNetNS(t.Router(), func() error {
		ifi, err := net.InterfaceByName(t.RouterClient.Iface)
		if err != nil {
			return err
		}
		routerMAC = ifi.HardwareAddr
		return nil
	}); err != nil {
		return fmt.Errorf("router interface: %w", err)
	}
	// Only the floods cross the links: without IPv6 (neighbour and router
	// solicitations, MLD reports) the interface counters count nothing
	// else.
	for _, ep := range []guest.Endpoint{t.Client, t.RouterClient, t.RouterServer, t.Server} {
		if err := guest.Sysctl(ep.NS, "net.ipv6.conf."+ep.Iface+".disable_ipv6", "1"); err != nil {
			return err
		}
	}
	if _, err := guest.RunIn(t.Router(), "ip", "neigh", "replace", t.Server.IPv4.Addr().String(),
		"lladdr", notServerMAC.String(), "dev", t.RouterServer.Iface, "nud", "permanent"); err != nil {
		return err
	}

	client := t.Client.IPv4.Addr()
	frame := func(dstMAC net.HardwareAddr, dst netip.Addr, port uint16) []byte {
		b, err := pktgen.Frame{
			SrcMAC: clientMAC, DstMAC: dstMAC,
			Src:     netip.AddrPortFrom(client, sourcePort),
			Dst:     netip.AddrPortFrom(dst, port),
			Payload: payloadBytes,
		}.Bytes()
		if err != nil {
			panic(err) // constant, valid input
		}
		return b
	}
	e.frames["forward"] = frame(routerMAC, t.Server.IPv4.Addr(), benchPort)
	e.frames["input"] = frame(routerMAC, t.RouterClient.IPv4.Addr(), benchPort)
	e.frames["inject"] = frame(notRouterMAC, t.Server.IPv4.Addr(), benchPort)
	e.frames["drop"] = frame(routerMAC, t.Server.IPv4.Addr(), dropPort)

	// The input path's sink: bound, never read, with the smallest
	// buffer, so that datagrams reach it and are dropped there cheaply
	// (counted in RcvbufErrors) instead of costing an ICMP error each.
	return guest.InNetNS(t.Router(), func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.RouterClient.IPv4.Addr(), benchPort)))
		if err != nil {
			return fmt.Errorf("input sink: %w", err)
		}
		e.inputSink = c
		return c.SetReadBuffer(1)
	})
}

func (e *env) close() {
	if e.inputSink != nil {
		e.inputSink.Close()
	}
	if err := e.topo.Destroy(); err != nil {
		e.logf("destroying the topology: %v", err)
	}
}

// count returns the counter a trial of path reads: see results.Path*.
func (e *env) count(path string) (uint64, error) {
	t := e.topo
	switch path {
	case "forward":
		return ifaceRxPackets(t.Server.NS, t.Server.Iface)
	case "input":
		return udpDelivered(t.Router())
	case "inject":
		return ifaceRxPackets(t.Router(), t.RouterClient.Iface)
	}
	return 0, fmt.Errorf("no counter for path %q", path)
}

// readInNetNS reads /proc/thread-self/REL from a thread in ns: the
// /proc/net files show the reading thread's namespace.
func readInNetNS(ns, rel string) ([]byte, error) {
	var b []byte
	err := guest.InNetNS(ns, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/" + rel)
		return err
	})
	return b, err
}

// ifaceRxPackets is the rx_packets of an interface in ns (/proc/net/dev).
func ifaceRxPackets(ns, iface string) (uint64, error) {
	b, err := readInNetNS(ns, "net/dev")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) != iface {
			continue
		}
		f := strings.Fields(rest) // rx: bytes packets ...
		if len(f) < 2 {
			break
		}
		return strconv.ParseUint(f[1], 10, 64)
	}
	return 0, fmt.Errorf("netns %s: no %s in /proc/net/dev", ns, iface)
}

// udpDelivered is the number of UDP datagrams that reached a socket in ns,
// read or refused for a full buffer: InDatagrams + RcvbufErrors of
// /proc/net/snmp.
func udpDelivered(ns string) (uint64, error) {
	b, err := readInNetNS(ns, "net/snmp")
	if err != nil {
		return 0, err
	}
	m, err := snmpSection(b, "Udp")
	if err != nil {
		return 0, fmt.Errorf("netns %s: %w", ns, err)
	}
	return m["InDatagrams"] + m["RcvbufErrors"], nil
}

// snmpSection parses one protocol's header and value lines of
// /proc/net/snmp.
func snmpSection(b []byte, proto string) (map[string]uint64, error) {
	var names []string
	for line := range strings.SplitSeq(string(b), "\n") {
		p, rest, ok := strings.Cut(line, ":")
		if !ok || p != proto {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		vals := strings.Fields(rest)
		if len(vals) != len(names) {
			return nil, fmt.Errorf("/proc/net/snmp %s: %d names, %d values", proto, len(names), len(vals))
		}
		m := make(map[string]uint64, len(names))
		for i, n := range names {
			v, err := strconv.ParseInt(vals[i], 10, 64) // some are signed (MaxConn)
			if err != nil {
				return nil, fmt.Errorf("/proc/net/snmp %s %s: %w", proto, n, err)
			}
			m[n] = uint64(v)
		}
		return m, nil
	}
	return nil, fmt.Errorf("/proc/net/snmp: no %s lines", proto)
}

// settle is how long a flood's last frames get to reach their counters.
const settle = 50 * time.Millisecond

// senders are AF_PACKET senders on the client's interface, one per thread.
type senders []*pktgen.Sender

func (e *env) openSenders(path string, n int) (senders, error) {
	frame, ok := e.frames[path]
	if !ok {
		return nil, fmt.Errorf("no frame for path %q", path)
	}
	var s senders
	err := guest.InNetNS(e.topo.Client.NS, func() error {
		for range n {
			snd, err := pktgen.Open(e.clientIfindex, frame)
			if err != nil {
				return err
			}
			s = append(s, snd)
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s senders) close() {
	for _, snd := range s {
		snd.Close()
	}
}

// run floods for d: sender i on a thread bound to CPU i, each at rate/n
// frames per second (rate 0: as fast as it can), then waits for settle. It
// returns the sum of the senders' counts, with Time the longest sender's
// (the settle not included).
func (s senders) run(rate float64, d time.Duration) (pktgen.Counts, error) {
	var stop atomic.Bool
	counts := make([]pktgen.Counts, len(s))
	errs := make([]error, len(s))
	var wg sync.WaitGroup
	for i, snd := range s {
		wg.Go(func() {
			// The thread keeps its affinity and dies with the goroutine.
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(i % runtime.NumCPU())
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				errs[i] = fmt.Errorf("bind sender %d to a CPU: %w", i, err)
				return
			}
			counts[i], errs[i] = snd.Run(&stop, rate/float64(len(s)))
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	// Frames still queued when softirqs were deferred to ksoftirqd are
	// processed now, before anyone reads a counter.
	time.Sleep(settle)
	var total pktgen.Counts
	for _, c := range counts {
		total.Sent += c.Sent
		total.Errors += c.Errors
		total.Time = max(total.Time, c.Time)
	}
	return total, errors.Join(errs...)
}
