package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// maxUDPPayload is the largest UDP payload over IPv4 (65535 - 20 - 8).
const maxUDPPayload = 65507

// flow is one target: a protocol and an address.
type flow struct {
	proto string // "udp" or "tcp"
	addr  netip.AddrPort
}

func (f flow) String() string { return f.proto + " " + f.addr.String() }

type sendOptions struct {
	rate           float64 // packets/s per flow; 0: as fast as possible
	count          uint64  // packets per flow; 0: no limit
	size           int     // payload bytes per packet
	connectTimeout time.Duration
	netns          string
	clock          clock
	logf           func(format string, args ...any) // reports the first error of each kind
}

// flowStats counts what one flow did.
type flowStats struct {
	flow     flow
	attempts uint64 // packets due: sent or failed
	packets  uint64 // sent: datagrams, or TCP writes that succeeded
	bytes    uint64 // payload bytes sent
	errors   uint64 // failed sends, writes and connects
}

func (s flowStats) String() string {
	return fmt.Sprintf("%s: sent %d packets (%d bytes), %d errors", s.flow, s.packets, s.bytes, s.errors)
}

// send runs every flow concurrently until each has sent opts.count packets
// or ctx ends, and returns their counts in the order of flows. The error
// reports flows that could not start (a namespace or a UDP socket that
// could not be opened); the other flows ran anyway.
func send(ctx context.Context, flows []flow, opts sendOptions) ([]flowStats, error) {
	stats := make([]flowStats, len(flows))
	errs := make([]error, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i].flow = f
			errs[i] = inNetNS(opts.netns, func() error {
				if f.proto == "udp" {
					return sendUDP(ctx, f, opts, &stats[i])
				}
				sendTCP(ctx, f, opts, &stats[i])
				return nil
			})
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", f, errs[i])
			}
		}()
	}
	wg.Wait()
	return stats, errors.Join(errs...)
}

// errorReporter logs the first error of each kind of one flow, so that a
// flow into a firewall that refuses every packet does not flood the log.
type errorReporter struct {
	flow flow
	logf func(format string, args ...any)
	seen map[string]bool
}

func (r *errorReporter) report(err error) {
	kind := errorKind(err)
	if r.seen[kind] {
		return
	}
	if r.seen == nil {
		r.seen = make(map[string]bool)
	}
	r.seen[kind] = true
	if r.logf != nil {
		r.logf("%s: %v (further errors of this kind are only counted)", r.flow, err)
	}
}

// errorKind classifies an error by its errno or timeout, ignoring the
// addresses and ports that change from one socket to the next.
func errorKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout"
	}
	return err.Error()
}

// sendUDP sends datagrams on a connected socket. Send errors (EPERM from a
// drop at the output hook, ECONNREFUSED after an ICMP port unreachable) are
// counted and the flow goes on.
func sendUDP(ctx context.Context, f flow, opts sendOptions, st *flowStats) error {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(f.addr))
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // unblocks a Write
	defer stop()

	payload := make([]byte, opts.size)
	p := newPacer(opts.rate, opts.clock)
	r := errorReporter{flow: f, logf: opts.logf}
	for opts.count == 0 || st.attempts < opts.count {
		if p.wait(ctx) != nil {
			break
		}
		st.attempts++
		n, err := conn.Write(payload)
		if err != nil {
			if ctx.Err() != nil {
				st.attempts-- // interrupted, not failed
				break
			}
			st.errors++
			r.report(err)
			continue
		}
		st.packets++
		st.bytes += uint64(n)
	}
	return nil
}

// sendTCP writes payloads on a connection (Nagle off: Go's default),
// connecting at the first packet and again after a failure. A packet whose
// connect or write fails counts as an error.
func sendTCP(ctx context.Context, f flow, opts sendOptions, st *flowStats) {
	dialer := net.Dialer{Timeout: opts.connectTimeout}
	var conn net.Conn
	var stopWatch func() bool
	disconnect := func() {
		if conn != nil {
			stopWatch()
			conn.Close()
			conn = nil
		}
	}
	defer disconnect()

	payload := make([]byte, opts.size)
	p := newPacer(opts.rate, opts.clock)
	r := errorReporter{flow: f, logf: opts.logf}
	for opts.count == 0 || st.attempts < opts.count {
		if p.wait(ctx) != nil {
			break
		}
		st.attempts++
		if conn == nil {
			c, err := dialer.DialContext(ctx, "tcp", f.addr.String())
			if err != nil {
				if ctx.Err() != nil {
					st.attempts--
					break
				}
				st.errors++
				r.report(err)
				continue
			}
			conn = c
			stopWatch = context.AfterFunc(ctx, func() { c.Close() }) // unblocks a Write
		}
		n, err := conn.Write(payload)
		st.bytes += uint64(n)
		if err != nil {
			if ctx.Err() != nil {
				st.attempts--
				break
			}
			st.errors++
			r.report(err)
			disconnect()
			continue
		}
		st.packets++
	}
}
