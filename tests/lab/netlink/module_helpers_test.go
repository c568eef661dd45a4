//go:build labvm

// Package netlink tests kfw's generic netlink family inside a lab VM: the
// commands through netlinkclient and kfwctl's cli.Run, and the events
// multicast group with real packets, its rate limits and its exact loss
// accounting through module reloads. Every test loads a fresh module and
// unloads it.
package netlink

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// hangLimit bounds every wait for the kernel: a slow emulated machine gets
// there well within it, a broken kernel never does. Nothing is asserted
// about time.
const hangLimit = 90 * time.Second

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

// dial opens a command client, closed when the test ends.
func dial(t *testing.T) *netlinkclient.Client {
	t.Helper()
	c, err := netlinkclient.Dial(abi.GenlName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ctx is a context for one command, bounded by hangLimit.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), hangLimit)
	t.Cleanup(cancel)
	return c
}

var netnsSeq atomic.Int64

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("kfwn%d", netnsSeq.Add(1))
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

// waitFor polls cond until it holds, failing after hangLimit with the last
// state cond described.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
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

var procKFW = filepath.Join("/proc", abi.ProcDir)

func readProc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(procKFW, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// procStats reads /proc/kfw/stats.
func procStats(t *testing.T) abi.ModuleStats {
	t.Helper()
	st, err := abi.ParseProcStats(strings.NewReader(readProc(t, abi.ProcStats)), abi.ProcStats)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// procRuleStats reads /proc/kfw/rule_stats.
func procRuleStats(t *testing.T) []abi.ProcRuleCounters {
	t.Helper()
	var rows []abi.ProcRuleCounters
	err := abi.ParseProcRuleStats(strings.NewReader(readProc(t, abi.ProcRuleStats)), abi.ProcRuleStats,
		func(c abi.ProcRuleCounters) error {
			rows = append(rows, c)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// writeRules writes lines to /proc/kfw/rules as one transaction.
func writeRules(t *testing.T, lines ...string) {
	t.Helper()
	text := strings.Join(lines, "\n") + "\n"
	fd, err := unix.Open(filepath.Join(procKFW, abi.ProcRules), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if n, err := unix.Write(fd, []byte(text)); err != nil || n != len(text) {
		t.Fatalf("writing rules %q: %d bytes, %v", lines, n, err)
	}
}

// setParam writes a writable module parameter.
func setParam(t *testing.T, name, value string) {
	t.Helper()
	if err := os.WriteFile("/sys/module/kfw/parameters/"+name, []byte(value), 0); err != nil {
		t.Fatal(err)
	}
}

// tableState is what a refused command must leave alone.
type tableState struct {
	rules      string
	generation uint64
}

func snapshot(t *testing.T) tableState {
	t.Helper()
	return tableState{rules: readProc(t, abi.ProcRules), generation: procStats(t).Generation}
}
