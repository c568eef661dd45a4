package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopbacks are the addresses of the host tests; ::1 only where IPv6 works.
func loopbacks(t *testing.T) []netip.Addr {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err == nil {
		c.Close()
		addrs = append(addrs, netip.MustParseAddr("::1"))
	} else {
		t.Logf("no IPv6 loopback here (%v): testing IPv4 only", err)
	}
	return addrs
}

// startSink opens a sink and serves it until the test ends.
func startSink(t *testing.T, ns string, udp, tcp []netip.AddrPort) *sink {
	t.Helper()
	s, err := openSink(ns, udp, tcp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// eventually waits until cond holds; the bound only keeps a broken test
// from hanging, it is not a speed requirement.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logRecorder collects the reports of errorReporter.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func testOptions(rate float64, count uint64, size int, logs *logRecorder) sendOptions {
	return sendOptions{rate: rate, count: count, size: size, connectTimeout: 5 * time.Second,
		clock: realClock{}, logf: logs.logf}
}

func TestSendReachesSinkOverLoopback(t *testing.T) {
	const count, size = 50, 100
	for _, addr := range loopbacks(t) {
		t.Run(addr.String(), func(t *testing.T) {
			wild := netip.AddrPortFrom(addr, 0)
			s := startSink(t, "", []netip.AddrPort{wild}, []netip.AddrPort{wild})
			udp, tcp := s.listeners[0], s.listeners[1]
			flows := []flow{{"udp", addrPort(t, udp.addr())}, {"tcp", addrPort(t, tcp.addr())}}
			var logs logRecorder
			stats, err := send(context.Background(), flows, testOptions(0, count, size, &logs))
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range stats {
				want := flowStats{flow: flows[i], attempts: count, packets: count, bytes: count * size}
				if st != want {
					t.Errorf("stats %+v, want %+v", st, want)
				}
			}
			eventually(t, "sink got every UDP datagram", func() bool { return udp.packets.Load() == count })
			eventually(t, "sink got every TCP byte", func() bool { return tcp.bytes.Load() == count*size })
			if got := udp.bytes.Load(); got != count*size {
				t.Errorf("UDP bytes received %d, want %d", got, count*size)
			}
			if got := tcp.conns.Load(); got != 1 {
				t.Errorf("TCP connections %d, want 1 (the flow keeps its connection)", got)
			}
			if len(logs.lines) > 0 {
				t.Errorf("errors reported: %q", logs.lines)
			}
		})
	}
}

// closedPort returns a port of addr on which nothing listens (it was free
// a moment ago).
func closedPort(t *testing.T, network string, addr netip.Addr) netip.AddrPort {
	t.Helper()
	var a net.Addr
	if network == "udp" {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			t.Fatal(err)
		}
		a = c.LocalAddr()
		c.Close()
	} else {
		l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		if err != nil {
			t.Fatal(err)
		}
		a = l.Addr()
		l.Close()
	}
	return addrPort(t, a)
}

