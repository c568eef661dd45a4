package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// sink receives and discards traffic on a set of UDP and TCP listeners.
type sink struct {
	listeners []*listener
}

// listener is one socket of a sink and what it received.
type listener struct {
	proto string // "udp" or "tcp"
	udp   *net.UDPConn
	tcp   *net.TCPListener

	packets atomic.Uint64 // UDP datagrams
	conns   atomic.Uint64 // TCP connections accepted
	bytes   atomic.Uint64 // payload bytes received
}

// openSink opens the listeners in the network namespace ns ("" for the
// current one). On failure it closes what it opened.
func openSink(ns string, udp, tcp []netip.AddrPort) (*sink, error) {
	s := &sink{}
	err := inNetNS(ns, func() error {
		for _, a := range udp {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
			if err != nil {
				return err
			}
			s.listeners = append(s.listeners, &listener{proto: "udp", udp: c})
		}
		for _, a := range tcp {
			l, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(a))
			if err != nil {
				return err
			}
			s.listeners = append(s.listeners, &listener{proto: "tcp", tcp: l})
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *sink) close() {
	for _, l := range s.listeners {
		l.close()
	}
}

// names lists the listeners as "udp ADDR:PORT", with the ports bound.
func (s *sink) names() []string {
	names := make([]string, len(s.listeners))
	for i, l := range s.listeners {
		names[i] = l.name()
	}
	return names
}

// serve receives on every listener until ctx ends, then closes them.
func (s *sink) serve(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.serve(ctx)
		}()
	}
	wg.Wait()
}

func (l *listener) addr() net.Addr {
	if l.udp != nil {
		return l.udp.LocalAddr()
	}
	return l.tcp.Addr()
}

func (l *listener) name() string { return l.proto + " " + l.addr().String() }

func (l *listener) close() {
	if l.udp != nil {
		l.udp.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
}

func (l *listener) summary() string {
	if l.proto == "udp" {
		return fmt.Sprintf("%s: received %d packets (%d bytes)", l.name(), l.packets.Load(), l.bytes.Load())
	}
	return fmt.Sprintf("%s: received %d bytes on %d connections", l.name(), l.bytes.Load(), l.conns.Load())
}

func (l *listener) serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, l.close) // unblocks reads and Accept
	defer stop()
	defer l.close()
	if l.udp != nil {
		l.serveUDP()
	} else {
		l.serveTCP(ctx)
	}
}

func (l *listener) serveUDP() {
	buf := make([]byte, 64<<10)
	for {
		n, err := l.udp.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // e.g. ECONNREFUSED reported on the socket: keep receiving
		}
		l.packets.Add(1)
		l.bytes.Add(uint64(n))
	}
}

// serveTCP accepts connections and reads them to their end until ctx ends,
// then closes those still open and waits for their readers.
func (l *listener) serveTCP(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.tcp.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // ECONNABORTED and the like concern one connection
		}
		l.conns.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				l.bytes.Add(uint64(n))
				if err != nil {
					return
				}
			}
		}()
	}
}
