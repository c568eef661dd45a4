//go:build labvm

package netlink

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// TestStressTwoCPUs drops packets on both CPUs while one goroutine changes
// the table in a loop through every mutating command and another reads it
// through /proc and the dump, with a listener subscribed. Rule 1, which
// drops the packets, is in every table the loop builds (or briefly
// missing after a flush: then the packets pass). The kernel must log no
// problem and the accounting must stay exact.
func TestStressTwoCPUs(t *testing.T) {
	ncpu := twoCPUs(t)
	labtest.LoadModule(t)
	conns := loopbackDrops(t, ncpu)
	rec := subscribe(t, netlinkclient.SubscriberConfig{})
	instance := labtest.ReadProcStats(t).Instance
	base, baseGen := prime(t, rec, instance, func(cpu int) error { return sendDroppedOn(cpu, conns[cpu], 1, 16) })
	cl := labtest.DialNetlink(t)
	rule1, err := abi.ParseRule(strings.Fields("id=1 action=drop proto=udp dport=9 hooks=output"))
	if err != nil {
		t.Fatal(err)
	}

	stop := pacedDrops(t, conns, 50*time.Microsecond)

	// Readers: /proc files and the dump, which pin tables across reads.
	quit := make(chan struct{})
	var readers sync.WaitGroup
	var readErr error
	var readMu sync.Mutex
	readCtx := ctx(t)
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-quit:
				return
			default:
			}
			for _, name := range []string{abi.ProcRules, abi.ProcRuleStats, abi.ProcStats, abi.ProcHooks} {
				if _, err := os.ReadFile(labtest.ProcPath(name)); err != nil {
					readMu.Lock()
					readErr = err
					readMu.Unlock()
				}
			}
			if _, err := cl.Rules(readCtx); err != nil {
				readMu.Lock()
				readErr = err
				readMu.Unlock()
			}
		}
	}()

	rng := rand.New(rand.NewPCG(1, 2))
	other := func(id int) abi.Rule {
		r, err := abi.ParseRule(strings.Fields(fmt.Sprintf(
			"id=%d action=%s proto=udp dport=%d-%d log=%d rate=%d", id, []string{"accept", "drop"}[id%2],
			20000+id, 20000+id+rng.IntN(100), id%2, rng.IntN(1000))))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	const rounds = 1200
	for i := range rounds {
		var err error
		switch i % 6 {
		case 0:
			rules := []abi.Rule{rule1}
			for id := 2; id < 2+rng.IntN(40); id++ {
				rules = append(rules, other(id))
			}
			err = cl.Replace(ctx(t), []abi.Policy{{Hook: abi.HookForward, Action: abi.Action(1 + rng.IntN(2))}}, rules)
		case 1:
			err = cl.AddRule(ctx(t), other(100+i))
		case 2:
			err = cl.DelRule(ctx(t), uint16(100+i-1))
		case 3:
			err = cl.SetPolicy(ctx(t), abi.Policy{Hook: abi.HookForward, Action: abi.Action(1 + rng.IntN(2))})
		case 4:
			if err = cl.Flush(ctx(t)); err == nil {
				err = cl.AddRule(ctx(t), rule1)
			}
		case 5:
			writeRules(t, fmt.Sprintf("add id=%d action=accept proto=udp dport=30000", 200+i), fmt.Sprintf("del id=%d", 200+i))
		}
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	drops := stop()
	close(quit)
	readers.Wait()
	if readErr != nil {
		t.Errorf("a reader failed: %v", readErr)
	}

	generated, tl := checkAccounting(t, rec, instance, base, baseGen)
	if generated != drops {
		t.Errorf("%d events generated for %d drops", generated, drops)
	}
	checkSequences(t, rec, instance)
	checkBothCPUs(t, rec, instance, ncpu)
	t.Logf("%d rounds of changes; %d drops: received %d, lost %d", rounds, drops,
		tl.received-base.received, tl.lost-base.lost)
}
