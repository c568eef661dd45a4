//go:build labvm

package netlink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return guest.IPv4HeaderLen
	}
	return guest.IPv6HeaderLen
}

func localPort(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// ifindex returns the index of interface name in ns.
func ifindex(t *testing.T, ns, name string) uint32 {
	t.Helper()
	var idx int
	labtest.InNetNS(t, ns, func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = ifi.Index
		return nil
	})
	return uint32(idx)
}

// cpus is how many CPUs the VM has. The tests send from each, bound to
// it, and expect events from each; only the two-CPU stress test insists
// on two (the lab contract says -smp 2).
func cpus() int { return runtime.NumCPU() }

// twoCPUs fails the test unless the VM has at least two CPUs.
func twoCPUs(t *testing.T) int {
	t.Helper()
	n := cpus()
	if n < 2 {
		t.Fatalf("the lab VM has %d CPU: this test needs two (lab contract: -smp 2)", n)
	}
	return n
}

// sendDropped sends n datagrams that the output hook drops: each send
// fails with EPERM, which is how a local sender learns of the drop, so the
// count of drops is exact.
func sendDropped(c *net.UDPConn, n, payload int) error {
	buf := make([]byte, payload)
	for i := range n {
		if _, err := c.Write(buf); !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("datagram %d of %d: send returned %v, want EPERM (dropped at output)", i+1, n, err)
		}
	}
	return nil
}

// sendDroppedOn is sendDropped from a thread bound to cpu, so that every
// event is generated on that CPU.
func sendDroppedOn(cpu int, c *net.UDPConn, n, payload int) error {
	return guest.OnCPU(cpu, func() error { return sendDropped(c, n, payload) })
}
