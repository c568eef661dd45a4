package labtest

import (
	"net"
	"net/netip"
	"testing"
)

func udpNetwork(a netip.Addr) string {
	if a.Is4() {
		return "udp4"
	}
	return "udp6"
}

// ListenUDP opens a UDP socket bound to addr (port 0: any free one) in
// network namespace ns, closed when the test ends.
func ListenUDP(t testing.TB, ns string, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	InNetNS(t, ns, func() (err error) {
		c, err = net.ListenUDP(udpNetwork(addr.Addr()), net.UDPAddrFromAddrPort(addr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// DialUDP opens a UDP socket in network namespace ns connected to raddr,
// from any local port, closed when the test ends.
func DialUDP(t testing.TB, ns string, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	return DialUDPFrom(t, ns, netip.AddrPort{}, raddr)
}

// DialUDPFrom is DialUDP from laddr (invalid or zero port: chosen by the
// kernel).
func DialUDPFrom(t testing.TB, ns string, laddr, raddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	InNetNS(t, ns, func() (err error) {
		var la *net.UDPAddr
		if laddr.IsValid() {
			la = net.UDPAddrFromAddrPort(laddr)
		}
		c, err = net.DialUDP(udpNetwork(raddr.Addr()), la, net.UDPAddrFromAddrPort(raddr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}
