//go:build labvm

// Package exporter tests kfw_exporter inside a lab VM: the real binary
// ($KFW_BIN/kfw_exporter) as a subprocess, scraped over HTTP while known
// traffic crosses the real module. Every test loads a fresh module and
// unloads it.
package exporter

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hangLimit bounds every wait: a slow emulated machine gets there well
// within it, a broken exporter or kernel never does. Nothing is asserted
// about time.
const hangLimit = 120 * time.Second

// waitFor polls cond every 20 ms until it holds, failing after hangLimit
// with the last state cond described.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	labtest.WaitFor(t, hangLimit, 20*time.Millisecond, what, cond)
}

// writeRules writes lines to /proc/kfw/rules as one transaction.
func writeRules(t *testing.T, lines ...string) {
	t.Helper()
	text := strings.Join(lines, "\n") + "\n"
	f, err := os.OpenFile(labtest.ProcPath(abi.ProcRules), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := f.Write([]byte(text)); err != nil || n != len(text) {
		t.Fatalf("writing rules %q: %d bytes, %v", lines, n, err)
	}
}

// procHooks reads /proc/kfw/hooks.
func procHooks(t *testing.T) []abi.ProcHookCounters {
	t.Helper()
	rows, err := abi.ParseProcHooks(strings.NewReader(labtest.ReadProc(t, abi.ProcHooks)), abi.ProcHooks)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// procRuleStats reads /proc/kfw/rule_stats, by rule id.
func procRuleStats(t *testing.T) map[uint32]abi.ProcRuleCounters {
	t.Helper()
	rows := map[uint32]abi.ProcRuleCounters{}
	err := abi.ParseProcRuleStats(strings.NewReader(labtest.ReadProc(t, abi.ProcRuleStats)), abi.ProcRuleStats,
		func(c abi.ProcRuleCounters) error {
			rows[c.ID] = c
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// exporterConfig says how to run kfw_exporter.
type exporterConfig struct {
	args []string            // flags besides the listen address
	cred *syscall.Credential // nil: as root
	caps []uintptr           // ambient capabilities (with cred)
	// unixSocket serves on a Unix socket handed over by systemd socket
	// activation (--web.systemd-socket) instead of a TCP port: scrapes
	// then cross no netfilter hook and leave kfw's counters alone.
	unixSocket bool
	// client overrides the HTTP client (TLS); scheme is then "https".
	client *http.Client
	// user and password, if set, go with every request (basic auth).
	user, password string
}

// exporter is a running kfw_exporter.
type exporter struct {
	*labtest.Process // Log: its log
	t                *testing.T
	base             string // URL up to the path, "http://127.0.0.1:PORT"
	port             int    // TCP port; 0 on a Unix socket
	client           *http.Client
	user             string // basic auth of every request, if set
	pass             string
}

// startExporter starts $KFW_BIN/kfw_exporter and waits until it serves
// /metrics. It is stopped with SIGTERM when the test ends, and the test
// fails unless it then exits cleanly.
func startExporter(t *testing.T, cfg exporterConfig) *exporter {
	t.Helper()
	bin, err := guest.Bin("kfw_exporter")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.cred != nil {
		// nobody may not be able to enter the checkout.
		bin = labtest.CopyForAnyUser(t, bin, "kfw_exporter")
	}
	e := &exporter{t: t, client: cfg.client, user: cfg.user, pass: cfg.password}
	var cmd *exec.Cmd
	args := append([]string{"--log.level=debug"}, cfg.args...)
	scheme := "http"
	if e.client != nil {
		scheme = "https"
	}
	if cfg.unixSocket {
		var path string
		cmd, path = unixSocketCommand(t, bin, args)
		e.base = "http://kfw_exporter"
		e.client = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}}
	} else {
		e.port = labtest.FreePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.port))
		cmd = exec.Command(bin, append(args, "--web.listen-address="+addr)...)
		e.base = scheme + "://" + addr
		if e.client == nil {
			e.client = &http.Client{}
		}
	}
	e.client.Timeout = 30 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cfg.cred, AmbientCaps: cfg.caps}
	// From a locked thread that lives as long as the exporter: the
	// goroutines of guest.OnCPU (TestLossAccounting) end their threads,
	// and if one ran on the thread that started the exporter, Pdeathsig
	// killed it.
	e.Process = labtest.StartProcess(t, "kfw_exporter", cmd,
		labtest.ProcessOptions{HangLimit: hangLimit, FromLockedThread: true})
	waitFor(t, "kfw_exporter to serve /metrics", func() (bool, string) {
		e.FatalIfExited(t, "at start")
		status, _, err := e.get("/metrics")
		if err != nil {
			return false, err.Error()
		}
		return status == http.StatusOK, fmt.Sprintf("HTTP %d", status)
	})
	return e
}

// unixSocketCommand returns a command that runs bin with a listening Unix
// socket as file descriptor 3, announced as systemd does it, and the
// socket's path. LISTEN_PID must be the exporter's own pid: a shell sets it
// and execs the exporter.
func unixSocketCommand(t *testing.T, bin string, args []string) (*exec.Cmd, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kfw_exporter.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File()
	ln.SetUnlinkOnClose(false) // f, a duplicate, keeps listening there
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c",
		`LISTEN_PID=$$ LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec "$0" "$@"`,
		bin, "--web.systemd-socket"}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	return cmd, path
}

// get fetches a path, with the exporter's basic auth if it has one, and
// returns the status and body.
func (e *exporter) get(path string) (int, []byte, error) {
	resp, body, err := e.request(path, e.user, e.pass)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}

// request fetches a path with HTTP basic auth (none if user is empty).
func (e *exporter) request(path, user, password string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// scrape fetches /metrics and parses it; anything but HTTP 200 with a
// well-formed body fails the test.
func (e *exporter) scrape() metrics {
	e.t.Helper()
	m, err := e.scrapeErr()
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *exporter) scrapeErr() (metrics, error) {
	status, body, err := e.get("/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("scrape: HTTP %d: %.300s", status, body)
	}
	return parseMetrics(body)
}

// signal sends sig to the exporter.
func (e *exporter) signal(sig syscall.Signal) {
	e.t.Helper()
	if err := e.Cmd.Process.Signal(sig); err != nil {
		e.t.Fatalf("kfw_exporter: %v: %v", sig, err)
	}
}

// waitSubscribed waits until the exporter reports kfw_netlink_subscribed 1.
func (e *exporter) waitSubscribed() metrics {
	e.t.Helper()
	var m metrics
	waitFor(e.t, "kfw_exporter to subscribe to the events group", func() (bool, string) {
		m = e.scrape()
		v, _ := m.value("kfw_netlink_subscribed")
		return v == 1, fmt.Sprintf("kfw_netlink_subscribed %v", v)
	})
	return m
}

// waitEventsSettled waits until the exporter has accounted for every event
// the kernel generated: received plus lost equals generated, in one
// scrape. It holds when the exporter has been subscribed since the module
// loaded, so that every event of this instance is its to count.
func (e *exporter) waitEventsSettled() metrics {
	e.t.Helper()
	var m metrics
	waitFor(e.t, "kfw_exporter to receive or count as lost every event the kernel generated", func() (bool, string) {
		m = e.scrape()
		generated := m.mustValue(e.t, "kfw_kernel_events_generated_total")
		received := m.sum("kfw_events_received_total")
		lost := m.mustValue(e.t, "kfw_events_lost_total")
		return received+lost == generated,
			fmt.Sprintf("generated %v, received %v, lost %v", generated, received, lost)
	})
	return m
}
