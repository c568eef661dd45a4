//go:build labvm

// Package kmod tests the kfw kernel module inside a lab VM: filtering with
// real packets, counters, the /proc/kfw files, the rule language and the
// module's life cycle. Every test loads a fresh module and unloads it.
package kmod

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// loadModule loads a fresh kfw with params for the test and unloads it when
// the test ends; the test fails if the kernel logs a problem meanwhile.
func loadModule(t *testing.T, params ...string) {
	t.Helper()
	if guest.ModuleLoaded(guest.ModuleName) {
		t.Fatal("kfw is already loaded: a previous test leaked it")
	}
	mark, err := guest.MarkLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := guest.LoadModule(params...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if guest.ModuleLoaded(guest.ModuleName) {
			if err := guest.UnloadModule(); err != nil {
				t.Error(err)
			}
		}
		if err := guest.CheckLogSince(mark); err != nil {
			t.Error(err)
		}
	})
}

var netnsSeq atomic.Int64

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends. Traffic inside it is the test's own.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("kfwt%d", netnsSeq.Add(1))
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

// newTopology creates the lab's client/router/server topology for the test.
func newTopology(t *testing.T) guest.Topology {
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

// inNS runs fn in network namespace ns and fails the test on error.
func inNS(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := guest.InNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds. The deadline only bounds a hang on a
// slow emulated machine; nothing is asserted about time.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s; last state: %s", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// moduleParam reads /sys/module/kfw/parameters/name.
func moduleParam(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/module/kfw/parameters/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
