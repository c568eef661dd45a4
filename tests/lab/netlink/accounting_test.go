//go:build labvm

package netlink

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// prime has every CPU generate one event through send and waits until the
// listener has each: from then on its loss tracker follows every CPU's
// sequence, so every later loss is counted (docs/ABI.md: a listener counts
// from the first sequence number it sees). It returns the listener's tally
// and the kernel's events_generated at that quiet point.
func prime(t *testing.T, rec *recorder, instance uint64, send func(cpu int) error) (tally, uint64) {
	t.Helper()
	for cpu := range cpus() {
		before := len(rec.eventsWhere(onCPUOf(instance, cpu)))
		if err := send(cpu); err != nil {
			t.Fatal(err)
		}
		rec.waitEvents(t, fmt.Sprintf("the priming event of cpu %d", cpu), before+1, onCPUOf(instance, cpu))
	}
	var base tally
	var generated uint64
	waitFor(t, "a quiet listener", func() (bool, string) {
		base, generated = rec.tally(instance), labtest.ReadProcStats(t).EventsGenerated
		return base.received+base.lost == generated, fmt.Sprintf("received %d, lost %d, generated %d",
			base.received, base.lost, generated)
	})
	return base, generated
}

// burst sends n dropped datagrams from each CPU at once, one sender bound
// to each CPU, as fast as they go.
func burst(t *testing.T, conns []*net.UDPConn, n, payload int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for cpu, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendDroppedOn(cpu, c, n, payload)
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

// loopbackDrops returns one UDP socket per CPU in a fresh namespace whose
// datagrams a rule drops at output.
func loopbackDrops(t *testing.T, ncpu int) []*net.UDPConn {
	t.Helper()
	ns := newNetNS(t)
	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output")
	conns := make([]*net.UDPConn, ncpu)
	for i := range conns {
		conns[i] = labtest.DialUDPFrom(t, ns, netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
	}
	return conns
}

// checkBothCPUs fails unless events of instance came from every CPU.
func checkBothCPUs(t *testing.T, rec *recorder, instance uint64, ncpu int) {
	t.Helper()
	for cpu := range ncpu {
		if len(rec.eventsWhere(onCPUOf(instance, cpu))) == 0 {
			t.Errorf("no event from cpu %d", cpu)
		}
	}
}

// TestBurstAccounting drops a burst on both CPUs with a listener that
// reads as fast as it can: every event generated is received or counted
// lost, exactly, and each CPU's events arrive in order.
func TestBurstAccounting(t *testing.T) {
	ncpu := cpus()
	labtest.LoadModule(t)
	conns := loopbackDrops(t, ncpu)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := labtest.ReadProcStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error { return sendDroppedOn(cpu, conns[cpu], 1, 16) })

	const perCPU = 1500
	burst(t, conns, perCPU, 16)
	generated, tl := checkAccounting(t, rec, instance, base, baseGen)
	if generated != uint64(ncpu*perCPU) {
		t.Errorf("kernel generated %d events for %d drops", generated, ncpu*perCPU)
	}
	checkSequences(t, rec, instance)
	checkBothCPUs(t, rec, instance, ncpu)
	st := labtest.ReadProcStats(t)
	t.Logf("%d events: received %d, lost %d; kernel: %d batches, %d queue overflows, %d nobufs",
		generated, tl.received-base.received, tl.lost-base.lost, st.EventsMessagesSent,
		st.EventsQueueOverflows, st.EventsNobufs)
}

// TestSocketOverflow forces the loss at the listener's socket: a tiny
// receive buffer and a reader that stops. The kernel sees ENOBUFS (the
// listener asked for NETLINK_BROADCAST_ERROR), the listener sees an
// overrun, and once it reads again, gaps and sync batches account for
// exactly what it did not receive.
func TestSocketOverflow(t *testing.T) {
	ncpu := cpus()
	labtest.LoadModule(t, "event_sync_ms=20")
	conns := loopbackDrops(t, ncpu)
	// SO_RCVBUFFORCE of one byte gives the kernel's minimum: a batch or two.
	rec := subscribe(t, netlinkclient.SubscriberConfig{ReadBuffer: 1})
	instance := labtest.ReadProcStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error { return sendDroppedOn(cpu, conns[cpu], 1, 16) })

	rec.pause()
	const perCPU = 1000
	burst(t, conns, perCPU, 16)
	// Every event is out of the queues and some multicast failed; then a
	// sync batch failed too: the reader is still paused.
	var nobufs uint64
	waitFor(t, "ENOBUFS on the multicast", func() (bool, string) {
		st := labtest.ReadProcStats(t)
		nobufs = st.EventsNobufs
		return nobufs > 0 && st.EventsGenerated-baseGen == uint64(ncpu*perCPU), fmt.Sprintf("%+v", st)
	})
	waitFor(t, "a sync batch to fail while the reader is paused", func() (bool, string) {
		st := labtest.ReadProcStats(t)
		return st.EventsNobufs > nobufs+1, fmt.Sprintf("nobufs %d -> %d", nobufs, st.EventsNobufs)
	})
	rec.resume()

	generated, tl := checkAccounting(t, rec, instance, base, baseGen)
	if generated != uint64(ncpu*perCPU) {
		t.Errorf("kernel generated %d events for %d drops", generated, ncpu*perCPU)
	}
	received, lost := tl.received-base.received, tl.lost-base.lost
	if lost == 0 || tl.overruns-base.overruns == 0 {
		t.Errorf("lost %d, %d overruns: the forced overflow lost nothing", lost, tl.overruns-base.overruns)
	}
	checkSequences(t, rec, instance)
	st := labtest.ReadProcStats(t)
	if st.EventsQueueOverflows != 0 || st.EventsAllocFailures != 0 {
		t.Errorf("losses other than at the socket: %+v", st)
	}
	t.Logf("%d events: received %d, lost %d in %d overruns; kernel: %d batches sent, %d nobufs",
		generated, received, lost, tl.overruns-base.overruns, st.EventsMessagesSent, st.EventsNobufs)
}

