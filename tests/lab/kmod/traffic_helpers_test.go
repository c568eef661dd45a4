//go:build labvm

package kmod

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

var (
	loopback4 = netip.MustParseAddr("127.0.0.1")
	loopback6 = netip.MustParseAddr("::1")
)

// loopbacks are the addresses of the loopback tests, one per family.
var loopbacks = []netip.Addr{loopback4, loopback6}

// family returns the KFW_FAMILY_* of an address.
func family(addr netip.Addr) uint8 {
	if addr.Is4() {
		return abi.FamilyIPv4
	}
	return abi.FamilyIPv6
}

// familyName is "ipv4" or "ipv6", as the rule language spells it.
func familyName(addr netip.Addr) string { return abi.FamilyName(family(addr)) }

// udpPacketLen is the IP length of a UDP datagram with payload bytes.
func udpPacketLen(addr netip.Addr, payload int) uint64 {
	if addr.Is4() {
		return guest.IPv4HeaderLen + guest.UDPHeaderLen + uint64(payload)
	}
	return guest.IPv6HeaderLen + guest.UDPHeaderLen + uint64(payload)
}

func tcpNetwork(addr netip.Addr) string {
	if addr.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

func boundPort(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// sendUDP sends n datagrams of size payload bytes and fails on any error.
func sendUDP(t *testing.T, c *net.UDPConn, n, payload int) {
	t.Helper()
	buf := make([]byte, payload)
	for i := range n {
		binary.BigEndian.PutUint32(buf, uint32(i))
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("sending datagram %d of %d: %v", i+1, n, err)
		}
	}
}

// sendUDPRefused sends n datagrams that the output hook must drop: each
// send fails with EPERM, which is how a local sender learns of the drop.
func sendUDPRefused(t *testing.T, c *net.UDPConn, n, payload int) {
	t.Helper()
	buf := make([]byte, payload)
	for i := range n {
		_, err := c.Write(buf)
		if !isErrno(err, unix.EPERM) {
			t.Fatalf("datagram %d of %d: send returned %v, want EPERM (dropped at output)", i+1, n, err)
		}
	}
}

// recvUDP receives exactly n datagrams, failing if they do not all come.
func recvUDP(t *testing.T, c *net.UDPConn, n int) {
	t.Helper()
	buf := make([]byte, 65536)
	for i := range n {
		// Only bounds a hang: an accepted datagram always arrives.
		if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("received %d of %d datagrams: %v", i, n, err)
		}
	}
	checkNoUDP(t, c)
}

// checkNoUDP fails if a datagram is waiting on c.
func checkNoUDP(t *testing.T, c *net.UDPConn) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a datagram (%d bytes, err %v) is waiting on %s, want none", n, err, c.LocalAddr())
	}
}

// listenTCP listens on addr in ns and accepts connections in the
// background, echoing one line on each.
func listenTCP(t *testing.T, ns string, addr netip.AddrPort) (net.Listener, uint16) {
	t.Helper()
	var ln net.Listener
	labtest.InNetNS(t, ns, func() (err error) {
		ln, err = net.Listen(tcpNetwork(addr.Addr()), addr.String())
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				n, _ := c.Read(buf)
				c.Write(buf[:n])
			}()
		}
	}()
	return ln, ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

// tcpExchange connects from ns to addr and exchanges one message. timeout
// bounds the attempt; a connection kfw lets through succeeds well within it.
func tcpExchange(ns string, addr netip.AddrPort, timeout time.Duration) error {
	return guest.InNetNS(ns, func() error {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial(tcpNetwork(addr.Addr()), addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		if _, err := c.Write([]byte("kfw\n")); err != nil {
			return err
		}
		buf := make([]byte, 16)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if string(buf[:n]) != "kfw\n" {
			return fmt.Errorf("echo returned %q", buf[:n])
		}
		return nil
	})
}

// Raw packets, for the exact TCP counts and for malformed packets.

// rawPacketID is the identification field of the suite's raw IPv4 packets.
const rawPacketID = 0x4b46

// ipv4Packet returns an IPv4 packet (guest.IPv4Packet) with id rawPacketID;
// fragOff is the raw frag_off field (flags and offset in 8-byte units).
func ipv4Packet(proto uint8, src, dst netip.Addr, fragOff uint16, payload []byte) []byte {
	return guest.IPv4Packet(proto, rawPacketID, fragOff, src, dst, payload)
}

// sendRaw sends complete IP packets (header included) to dst from ns, n
// times each, unpaced, through a raw IPPROTO_RAW socket: they pass the
// output hook exactly as built.
func sendRaw(t *testing.T, ns string, dst netip.Addr, n int, pkts ...[]byte) {
	t.Helper()
	labtest.SendRaw(t, ns, dst, n, 0, pkts...)
}
