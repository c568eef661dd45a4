//go:build labvm

package netlink

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// sendAtRate calls send from a thread bound to cpu about rate times per
// second for d, catching up after sleeps; it returns how many calls it
// made.
func sendAtRate(cpu int, rate float64, d time.Duration, send func() error) (int, error) {
	sent := 0
	err := guest.OnCPU(cpu, func() error {
		start := time.Now()
		for {
			elapsed := time.Since(start)
			if elapsed >= d {
				return nil
			}
			due := int(elapsed.Seconds() * rate)
			if sent >= due {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			for ; sent < due; sent++ {
				if err := send(); err != nil {
					return err
				}
			}
		}
	})
	return sent, err
}

// TestEventRateProbe measures the event rate the lab carries from the
// kernel to a Subscriber without loss: it steps the offered event rate
// (both CPUs, no rate limit, default queue and buffer) and logs what was
// received and lost at each step. The events are drops of the fragments
// of 60000-byte datagrams at the router's forward hook, 109 per send
// with the client's MTU at 576, because one send per event tops out far
// below what the pipeline carries under TCG. It is a measurement, not a test: it asserts only the
// accounting, and runs only with KFW_NETLINK_RATE_PROBE=1. Under TCG the
// numbers describe the lab, not real hardware.
func TestEventRateProbe(t *testing.T) {
	if os.Getenv("KFW_NETLINK_RATE_PROBE") != "1" {
		t.Skip("a measurement: set KFW_NETLINK_RATE_PROBE=1 to run it")
	}
	ncpu := cpus()
	labtest.LoadModule(t, "event_rate_limit=0")
	topo := labtest.NewTopology(t)
	writeRules(t, fmt.Sprintf("add id=1 action=drop family=ipv4 proto=udp src=%s hooks=forward", topo.Client.IPv4.Addr()))
	if _, err := guest.RunIn(topo.Client.NS, "ip", "link", "set", topo.Client.Iface, "mtu", "576"); err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UDPConn, ncpu)
	for i := range conns {
		conns[i] = labtest.DialUDPFrom(t, topo.Client.NS, netip.AddrPort{}, netip.AddrPortFrom(topo.Server.IPv4.Addr(), 9))
	}
	// 60000 bytes and a UDP header in fragments of 552 bytes.
	const size, fragments = 60000, 109
	payload := make([]byte, size)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := labtest.ReadProcStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error {
		return guest.OnCPU(cpu, func() error {
			_, err := conns[cpu].Write(payload[:16])
			return err
		})
	})

	const step = 3 * time.Second
	for _, rate := range []float64{10000, 20000, 40000, 60000, 80000, 120000, 160000} {
		start := time.Now()
		var wg sync.WaitGroup
		counts := make([]int, ncpu)
		errs := make([]error, ncpu)
		for cpu := range ncpu {
			wg.Add(1)
			go func() {
				defer wg.Done()
				counts[cpu], errs[cpu] = sendAtRate(cpu, rate/fragments/float64(ncpu), step, func() error {
					_, err := conns[cpu].Write(payload)
					return err
				})
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		sent := 0
		for cpu := range ncpu {
			if errs[cpu] != nil {
				t.Fatal(errs[cpu])
			}
			sent += counts[cpu] * fragments
		}
		generated, tl := checkAccounting(t, rec, instance, base, baseGen)
		if generated != uint64(sent) {
			t.Errorf("%d events generated for %d fragments", generated, sent)
		}
		received, lost := tl.received-base.received, tl.lost-base.lost
		st := labtest.ReadProcStats(t)
		achieved := float64(sent) / elapsed.Seconds()
		t.Logf("offered %6.0f events/s, achieved %6.0f/s: %6d events, received %6d, lost %6d (total: %d queue overflows, %d nobufs)",
			rate, achieved, generated, received, lost, st.EventsQueueOverflows, st.EventsNobufs)
		base, baseGen = rec.tally(instance), st.EventsGenerated
		if achieved < 0.8*rate {
			t.Logf("the senders top out at %.0f events/s: stopping", achieved)
			return
		}
	}
}