func TestSendCountsErrorsAndReportsEachKindOnce(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	t.Run("udp", func(t *testing.T) {
		// Each datagram draws an ICMP port unreachable, which the next
		// send on the connected socket reports as ECONNREFUSED.
		f := flow{"udp", closedPort(t, "udp", lo)}
		var logs logRecorder
		stats, err := send(context.Background(), []flow{f}, testOptions(200, 6, 10, &logs))
		if err != nil {
			t.Fatal(err)
		}
		st := stats[0]
		if st.attempts != 6 || st.packets+st.errors != 6 || st.errors == 0 {
			t.Errorf("stats %+v, want 6 attempts, some refused", st)
		}
		if len(logs.lines) != 1 || !strings.Contains(logs.lines[0], "connection refused") {
			t.Errorf("reports %q, want one about connection refused", logs.lines)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		f := flow{"tcp", closedPort(t, "tcp", lo)}
		var logs logRecorder
		stats, err := send(context.Background(), []flow{f}, testOptions(0, 4, 10, &logs))
		if err != nil {
			t.Fatal(err)
		}
		if want := (flowStats{flow: f, attempts: 4, errors: 4}); stats[0] != want {
			t.Errorf("stats %+v, want %+v", stats[0], want)
		}
		if len(logs.lines) != 1 || !strings.Contains(logs.lines[0], "connection refused") {
			t.Errorf("reports %q, want one about connection refused", logs.lines)
		}
	})
}

func TestSendStopsWithItsContext(t *testing.T) {
	lo := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 0)
	s := startSink(t, "", []netip.AddrPort{lo}, []netip.AddrPort{lo})
	udp, tcp := s.listeners[0], s.listeners[1]
	flows := []flow{{"udp", addrPort(t, udp.addr())}, {"tcp", addrPort(t, tcp.addr())}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for udp.packets.Load() < 10 || tcp.bytes.Load() < 10*64 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	var logs logRecorder
	stats, err := send(ctx, flows, testOptions(1000, 0, 64, &logs)) // no count: runs until cancelled
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range stats {
		if st.packets < 10 || st.attempts != st.packets || st.errors != 0 {
			t.Errorf("stats %+v: want at least 10 packets, all sent", st)
		}
	}
	if len(logs.lines) > 0 {
		t.Errorf("cancelling reported errors: %q", logs.lines)
	}
}

// TestNetNS proves that --netns puts the sockets in the namespace: a sink
// there is reachable from a sender in the same namespace and not from the
// host's.
func TestNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a network namespace needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2)")
	}
	ns := fmt.Sprintf("kfwtraffic-test-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")

	s := startSink(t, ns, []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, nil)
	udp := s.listeners[0]
	target := []flow{{"udp", addrPort(t, udp.addr())}}

	var logs logRecorder
	hostStats, err := send(context.Background(), target, testOptions(200, 5, 8, &logs))
	if err != nil {
		t.Fatal(err)
	}
	if hostStats[0].errors == 0 {
		t.Errorf("from the host namespace: %+v, want refusals (nothing listens there)", hostStats[0])
	}
	opts := testOptions(0, 10, 8, &logs)
	opts.netns = ns
	nsStats, err := send(context.Background(), target, opts)
	if err != nil {
		t.Fatal(err)
	}
	if nsStats[0].packets != 10 || nsStats[0].errors != 0 {
		t.Errorf("inside %s: %+v, want 10 packets sent", ns, nsStats[0])
	}
	eventually(t, "the sink in the namespace got the namespace's 10 datagrams", func() bool { return udp.packets.Load() >= 10 })
	if got := udp.packets.Load(); got != 10 {
		t.Errorf("the sink received %d datagrams, want exactly the 10 sent inside %s", got, ns)
	}

	if _, err := openSink("kfwtraffic-no-such-netns", []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, nil); err == nil ||
		!strings.Contains(err.Error(), "/run/netns/kfwtraffic-no-such-netns") {
		t.Errorf("openSink in a missing namespace = %v, want an error naming its path", err)
	}
}

func TestCommandLineUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"flood"},
		{"send"},
		{"send", "--udp", "localhost:53"},
		{"send", "--udp", "10.0.0.1:0"},
		{"send", "--tcp", "0.0.0.0:80"},
		{"send", "--udp", "10.0.0.1:53", "--rate", "-1"},
		{"send", "--udp", "10.0.0.1:53", "--size", "0"},
		{"send", "--udp", "10.0.0.1:53", "--size", "70000"},
		{"send", "--udp", "10.0.0.1:53", "extra"},
		{"sink", "--udp", "10.0.0.1"},
		{"sink", "--duration", "-1s", "--udp", ":5000"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("kfwtraffic %q: exit %d, want %d; stderr:\n%s", args, code, exitUsage, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "kfwtraffic send") {
		t.Errorf("kfwtraffic --help: exit %d, output %q", code, stdout.String())
	}
}

// TestCommandLine runs a sink and a sender as the command line does and
// checks what they print.
func TestCommandLine(t *testing.T) {
	port := closedPort(t, "udp", netip.MustParseAddr("127.0.0.1")).Port()
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	var sinkOut, sinkErr bytes.Buffer
	sinkDone := make(chan int)
	go func() { sinkDone <- run(ctx, []string{"sink", "--udp", listen}, &sinkOut, &sinkErr) }()

	// The sink may not listen yet: send until a run gets through without
	// a refusal.
	var sendOut, sendErr bytes.Buffer
	for {
		sendOut.Reset()
		sendErr.Reset()
		if code := run(context.Background(), []string{"send", "--udp", listen, "--count", "3", "--rate", "100", "--size", "16"}, &sendOut, &sendErr); code != 0 {
			t.Fatalf("send: exit %d; stderr:\n%s", code, sendErr.String())
		}
		if sendErr.Len() == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if want := "udp " + listen + ": sent 3 packets (48 bytes), 0 errors\n"; sendOut.String() != want {
		t.Errorf("send printed %q, want %q", sendOut.String(), want)
	}
	cancel()
	if code := <-sinkDone; code != 0 {
		t.Fatalf("sink: exit %d; stderr:\n%s", code, sinkErr.String())
	}
	if want := "kfwtraffic: sink listening on udp " + listen + "\n"; sinkErr.String() != want {
		t.Errorf("sink stderr %q, want %q", sinkErr.String(), want)
	}
	if !strings.HasPrefix(sinkOut.String(), "udp "+listen+": received ") {
		t.Errorf("sink summary %q, want a line for udp %s", sinkOut.String(), listen)
	}

	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"sink", "--netns", "kfwtraffic-no-such-netns", "--udp", ":0"}, &out, &errOut); code != exitFailure {
		t.Errorf("sink in a missing namespace: exit %d, want %d", code, exitFailure)
	}
}
