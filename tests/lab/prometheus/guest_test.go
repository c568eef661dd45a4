//go:build labvm

// The guest side of TestPrometheus: a driver that runs in the lab VM. It
// loads kfw, builds the client/router/server topology, installs a rule set,
// starts paced traffic and kfw_exporter, and then serves the host's
// requests for scenario steps (a loss burst, a drop spike, a reload...) on
// guestControlPort until the host asks it to finish.
package prometheus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hangLimit bounds every wait of the driver; nothing is asserted about time.
const hangLimit = 2 * time.Minute

// runDir is where the lab mounts its run directory in the guest (see
// lab/README.md): the exporter's log written there outlives the VM.
const runDir = "/run/kfwlab"

// baseRules is the lab's rule set. Traffic goes from the client namespace
// through the router to the server; the forward rules see it in the router.
var baseRules = []string{
	"flush",
	"policy hook=input action=accept",
	"policy hook=forward action=drop",
	"policy hook=output action=accept",
	"add id=10 action=accept proto=udp dport=5001 hooks=forward",
	// Hit events.
	"add id=11 action=accept proto=udp dport=5002 hooks=forward log=1",
	// Drops: the baseline, and the spike of the drop-spike step.
	"add id=20 action=drop proto=udp dport=6001 hooks=forward",
	// The loss burst, on the loopback of a namespace of its own.
	"add id=40 action=accept proto=udp dport=6060 hooks=output log=1",
	// Telnet from a documentation network: never matches.
	"add id=90 action=drop family=ipv4 proto=tcp src=192.0.2.0/24 dport=23",
	// UDP 7001 matches no rule: the forward policy drops it.
}

// suppressedRule is added by the suppression step: it accepts and logs,
// with its hit events limited to 1/s, and that step sends it 10 packets/s.
// Accepted, not dropped: extra drops would move the drop-spike alert.
const suppressedRule = "add id=30 action=accept proto=udp dport=6501 hooks=forward log=1 rate=1 burst=1"

// lossBurst is how many logged packets the loss step sends while the
// exporter is stopped: several times what its 32 KiB socket buffer holds.
const lossBurst = 2000

// driver is the guest side of the lab.
type driver struct {
	t        *testing.T
	topo     guest.Topology
	rules    []string
	streams  map[string]*stream // paced traffic by name
	burst    *net.UDPConn       // the loss step's socket
	exporter *exec.Cmd
	exited   chan struct{}
	exitErr  error

	mu         sync.Mutex // one step at a time
	finished   chan struct{}
	finishOnce sync.Once
}

// TestGuestDriver is the driver; it only runs when the host test starts it.
func TestGuestDriver(t *testing.T) {
	if os.Getenv(driverEnv) == "" {
		t.Skip("the guest side of TestPrometheus: run by it, in a lab VM")
	}
	d := &driver{t: t, rules: baseRules, streams: map[string]*stream{}, finished: make(chan struct{})}
	d.setUp()
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(guestControlPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: hangLimit}
	go srv.Serve(ln)
	t.Logf("ready: module, topology, rules, traffic and kfw_exporter on :%d; control on :%d", guestExporterPort, guestControlPort)
	<-d.finished
	ctx, cancel := context.WithTimeout(context.Background(), hangLimit)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Error(err)
	}
}

// setUp brings the lab up: module, topology, rules, sinks, traffic and the
// exporter. Cleanups take it down in reverse and check the kernel log.
func (d *driver) setUp() {
	t := d.t
	labtest.LoadModule(t)
	d.topo = guest.StandardTopology()
	t.Cleanup(func() {
		if err := d.topo.Destroy(); err != nil {
			t.Error(err)
		}
	})
	if err := createTopology(d.topo); err != nil {
		t.Fatal(err)
	}
	if err := writeRules(d.rules); err != nil {
		t.Fatal(err)
	}

	v4, v6 := d.topo.Server.IPv4.Addr(), d.topo.Server.IPv6.Addr()
	for _, port := range []uint16{5001, 5002, 6501} {
		for _, a := range []netip.Addr{v4, v6} {
			d.sink(d.topo.Server.NS, netip.AddrPortFrom(a, port))
		}
	}
	// About 30 packets/s: accepted, logged, dropped by a rule, dropped by
	// the policy. The drops are the baseline of the drop-spike alert.
	client := d.topo.Client.NS
	if err := errors.Join(
		d.start("accepted", 10, client, netip.AddrPortFrom(v4, 5001), netip.AddrPortFrom(v6, 5001)),
		d.start("logged", 2, client, netip.AddrPortFrom(v4, 5002), netip.AddrPortFrom(v6, 5002)),
		d.start("dropped", 2, client, netip.AddrPortFrom(v4, 6001), netip.AddrPortFrom(v6, 6001)),
		d.start("policy", 1, client, netip.AddrPortFrom(v4, 7001)),
	); err != nil {
		t.Fatal(err)
	}

	// The loss burst's loopback, with a reader so that nothing answers
	// with port unreachable.
	const burstNS = "kfwp"
	if err := guest.AddNetNS(burstNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guest.DeleteNetNS(burstNS); err != nil {
			t.Error(err)
		}
	})
	lo := netip.MustParseAddrPort("127.0.0.1:6060")
	d.sink(burstNS, lo)
	var err error
	if d.burst, err = d.dial(burstNS, lo); err != nil {
		t.Fatal(err)
	}

	d.startExporter()
}

