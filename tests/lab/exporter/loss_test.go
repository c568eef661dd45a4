//go:build labvm

package exporter

import (
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestLossAccounting makes the exporter lose events for real and checks
// that it counts them exactly: with a small socket buffer
// (--netlink.read-buffer) and the process stopped (SIGSTOP), a burst of
// drops overflows its socket; once it runs again, every drop is either a
// drop event or in kfw_events_lost_total, the overrun is counted on both
// sides, the subscription survives, and later events all arrive.
func TestLossAccounting(t *testing.T) {
	labtest.LoadModule(t)
	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output")
	e := startExporter(t, exporterConfig{args: []string{"--netlink.read-buffer=16KiB"}})
	e.waitSubscribed()
	ns := newNetNS(t)
	drop := labtest.DialUDP(t, ns, netip.MustParseAddrPort("127.0.0.1:9"))
	kv := []string{"rule", "1", "family", "ipv4", "hook", "output", "proto", "udp"}

	// About 100 bytes per event: the burst is several times what the
	// socket holds (the kernel doubles the 16 KiB asked for). Half of it
	// comes from each CPU in turn, so that all the batches of the second
	// CPU find the socket full: its loss shows only in a sync batch.
	const burst = 1500
	e.signal(syscall.SIGSTOP)
	err := errors.Join(
		guest.OnCPU(0, func() error { return sendDropped(drop, burst/2, 16, 0) }),
		guest.OnCPU(1, func() error { return sendDropped(drop, burst/2, 16, 0) }))
	e.signal(syscall.SIGCONT)
	if err != nil {
		t.Fatal(err)
	}
	m := e.waitEventsSettled()
	events, lost := m.mustValue(t, "kfw_drop_events_total", kv...), m.mustValue(t, "kfw_events_lost_total")
	suppressed := m.mustValue(t, "kfw_kernel_events_suppressed_total")
	if lost == 0 || events+lost+suppressed != burst {
		t.Errorf("%d drops: %v drop events, %v lost, %v suppressed; want some lost and a sum of %d",
			burst, events, lost, suppressed, burst)
	}
	for _, name := range []string{"kfw_netlink_overruns_total", "kfw_kernel_events_nobufs_total"} {
		if m.mustValue(t, name) == 0 {
			t.Errorf("%s 0 after an overflow of the exporter's socket", name)
		}
	}
	if sub := m.mustValue(t, "kfw_netlink_subscribed"); sub != 1 {
		t.Errorf("kfw_netlink_subscribed %v after the overflow, want 1", sub)
	}

	// Paced, the next drops all arrive: the loss does not grow.
	const paced = 50
	if err := sendDropped(drop, paced, 16, pause); err != nil {
		t.Fatal(err)
	}
	m = e.waitEventsSettled()
	if got, l := m.mustValue(t, "kfw_drop_events_total", kv...), m.mustValue(t, "kfw_events_lost_total"); got != events+paced || l != lost {
		t.Errorf("after %d more paced drops: %v drop events, %v lost; want %v and still %v", paced, got, l, events+paced, lost)
	}
	t.Logf("burst of %d drops: %v events received, %v lost", burst, events, lost)
}
