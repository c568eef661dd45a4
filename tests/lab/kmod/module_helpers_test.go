//go:build labvm

// Package kmod tests the kfw kernel module inside a lab VM: filtering with
// real packets, counters, the /proc/kfw files, the rule language and the
// module's life cycle. Every test loads a fresh module and unloads it.
package kmod

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// netnsPrefix starts the names of the suite's network namespaces.
const netnsPrefix = "kfwt"

// newNetNS creates a network namespace with only a loopback interface, up,
// and deletes it when the test ends. Traffic inside it is the test's own.
func newNetNS(t *testing.T) string { return labtest.NewNetNS(t, netnsPrefix) }

// waitFor polls cond every 10 ms until it holds. The 60 s limit only bounds
// a hang on a slow emulated machine; nothing is asserted about time.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	labtest.WaitFor(t, 60*time.Second, 10*time.Millisecond, what, cond)
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
