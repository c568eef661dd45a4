//go:build labvm

package kmod

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// flood sends UDP datagrams on every connection until ctx ends, ignoring
// errors (drops make sends fail), and counts what it sent.
//
// Each sender pauses between datagrams: saturating both emulated CPUs
// while the netfilter static keys are patched (the last hook leaving
// flips them) once left a vCPU looping on a stale int3 under TCG (see
// the report of this suite); a steady stream tests the same unload path.
func flood(ctx context.Context, wg *sync.WaitGroup, sent *counter, conns ...*net.UDPConn) {
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for ctx.Err() == nil {
				if _, err := c.Write(buf); err == nil {
					sent.add(1)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
}

// loopbackFlows returns UDP senders to sinks on the loopback of ns, one
// per family.
func loopbackFlows(t *testing.T, ns string) []*net.UDPConn {
	t.Helper()
	var conns []*net.UDPConn
	for _, addr := range loopbacks {
		recv := labtest.ListenUDP(t, ns, netip.AddrPortFrom(addr, 0))
		conns = append(conns, labtest.DialUDP(t, ns, netip.AddrPortFrom(addr, boundPort(recv))))
		go io.Copy(io.Discard, recv)
	}
	return conns
}

// forwardFlows returns UDP senders from the topology's client to sinks on
// its server, one per family: their packets cross the router's forward hook.
func forwardFlows(t *testing.T, topo guest.Topology) []*net.UDPConn {
	t.Helper()
	var conns []*net.UDPConn
	for _, addr := range []netip.Addr{topo.Server.IPv4.Addr(), topo.Server.IPv6.Addr()} {
		recv := labtest.ListenUDP(t, topo.Server.NS, netip.AddrPortFrom(addr, 0))
		conns = append(conns, labtest.DialUDP(t, topo.Client.NS, netip.AddrPortFrom(addr, boundPort(recv))))
		go io.Copy(io.Discard, recv)
	}
	return conns
}

type counter struct {
	mu sync.Mutex
	n  uint64
}

func (c *counter) add(n uint64) { c.mu.Lock(); c.n += n; c.mu.Unlock() }

func (c *counter) get() uint64 { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestUnloadUnderTraffic unloads the module while packets flow through
// every hook of both families, with /proc files open and half read, then
// loads it again: a clean kernel log, a new instance, every counter from
// zero. Then it loads and unloads again while traffic flows.
func TestUnloadUnderTraffic(t *testing.T) {
	labtest.LoadModule(t)
	first := readStats(t)
	ns := newNetNS(t)
	conns := loopbackFlows(t, ns)
	// This topology goes before the counters are checked at zero: its
	// links keep talking (router solicitations, neighbour probes).
	topo, err := guest.NewTopology()
	if err != nil {
		t.Fatal(err)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			topo.Destroy()
		}
	}()
	conns = append(conns, forwardFlows(t, topo)...)
	mustWriteRules(t,
		"add id=1 action=accept proto=udp hooks=forward",
		"add id=2 action=accept proto=udp hooks=output log=1 rate=10",
		"add id=3 action=drop proto=udp hooks=input dport=1-1023",
		"add id=4 action=accept proto=udp")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var sent counter
	flood(ctx, &wg, &sent, conns...)
	waitRulePackets(t, 1, 50) // forwarded
	waitRulePackets(t, 4, 50) // delivered

	// Open files in the middle of a read, and a write in flight, when
	// the module goes away.
	rules, err := os.Open(procPath(abi.ProcRules))
	if err != nil {
		t.Fatal(err)
	}
	defer rules.Close()
	if _, err := rules.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	stats, err := os.Open(procPath(abi.ProcRuleStats))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()

	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("rmmod while traffic flows: %v", err)
	}
	before := sent.get()
	waitFor(t, "traffic to flow without the module", func() (bool, string) {
		return sent.get() > before+100, fmt.Sprint(sent.get()-before, " datagrams")
	})
	if _, err := rules.Read(make([]byte, 10)); err == nil {
		t.Error("a read of a file opened before rmmod succeeded after it")
	}
	stop()
	wg.Wait()
	destroyed = true
	if err := topo.Destroy(); err != nil {
		t.Fatal(err)
	}
	conns = conns[:len(loopbacks)]

	if err := guest.LoadModule(); err != nil {
		t.Fatal(err)
	}
	second := readStats(t)
	if second.Instance == first.Instance || second.Instance == 0 {
		t.Errorf("instance %016x after reload, was %016x", second.Instance, first.Instance)
	}
	if second.Generation != 0 || second.Rules != 0 {
		t.Errorf("after reload: generation %d, rules %d; want 0 and 0", second.Generation, second.Rules)
	}
	for k, c := range readHooks(t) {
		if c != (counts{}) {
			t.Errorf("after reload, with no traffic: hooks %s at %v", k, c)
		}
	}
	if got := string(readProc(t, abi.ProcRuleStats)); got != "id action packets bytes events suppressed\n" {
		t.Errorf("rule_stats after reload:\n%s", got)
	}

	// Once more, loading and unloading while traffic flows.
	conns = append(conns, forwardFlows(t, labtest.NewTopology(t))...)
	ctx, stop = context.WithCancel(context.Background())
	defer stop()
	flood(ctx, &wg, &sent, conns...)
	mustWriteRules(t, "add id=4 action=accept proto=udp", "policy hook=forward action=drop")
	waitRulePackets(t, 4, 50)
	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("second rmmod while traffic flows: %v", err)
	}
	if err := guest.LoadModule(); err != nil {
		t.Fatalf("insmod while traffic flows: %v", err)
	}
	mustWriteRules(t, "add id=4 action=accept proto=udp")
	waitRulePackets(t, 4, 50)
	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("third rmmod while traffic flows: %v", err)
	}
	stop()
	wg.Wait()
}