// TestQueueOverflow forces the loss in the kernel's per-CPU queue: a queue
// of one event, and fragmented datagrams whose dozens of fragments all
// reach the forward hook within one send, before the drain work can run.
// The listener's count of lost events is exactly the kernel's count of
// queue overflows.
func TestQueueOverflow(t *testing.T) {
	ncpu := cpus()
	labtest.LoadModule(t, "event_queue_len=1")
	topo := labtest.NewTopology(t)
	writeRules(t, fmt.Sprintf("add id=1 action=drop family=ipv4 proto=udp src=%s hooks=forward", topo.Client.IPv4.Addr()))
	dst := netip.AddrPortFrom(topo.Server.IPv4.Addr(), 9)
	conns := make([]*net.UDPConn, ncpu)
	for i := range conns {
		conns[i] = labtest.DialUDPFrom(t, topo.Client.NS, netip.AddrPort{}, dst)
	}
	send := func(cpu, n, size int) error {
		return guest.OnCPU(cpu, func() error {
			for range n {
				if _, err := conns[cpu].Write(make([]byte, size)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := labtest.ReadProcStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error { return send(cpu, 1, 16) })
	before := labtest.ReadProcStats(t)

	// 60000 bytes leave the client as 41 fragments of a 1500-byte MTU.
	const datagrams, size, fragments = 10, 60000, 41
	var wg sync.WaitGroup
	errs := make(chan error, ncpu)
	for cpu := range ncpu {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- send(cpu, datagrams, size)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	generated, tl := checkAccounting(t, rec, instance, base, baseGen)
	if generated != uint64(ncpu*datagrams*fragments) {
		t.Errorf("kernel generated %d events for %d fragments", generated, ncpu*datagrams*fragments)
	}
	st := labtest.ReadProcStats(t)
	overflows := st.EventsQueueOverflows - before.EventsQueueOverflows
	lost := tl.lost - base.lost
	if overflows == 0 {
		t.Error("no queue overflow")
	}
	if st.EventsNobufs != 0 || st.EventsAllocFailures != 0 {
		t.Errorf("losses other than queue overflows: %+v", st)
	}
	if lost != overflows {
		t.Errorf("listener lost %d events, the kernel's queues overflowed %d times", lost, overflows)
	}
	checkSequences(t, rec, instance)
	t.Logf("%d events: received %d, lost %d = %d queue overflows", generated, tl.received-base.received, lost, overflows)
}

// TestRateLimits checks the token buckets' arithmetic: a rule's own
// (rate=1 burst=5) and the global ceiling (event_rate_limit=1,
// event_burst=3, seen through a default policy). A burst passes exactly the
// bucket's size plus what refilled while it lasted; everything else is
// suppressed, counted, and reported by the next event that passes.
func TestRateLimits(t *testing.T) {
	labtest.LoadModule(t)
	topo := labtest.NewTopology(t)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := labtest.ReadProcStats(t).Instance
	cl := labtest.DialNetlink(t)

	const n = 40
	// passes sends n+1 packets through send: n at once, then one more
	// after the bucket has refilled at least one token (rate 1/s), and
	// checks what passed and what the events say was suppressed.
	passes := func(t *testing.T, what string, burstSize uint64, keep func(*netlinkclient.Event) bool,
		send func(n int), suppressed func() uint64) {
		start := time.Now()
		send(n)
		elapsed := time.Since(start)
		// Tokens: burstSize at the first event, one more per second.
		maxPass := burstSize + uint64(math.Floor(elapsed.Seconds()))
		var evs []netlinkclient.Event
		waitFor(t, what+": events of the burst", func() (bool, string) {
			evs = rec.eventsWhere(keep)
			return uint64(len(evs))+suppressed() >= n, fmt.Sprintf("%d events, %d suppressed", len(evs), suppressed())
		})
		passed := uint64(len(evs))
		if passed < burstSize || passed > maxPass {
			t.Fatalf("%s: %d of %d events passed in %s, want %d..%d", what, passed, n, elapsed, burstSize, maxPass)
		}
		if s := suppressed(); passed+s != n {
			t.Errorf("%s: %d passed + %d suppressed != %d", what, passed, s, n)
		}
		for i := range burstSize {
			if evs[i].Suppressed != 0 {
				t.Errorf("%s: event %d of a full bucket reports %d suppressed", what, i, evs[i].Suppressed)
			}
		}

		time.Sleep(1200 * time.Millisecond) // refills more than one token
		send(1)
		evs = rec.waitEvents(t, what+": the event after the burst", int(passed)+1, keep)
		var reported uint64
		for _, ev := range evs {
			reported += uint64(ev.Suppressed)
		}
		if want := n - passed; reported != want || suppressed() != want {
			t.Errorf("%s: events report %d suppressed, counters %d; want %d", what, reported, suppressed(), want)
		}
	}

	t.Run("rule", func(t *testing.T) {
		addRule(t, cl, "id=1 action=drop proto=udp dport=9 hooks=output rate=1 burst=5")
		c := labtest.DialUDPFrom(t, newNetNS(t), netip.AddrPort{}, netip.MustParseAddrPort("127.0.0.1:9"))
		ruleSuppressed := func() uint64 { return procRuleStats(t)[0].Suppressed }
		passes(t, "rule 1", 5, ofRule(1), func(n int) {
			if err := sendDroppedOn(0, c, n, 8); err != nil {
				t.Fatal(err)
			}
		}, ruleSuppressed)
		st := labtest.ReadProcStats(t)
		if row := procRuleStats(t)[0]; st.EventsSuppressed != row.Suppressed || st.EventsGenerated != row.Events {
			t.Errorf("global counters %+v disagree with rule 1's %+v", st, row)
		}
	})

	t.Run("global ceiling", func(t *testing.T) {
		setParam(t, "event_rate_limit", "1")
		setParam(t, "event_burst", "3")
		if err := cl.SetPolicy(ctx(t), abi.Policy{Hook: abi.HookForward, Action: abi.ActionDrop}); err != nil {
			t.Fatal(err)
		}
		// Not port 9: rule 1 would drop it at the client's output.
		c := labtest.DialUDPFrom(t, topo.Client.NS, netip.AddrPort{}, netip.AddrPortFrom(topo.Server.IPv4.Addr(), 10))
		base := labtest.ReadProcStats(t).EventsSuppressed
		globalSuppressed := func() uint64 { return labtest.ReadProcStats(t).EventsSuppressed - base }
		policyForward := func(ev *netlinkclient.Event) bool {
			return ev.Rule == abi.RuleIDPolicy && ev.Hook == abi.HookForward
		}
		passes(t, "forward policy", 3, policyForward, func(n int) {
			err := guest.OnCPU(0, func() error {
				for range n {
					if _, err := c.Write([]byte("x")); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}, globalSuppressed)
	})

	checkAccounting(t, rec, instance, tally{}, 0)
}
