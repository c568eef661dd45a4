//go:build labvm

package exporter

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestShutdown sends SIGTERM to the exporter while Prometheus-like scrapes
// run back to back and events flow, and while the module is absent: it
// exits with status 0, without waiting out its grace period for
// in-flight scrapes, logs nothing at error level, and frees its port.
func TestShutdown(t *testing.T) {
	t.Run("subscribed and scraped", func(t *testing.T) {
		labtest.LoadModule(t)
		writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output")
		e := startExporter(t, exporterConfig{})
		e.waitSubscribed()
		drop, _ := loopbackTraffic(t)
		startPacedSender(t, drop)
		s := startScraper(t, e)
		s.waitScrape(t, "drop events", func(m metrics) bool { return m.sum("kfw_drop_events_total") > 0 })
		checkCleanShutdown(t, e)
		s.stop()
	})
	t.Run("module absent", func(t *testing.T) {
		e := startExporter(t, exporterConfig{})
		m := e.scrape()
		if up, sub := m.mustValue(t, "kfw_up"), m.mustValue(t, "kfw_netlink_subscribed"); up != 0 || sub != 0 {
			t.Fatalf("without the module: kfw_up %v, kfw_netlink_subscribed %v; want 0, 0", up, sub)
		}
		checkCleanShutdown(t, e)
	})
}

// checkCleanShutdown sends SIGTERM and checks the exit. A shutdown that
// only ended when its grace period for scrapes ran out logs so; that is a
// failure, as is an exit that never comes (hangLimit).
func checkCleanShutdown(t *testing.T, e *exporter) {
	t.Helper()
	start := time.Now()
	e.signal(syscall.SIGTERM)
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kfw_exporter exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	log := e.Log.String()
	if !strings.Contains(log, `msg="shutting down"`) {
		t.Errorf("the log does not say it is shutting down:\n%s", log)
	}
	for _, bad := range []string{"level=ERROR", "scrapes still running at exit"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log has %q:\n%s", bad, log)
		}
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(e.port)).String())
	if err != nil {
		t.Errorf("port %s still taken after the exit: %v", strconv.Itoa(e.port), err)
	} else {
		ln.Close()
	}
}
