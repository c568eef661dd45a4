//go:build labvm

package netlink

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// sendAtRate sends dropped datagrams on c from a thread bound to cpu at
// about rate per second for d, catching up after sleeps; it returns how
// many it sent.
func sendAtRate(cpu int, c *net.UDPConn, rate float64, d time.Duration) (int, error) {
	sent := 0
	err := onCPU(cpu, func() error {
		buf := make([]byte, 16)
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
				if _, err := c.Write(buf); !errors.Is(err, unix.EPERM) {
					return fmt.Errorf("send returned %v, want EPERM", err)
				}
			}
		}
	})
	return sent, err
}

// TestEventRateProbe measures the event rate the lab carries from the
// kernel to a Subscriber without loss: it steps the offered rate of drops
// (both CPUs, no rate limit) and logs what was received and lost at each
// step. It is a measurement, not a test: it asserts only the accounting,
// and runs only with KFW_NETLINK_RATE_PROBE=1. Under TCG the numbers
// describe the lab, not real hardware.
func TestEventRateProbe(t *testing.T) {
	if os.Getenv("KFW_NETLINK_RATE_PROBE") != "1" {
		t.Skip("a measurement: set KFW_NETLINK_RATE_PROBE=1 to run it")
	}
	ncpu := cpus(t)
	loadModule(t, "event_rate_limit=0")
	conns := loopbackDrops(t, ncpu)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := procStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error { return sendDroppedOn(cpu, conns[cpu], 1, 16) })

	const step = 3 * time.Second
	for _, rate := range []float64{1000, 2000, 5000, 10000, 20000, 40000, 80000} {
		start := time.Now()
		var wg sync.WaitGroup
		counts := make([]int, ncpu)
		errs := make([]error, ncpu)
		for cpu := range ncpu {
			wg.Add(1)
			go func() {
				defer wg.Done()
				counts[cpu], errs[cpu] = sendAtRate(cpu, conns[cpu], rate/float64(ncpu), step)
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		sent := 0
		for cpu := range ncpu {
			if errs[cpu] != nil {
				t.Fatal(errs[cpu])
			}
			sent += counts[cpu]
		}
		generated, tl := checkAccounting(t, rec, instance, base, baseGen)
		received, lost := tl.received-base.received, tl.lost-base.lost
		st := procStats(t)
		achieved := float64(sent) / elapsed.Seconds()
		t.Logf("offered %6.0f/s, achieved %6.0f/s: %6d events, received %6d, lost %6d (%d queue overflows, %d nobufs)",
			rate, achieved, generated, received, lost, st.EventsQueueOverflows, st.EventsNobufs)
		base, baseGen = rec.tally(instance), st.EventsGenerated
		if achieved < 0.8*rate {
			t.Logf("the senders top out at %.0f drops/s: stopping", achieved)
			return
		}
	}
}
