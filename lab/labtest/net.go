package labtest

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// FreePort returns a TCP port of the loopback (127.0.0.1) nobody listens
// on now.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// SendRaw sends whole IP packets from network namespace ns to dst through
// a raw IPPROTO_RAW socket (guest.SendRaw): all of pkts, times times,
// sleeping gap (if positive) after each. It fails the test on any error.
func SendRaw(t testing.TB, ns string, dst netip.Addr, times int, gap time.Duration, pkts ...[]byte) {
	t.Helper()
	InNetNS(t, ns, func() error { return guest.SendRaw(dst, times, gap, pkts...) })
}