// createTopology creates topo as guest.Topology.Create does, but in a VM
// that has a network: its eth0 in the initial namespace takes the name the
// kernel gives a veth end before moving it, so the client's and server's
// ends get other names first and are renamed once in their namespace.
func createTopology(topo guest.Topology) error {
	for _, ns := range topo.Namespaces() {
		if err := guest.AddNetNS(ns); err != nil {
			return err
		}
		// Before the links exist, so that every IPv6 address skips DAD.
		for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
			if err := guest.Sysctl(ns, key, "0"); err != nil {
				return err
			}
		}
	}
	for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := guest.Sysctl(topo.Router(), key, "1"); err != nil {
			return err
		}
	}
	for _, l := range [][2]guest.Endpoint{{topo.Client, topo.RouterClient}, {topo.Server, topo.RouterServer}} {
		host, router := l[0], l[1]
		tmp := host.NS + "-" + host.Iface
		cmds := [][]string{
			{"link", "add", tmp, "netns", host.NS, "type", "veth", "peer", "name", router.Iface, "netns", router.NS},
			{"-n", host.NS, "link", "set", tmp, "name", host.Iface},
		}
		for _, e := range []guest.Endpoint{host, router} {
			cmds = append(cmds,
				[]string{"-n", e.NS, "link", "set", "lo", "up"},
				[]string{"-n", e.NS, "address", "add", e.IPv4.String(), "dev", e.Iface},
				[]string{"-n", e.NS, "address", "add", e.IPv6.String(), "dev", e.Iface, "nodad"},
				[]string{"-n", e.NS, "link", "set", e.Iface, "up"})
		}
		cmds = append(cmds,
			[]string{"-n", host.NS, "route", "add", "0.0.0.0/0", "via", router.IPv4.Addr().String()},
			[]string{"-n", host.NS, "route", "add", "::/0", "via", router.IPv6.Addr().String()})
		for _, c := range cmds {
			if _, err := guest.Run("ip", c...); err != nil {
				return fmt.Errorf("topology: %w", err)
			}
		}
	}
	return nil
}

// startExporter runs kfw_exporter on guestExporterPort, logging to the run
// directory. Its socket buffer is small (32 KiB, doubled by the kernel), so
// that the loss step can overflow it with a burst of a few thousand events.
func (d *driver) startExporter() {
	t := d.t
	bin, err := guest.Bin("kfw_exporter")
	if err != nil {
		t.Fatal(err)
	}
	dir := runDir
	if _, err := os.Stat(dir); err != nil {
		dir = t.TempDir()
	}
	log, err := os.Create(filepath.Join(dir, "kfw_exporter.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d.exporter = exec.Command(bin, "--web.listen-address=:"+strconv.Itoa(guestExporterPort), "--netlink.read-buffer=32KiB")
	d.exporter.Stdout, d.exporter.Stderr = log, log
	d.exporter.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.exporter.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() {
		d.exitErr = d.exporter.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
		default:
			_ = d.exporter.Process.Kill()
			<-d.exited
		}
	})
	d.waitExporter("kfw_exporter to subscribe", func(m map[string]float64) bool {
		return m["kfw_netlink_subscribed"] == 1
	})
}

