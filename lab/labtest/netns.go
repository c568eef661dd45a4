package labtest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

var netnsSeq atomic.Int64

// NewNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends: traffic inside it is the test's own.
// Its name is prefix followed by a number unique in the test binary.
func NewNetNS(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, netnsSeq.Add(1))
	if err := guest.AddNetNS(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guest.DeleteNetNS(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// NewTopology creates the lab's client/router/server topology
// (guest.NewTopology) and destroys it when the test ends.
func NewTopology(t testing.TB) guest.Topology {
	t.Helper()
	topo, err := guest.NewTopology()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Destroy(); err != nil {
			t.Error(err)
		}
	})
	return topo
}

// InNetNS runs fn in network namespace ns (guest.InNetNS) and fails the
// test if it returns an error.
func InNetNS(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := guest.InNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}
