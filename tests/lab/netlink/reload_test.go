//go:build labvm

package netlink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/cmd/kfwctl/cli"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// kfwctlEvents runs "kfwctl events -o json" in the background until the
// test ends; it returns its stdout and stderr.
func kfwctlEvents(t *testing.T) (stdout, stderr *labtest.LockedBuffer) {
	t.Helper()
	stdout, stderr = &labtest.LockedBuffer{}, &labtest.LockedBuffer{}
	env := cli.DefaultEnv()
	env.Stdin, env.Stdout, env.Stderr = strings.NewReader(""), stdout, stderr
	c, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- cli.Run(c, []string{"events", "-o", "json"}, env) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != cli.ExitOK {
			t.Errorf("kfwctl events exited %d: %s", code, stderr.String())
		}
	})
	waitFor(t, "kfwctl events to subscribe", func() (bool, string) {
		return strings.Contains(stderr.String(), "subscribed to kfw events"), stderr.String()
	})
	return stdout, stderr
}

// jsonLine is a line of kfwctl events -o json: an event or a loss.
type jsonLine struct {
	Type     string `json:"type"`
	Rule     uint32 `json:"rule"`
	CPU      uint32 `json:"cpu"`
	Seq      uint64 `json:"seq"`
	Instance string `json:"instance"`
	Lost     uint64 `json:"lost"`
}

// kfwctlCounts counts kfwctl's drop events and losses per instance.
func kfwctlCounts(t *testing.T, stdout *labtest.LockedBuffer) (drops, lost map[string]uint64) {
	t.Helper()
	drops, lost = map[string]uint64{}, map[string]uint64{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if line == "" {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("kfwctl printed %q: %v", line, err)
		}
		switch l.Type {
		case "drop":
			drops[l.Instance]++
		case "loss":
			lost[l.Instance] += l.Lost
		}
	}
	return drops, lost
}

// pacedDrops sends dropped datagrams from every CPU, pausing between them,
// until stop is called; it counts the drops. A drop is a send refused with
// EPERM. Without the module (or its rule) datagrams pass, and the next
// send reports the port unreachable that came back: ECONNREFUSED.
func pacedDrops(t *testing.T, conns []*net.UDPConn, pause time.Duration) (stop func() uint64) {
	t.Helper()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var drops uint64
	var firstErr error
	for cpu, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := guest.OnCPU(cpu, func() error {
				buf := make([]byte, 16)
				for {
					select {
					case <-quit:
						return nil
					default:
					}
					_, err := c.Write(buf)
					switch {
					case errors.Is(err, unix.EPERM):
						mu.Lock()
						drops++
						mu.Unlock()
					case err != nil && !errors.Is(err, unix.ECONNREFUSED):
						return err
					}
					time.Sleep(pause)
				}
			})
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	stopped := false
	stop = func() uint64 {
		if !stopped {
			stopped = true
			close(quit)
			wg.Wait()
		}
		if firstErr != nil {
			t.Fatal(firstErr)
		}
		return drops
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestReloadWhileSubscribed unloads the module while a Subscriber and
// "kfwctl events" are subscribed and drops flow on both CPUs, then loads
// it again: the kernel logs no problem, both clients resubscribe by
// themselves and receive the new instance's events, and the new
// instance's accounting starts from zero and is exact.
func TestReloadWhileSubscribed(t *testing.T) {
	ncpu := cpus()
	labtest.LoadModule(t)
	const ruleText = "add id=1 action=drop proto=udp dport=9 hooks=output"
	conns := loopbackDrops(t, ncpu)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	stdout, stderr := kfwctlEvents(t)
	stop := pacedDrops(t, conns, 200*time.Microsecond)

	first := labtest.ReadProcStats(t).Instance
	rec.waitEvents(t, "events of the first instance", 50, func(ev *netlinkclient.Event) bool { return ev.Instance == first })
	waitFor(t, "kfwctl to print events of the first instance", func() (bool, string) {
		drops, _ := kfwctlCounts(t, stdout)
		return drops[abi.FormatInstance(first)] >= 50, fmt.Sprint(drops)
	})

	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("rmmod while subscribed and events flow: %v", err)
	}
	waitFor(t, "the Subscriber to see the family go", func() (bool, string) {
		_, last := rec.subscriptions()
		return !last.Subscribed && errors.Is(last.Err, netlinkclient.ErrModuleNotLoaded), fmt.Sprintf("%+v", last)
	})
	waitFor(t, "kfwctl to see the family go", func() (bool, string) {
		return strings.Contains(stderr.String(), "not subscribed"), stderr.String()
	})

	if err := guest.LoadModule(); err != nil {
		t.Fatal(err)
	}
	rec.waitSubscriptions(t, 2)
	if _, last := rec.subscriptions(); !last.Resubscribed {
		t.Errorf("second subscription not flagged as a resubscription: %+v", last)
	}
	waitFor(t, "kfwctl to resubscribe", func() (bool, string) {
		return strings.Contains(stderr.String(), "resubscribed to kfw events"), stderr.String()
	})
	second := labtest.ReadProcStats(t).Instance
	if second == first {
		t.Fatalf("instance %016x did not change across the reload", first)
	}
	// The new table is empty: the listeners are members before its first
	// event, so they see every sequence from zero.
	dropsBefore := stop()
	stop = pacedDrops(t, conns, 200*time.Microsecond)
	writeRules(t, ruleText)
	rec.waitEvents(t, "events of the second instance", 50, func(ev *netlinkclient.Event) bool { return ev.Instance == second })
	waitFor(t, "kfwctl to print events of the second instance", func() (bool, string) {
		drops, _ := kfwctlCounts(t, stdout)
		return drops[abi.FormatInstance(second)] >= 50, fmt.Sprint(drops)
	})
	drops := stop()

	generated, tl := checkAccounting(t, rec, second, tally{}, 0)
	if generated != drops {
		t.Errorf("second instance: %d events generated for %d drops", generated, drops)
	}
	checkSequences(t, rec, second)
	checkBothCPUs(t, rec, second, ncpu)
	waitFor(t, "kfwctl to account for the second instance", func() (bool, string) {
		d, l := kfwctlCounts(t, stdout)
		s := abi.FormatInstance(second)
		return d[s]+l[s] == generated, fmt.Sprintf("kfwctl: %d drops, %d lost; kernel: %d", d[s], l[s], generated)
	})
	t.Logf("first instance: %d drops sent; second: %d generated, %d received, %d lost",
		dropsBefore, generated, tl.received, tl.lost)
}
