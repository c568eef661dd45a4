//go:build labvm

package exporter

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// nobody is the unprivileged user the exporter runs as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// TestUnprivileged runs the exporter as user nobody, as the documented
// deployment does: with only CAP_NET_ADMIN (ambient, as systemd's
// AmbientCapabilities= gives it) it subscribes and counts events; without
// it the join fails, kfw_netlink_subscribed stays 0, the log says why and
// the exporter keeps serving the /proc counters.
func TestUnprivileged(t *testing.T) {
	labtest.LoadModule(t)
	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output")
	ns := newNetNS(t)
	drop := labtest.DialUDP(t, ns, netip.MustParseAddrPort("127.0.0.1:9"))
	const drops = 50

	t.Run("without CAP_NET_ADMIN", func(t *testing.T) {
		e := startExporter(t, exporterConfig{cred: nobody})
		checkProcessCredentials(t, e.Cmd.Process.Pid, 0)
		waitFor(t, "the exporter to log why it is not subscribed", func() (bool, string) {
			log := e.Log.String()
			return strings.Contains(log, "not subscribed to kfw events") && strings.Contains(log, "operation not permitted"), log
		})
		before := e.scrape()
		if err := sendDropped(drop, drops, 16, pause); err != nil {
			t.Fatal(err)
		}
		// Scrapes go on, with the /proc counters and the reason.
		for range 5 {
			m := e.scrape()
			for name, want := range map[string]float64{"kfw_up": 1, "kfw_netlink_subscribed": 0} {
				if got := m.mustValue(t, name); got != want {
					t.Errorf("%s %v, want %v", name, got, want)
				}
			}
		}
		after := e.scrape()
		if got := delta(t, before, after, "kfw_rule_packets_total", "rule", "1", "action", "drop"); got != drops {
			t.Errorf("rule 1 counted %v drops in the scrape, want %d", got, drops)
		}
		// Nobody listens, so the kernel generates no event at all.
		if got := after.mustValue(t, "kfw_kernel_events_generated_total"); got != 0 {
			t.Errorf("kfw_kernel_events_generated_total %v without a subscribed listener, want 0", got)
		}
	})

	t.Run("with CAP_NET_ADMIN", func(t *testing.T) {
		e := startExporter(t, exporterConfig{cred: nobody, caps: []uintptr{unix.CAP_NET_ADMIN}})
		checkProcessCredentials(t, e.Cmd.Process.Pid, 1<<unix.CAP_NET_ADMIN)
		e.waitSubscribed()
		if err := sendDropped(drop, drops, 16, pause); err != nil {
			t.Fatal(err)
		}
		m := e.waitEventsSettled()
		kv := []string{"rule", "1", "family", "ipv4", "hook", "output", "proto", "udp"}
		if got, lost := m.mustValue(t, "kfw_drop_events_total", kv...), m.mustValue(t, "kfw_events_lost_total"); got != drops || lost != 0 {
			t.Errorf("kfw_drop_events_total%s %v, lost %v; want %d drop events, none lost", formatLabels(pairs(kv)), got, lost, drops)
		}
	})
}

// checkProcessCredentials checks that process pid runs as nobody with
// exactly the capabilities in caps, effective, permitted and ambient.
func checkProcessCredentials(t *testing.T, pid int, caps uint64) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	uid := strconv.FormatUint(uint64(nobody.Uid), 10)
	if want := strings.Repeat(uid+" ", 3) + uid; fields["Uid"] != want {
		t.Errorf("the exporter runs with Uid %q, want %q", fields["Uid"], want)
	}
	want := fmt.Sprintf("%016x", caps)
	for _, set := range []string{"CapEff", "CapPrm", "CapAmb"} {
		if fields[set] != want {
			t.Errorf("the exporter's %s is %s, want %s", set, fields[set], want)
		}
	}
}