// handler serves the host's requests: GET /ready, POST /step/NAME.
func (d *driver) handler() http.Handler {
	steps := map[string]func() (string, error){
		"suppress-start": d.suppressStart,
		"suppress-stop":  func() (string, error) { return d.stop("suppressed") },
		"loss":           d.loss,
		"spike-start":    d.spikeStart,
		"spike-stop":     func() (string, error) { return d.stop("spike") },
		"reload":         d.reload,
		"rmmod":          d.rmmod,
		"insmod":         d.insmod,
		"finish":         d.finish,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("POST /step/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		step, ok := steps[name]
		if !ok {
			http.Error(w, "no step "+name, http.StatusNotFound)
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.t.Logf("step %s", name)
		result, err := step()
		if err != nil {
			d.t.Errorf("step %s: %v", name, err)
			w.WriteHeader(http.StatusInternalServerError)
			result = err.Error()
		}
		_ = json.NewEncoder(w).Encode(stepResult{Result: result, Failed: err != nil})
	})
	return mux
}

// suppressStart adds the rate-limited rule (a ruleset change) and sends it
// 10 packets/s, of which its limit lets 1/s become events.
func (d *driver) suppressStart() (string, error) {
	d.rules = append(d.rules, suppressedRule)
	if err := writeRules([]string{suppressedRule}); err != nil {
		return "", err
	}
	err := d.start("suppressed", 10, d.topo.Client.NS, netip.AddrPortFrom(d.topo.Server.IPv4.Addr(), 6501))
	return "rule 30 added; 10 packets/s", err
}

// spikeStart adds 30 drops/s per family to the baseline's 5.
func (d *driver) spikeStart() (string, error) {
	v4, v6 := d.topo.Server.IPv4.Addr(), d.topo.Server.IPv6.Addr()
	err := d.start("spike", 30, d.topo.Client.NS, netip.AddrPortFrom(v4, 6001), netip.AddrPortFrom(v6, 6001))
	return "60 drops/s", err
}

// loss stops the exporter (SIGSTOP), sends lossBurst logged packets, lets
// it run again and waits until it has counted the events it lost.
func (d *driver) loss() (string, error) {
	before, err := scrapeExporter()
	if err != nil {
		return "", err
	}
	if err := d.exporter.Process.Signal(syscall.SIGSTOP); err != nil {
		return "", err
	}
	sendErr := sendBurst(d.burst, lossBurst)
	if err := d.exporter.Process.Signal(syscall.SIGCONT); err != nil {
		return "", err
	}
	if sendErr != nil {
		return "", sendErr
	}
	var m map[string]float64
	err = waitUntil("the exporter to count the lost events", func() (bool, string, error) {
		var err error
		if m, err = scrapeExporter(); err != nil {
			return false, "", err
		}
		settled := m["kfw_events_received_total"]+m["kfw_events_lost_total"] == m["kfw_kernel_events_generated_total"]
		return settled && m["kfw_events_lost_total"] > before["kfw_events_lost_total"], fmt.Sprint(m), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("burst of %d logged packets: %v events lost", lossBurst,
		m["kfw_events_lost_total"]-before["kfw_events_lost_total"]), nil
}

// reload unloads and loads the module at once and restores the rules.
func (d *driver) reload() (string, error) {
	if _, err := d.rmmod(); err != nil {
		return "", err
	}
	return d.insmod()
}

func (d *driver) rmmod() (string, error) {
	if err := guest.UnloadModule(); err != nil {
		return "", err
	}
	return "unloaded", nil
}

// insmod loads the module, restores the rules and waits until the exporter
// has subscribed to the new instance.
func (d *driver) insmod() (string, error) {
	if err := guest.LoadModule(); err != nil {
		return "", err
	}
	if err := writeRules(d.rules); err != nil {
		return "", err
	}
	err := waitUntil("the exporter to resubscribe", func() (bool, string, error) {
		m, err := scrapeExporter()
		return m["kfw_up"] == 1 && m["kfw_netlink_subscribed"] == 1, fmt.Sprint(m), err
	})
	return "loaded, rules restored", err
}

// finish stops the traffic and the exporter, which must exit cleanly on
// SIGTERM, and lets TestGuestDriver return.
func (d *driver) finish() (string, error) {
	defer d.finishOnce.Do(func() { close(d.finished) })
	for name := range d.streams {
		if _, err := d.stop(name); err != nil {
			return "", err
		}
	}
	if err := d.exporter.Process.Signal(syscall.SIGTERM); err != nil {
		return "", err
	}
	select {
	case <-d.exited:
	case <-time.After(hangLimit):
		return "", errors.New("kfw_exporter did not exit after SIGTERM")
	}
	if d.exitErr != nil {
		return "", fmt.Errorf("kfw_exporter exited with %v after SIGTERM", d.exitErr)
	}
	return "traffic and exporter stopped", nil
}

// stream is a paced sender of UDP datagrams.
type stream struct {
	quit chan struct{}
	done chan error
}

// start sends rate datagrams/s to each destination from ns until stopped.
// Sends that kfw refuses (EPERM) or that report an earlier port unreachable
// (ECONNREFUSED, without the module) are part of the game. A ticker drops
// ticks rather than catch up: a stalled guest never sends a burst.
func (d *driver) start(name string, rate int, ns string, dsts ...netip.AddrPort) error {
	var conns []*net.UDPConn
	for _, dst := range dsts {
		c, err := d.dial(ns, dst)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	s := &stream{quit: make(chan struct{}), done: make(chan error, len(dsts))}
	for i, c := range conns {
		dst := dsts[i]
		go func() {
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			buf := make([]byte, 64)
			for {
				select {
				case <-s.quit:
					s.done <- nil
					return
				case <-tick.C:
				}
				if _, err := c.Write(buf); err != nil && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ECONNREFUSED) {
					s.done <- fmt.Errorf("stream %s to %s: %w", name, dst, err)
					return
				}
			}
		}()
	}
	d.streams[name] = s
	d.t.Cleanup(func() { _, _ = d.stop(name) })
	return nil
}

// stop ends a stream and reports a send error it met.
func (d *driver) stop(name string) (string, error) {
	s, ok := d.streams[name]
	if !ok {
		return "not running", nil
	}
	delete(d.streams, name)
	close(s.quit)
	var errs []error
	for range cap(s.done) {
		errs = append(errs, <-s.done)
	}
	return "stopped", errors.Join(errs...)
}

// dial opens a UDP socket in ns connected to dst, closed at the end.
func (d *driver) dial(ns string, dst netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := guest.InNetNS(ns, func() (err error) {
		c, err = net.DialUDP(udpNetwork(dst), nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("udp socket in %s to %s: %w", ns, dst, err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c, nil
}

// sink binds addr in ns and discards what arrives.
func (d *driver) sink(ns string, addr netip.AddrPort) {
	var c *net.UDPConn
	err := guest.InNetNS(ns, func() (err error) {
		c, err = net.ListenUDP(udpNetwork(addr), net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
}

func udpNetwork(a netip.AddrPort) string {
	if a.Addr().Is4() {
		return "udp4"
	}
	return "udp6"
}

// sendBurst sends n datagrams as fast as it can.
func sendBurst(c *net.UDPConn, n int) error {
	buf := make([]byte, 16)
	for i := range n {
		if _, err := c.Write(buf); err != nil {
			return fmt.Errorf("burst datagram %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// writeRules writes lines to /proc/kfw/rules as one transaction.
func writeRules(lines []string) error {
	text := strings.Join(lines, "\n") + "\n"
	f, err := os.OpenFile("/proc/kfw/rules", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write([]byte(text)); err != nil {
		return fmt.Errorf("writing rules %q: %w", lines, err)
	}
	return nil
}

// waitExporter waits until a scrape of the exporter satisfies cond; it
// fails the test if that does not happen.
func (d *driver) waitExporter(what string, cond func(map[string]float64) bool) {
	err := waitUntil(what, func() (bool, string, error) {
		m, err := scrapeExporter()
		if err != nil {
			return false, err.Error(), nil // not serving yet
		}
		return cond(m), fmt.Sprint(m), nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
}

// waitUntil polls cond until it holds, it fails, or hangLimit passes.
func waitUntil(what string, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(hangLimit)
	for {
		ok, state, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for %s; last state: %s", what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrapeExporter scrapes the local exporter and sums each metric's series
// by name: enough for the driver's own checks.
func scrapeExporter() (map[string]float64, error) {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(guestExporterPort) + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("scrape: HTTP %d: %.200s", resp.StatusCode, body)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("scrape: bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("scrape: bad line %q: %w", line, err)
		}
		name, _, _ := strings.Cut(line[:i], "{")
		sums[name] += v
	}
	return sums, sc.Err()
}
