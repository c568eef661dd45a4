// Command kfwtraffic generates UDP and TCP traffic for kfw's lab and
// benchmarks, and receives it.
//
//	kfwtraffic send [flags]   send paced UDP datagrams / TCP segments to --udp and --tcp targets
//	kfwtraffic sink [flags]   receive and discard on --udp and --tcp addresses
//
// Every target is one flow with its own socket, pacing (--rate packets/s,
// 0 = as fast as possible) and limit (--count); --duration bounds the run.
// A UDP packet is one datagram of --size payload bytes; a TCP packet is one
// write of --size bytes on a connection with Nagle off (one segment on an
// idle path), reconnecting when the connection fails. Errors are counted,
// not fatal: a flow into a dropping firewall is the point. --netns runs the
// sockets in a network namespace (an ip netns name or a path). On SIGINT or
// SIGTERM, or when done, each flow or listener prints one summary line.
//
// Exit status: 0 done or interrupted, 1 a socket or namespace could not be
// set up, 2 usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "send":
		return runSend(ctx, args[1:], stdout, stderr)
	case "sink":
		return runSink(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "kfwtraffic: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  kfwtraffic send [flags]   send paced UDP/TCP packets to each --udp/--tcp ADDR:PORT (kfwtraffic send -h)
  kfwtraffic sink [flags]   receive and discard on each --udp/--tcp ADDR:PORT (kfwtraffic sink -h)
`)
}

// addrList is a repeatable ADDR:PORT flag.
type addrList struct {
	addrs []netip.AddrPort
	// listen accepts ":PORT" for every address (the IPv6 wildcard, which
	// also receives IPv4).
	listen bool
}

func (l *addrList) String() string {
	s := make([]string, len(l.addrs))
	for i, a := range l.addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

func (l *addrList) Set(v string) error {
	if l.listen && strings.HasPrefix(v, ":") {
		v = "[::]" + v
	}
	a, err := netip.ParseAddrPort(v)
	if err != nil {
		return fmt.Errorf("want IPv4:PORT or [IPv6]:PORT with a literal address: %w", err)
	}
	if !l.listen && (a.Port() == 0 || a.Addr().IsUnspecified()) {
		return errors.New("a target needs a specific address and a port other than 0")
	}
	l.addrs = append(l.addrs, a)
	return nil
}

// commonFlags are the flags of both commands.
type commonFlags struct {
	udp, tcp addrList
	netns    string
	duration time.Duration
}

func (c *commonFlags) register(fs *flag.FlagSet, what string) {
	fs.Var(&c.udp, "udp", "UDP `ADDR:PORT` to "+what+"; repeatable")
	fs.Var(&c.tcp, "tcp", "TCP `ADDR:PORT` to "+what+"; repeatable")
	fs.StringVar(&c.netns, "netns", "", "open the sockets in this network namespace (`NAME` in /run/netns, or a path)")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0: until done or interrupted)")
}

// parseFlags parses args; ok is false after a usage error, which it has
// reported.
func parseFlags(fs *flag.FlagSet, c *commonFlags, args []string) (ok bool) {
	if err := fs.Parse(args); err != nil {
		return false
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "kfwtraffic %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
	case len(c.udp.addrs)+len(c.tcp.addrs) == 0:
		fmt.Fprintf(fs.Output(), "kfwtraffic %s: no --udp or --tcp address\n", fs.Name())
	case c.duration < 0:
		fmt.Fprintf(fs.Output(), "kfwtraffic %s: negative --duration\n", fs.Name())
	default:
		return true
	}
	fs.Usage()
	return false
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kfwtraffic %s [flags]\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// withDuration bounds ctx by d when d > 0.
func withDuration(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("send", stderr)
	var c commonFlags
	c.register(fs, "send to")
	opts := sendOptions{clock: realClock{}}
	fs.Float64Var(&opts.rate, "rate", 10, "packets per second of each flow (0: as fast as possible)")
	fs.Uint64Var(&opts.count, "count", 0, "packets of each flow, sent or failed (0: no limit)")
	fs.IntVar(&opts.size, "size", 64, "payload bytes per packet")
	fs.DurationVar(&opts.connectTimeout, "connect-timeout", time.Second, "TCP connect timeout; a flow retries at its next packet")
	if !parseFlags(fs, &c, args) {
		return exitUsage
	}
	switch {
	case opts.rate < 0:
		fmt.Fprintln(stderr, "kfwtraffic send: negative --rate")
		return exitUsage
	case opts.size < 1 || opts.size > maxUDPPayload:
		fmt.Fprintf(stderr, "kfwtraffic send: --size must be 1..%d\n", maxUDPPayload)
		return exitUsage
	case opts.connectTimeout <= 0:
		fmt.Fprintln(stderr, "kfwtraffic send: --connect-timeout must be positive")
		return exitUsage
	}
	opts.netns = c.netns
	opts.logf = func(format string, args ...any) { fmt.Fprintf(stderr, "kfwtraffic: "+format+"\n", args...) }

	var flows []flow
	for _, a := range c.udp.addrs {
		flows = append(flows, flow{proto: "udp", addr: a})
	}
	for _, a := range c.tcp.addrs {
		flows = append(flows, flow{proto: "tcp", addr: a})
	}
	ctx, cancel := withDuration(ctx, c.duration)
	defer cancel()
	stats, err := send(ctx, flows, opts)
	for _, st := range stats {
		fmt.Fprintln(stdout, st)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kfwtraffic:", err)
		return exitFailure
	}
	return 0
}

func runSink(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("sink", stderr)
	c := commonFlags{udp: addrList{listen: true}, tcp: addrList{listen: true}}
	c.register(fs, "listen on (:PORT: every address, IPv4 and IPv6)")
	if !parseFlags(fs, &c, args) {
		return exitUsage
	}
	s, err := openSink(c.netns, c.udp.addrs, c.tcp.addrs)
	if err != nil {
		fmt.Fprintln(stderr, "kfwtraffic:", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "kfwtraffic: sink listening on %s\n", strings.Join(s.names(), ", "))
	ctx, cancel := withDuration(ctx, c.duration)
	defer cancel()
	s.serve(ctx)
	for _, l := range s.listeners {
		fmt.Fprintln(stdout, l.summary())
	}
	return 0
}
