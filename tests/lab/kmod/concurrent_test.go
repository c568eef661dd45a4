//go:build labvm

package kmod

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// TestConcurrentWritersReadersTraffic runs writers, readers of every /proc
// file and traffic at once: every write commits exactly once, every read is
// one whole, well-formed table, and the kernel stays quiet.
func TestConcurrentWritersReadersTraffic(t *testing.T) {
	labtest.LoadModule(t)
	ns := newNetNS(t)
	conns := loopbackFlows(t, ns)
	mustWriteRules(t, "add id=60000 action=accept proto=udp")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var traffic sync.WaitGroup
	var sent counter
	flood(ctx, &traffic, &sent, conns...)

	const writers, writesEach = 2, 60
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := 1000 * (w + 1)
			for i := range writesEach {
				id := base + i%10
				text := fmt.Sprintf("add id=%d action=drop proto=tcp dport=%d\n", id, i)
				if i >= 10 {
					text = fmt.Sprintf("del id=%d\n", id) + text
				}
				if err := writeRules(text); err != nil {
					errs <- fmt.Errorf("writer %d, write %d %q: %w", w, i, text, err)
					return
				}
			}
		}()
	}
	readers, readersDone := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	for _, check := range []func() error{checkRulesWellFormed, checkOtherFilesWellFormed} {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for readers.Err() == nil {
				if err := check(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	readersDone()
	rwg.Wait()
	stop()
	traffic.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	st := readStats(t)
	if want := uint64(1 + writers*writesEach); st.Generation != want {
		t.Errorf("generation %d after %d writes", st.Generation, want)
	}
	if st.Rules != 1+writers*10 {
		t.Errorf("%d rules, want %d", st.Rules, 1+writers*10)
	}
	if c := ruleCounts(t, 60000); c.packets == 0 {
		t.Error("the traffic was not counted")
	}
}

func checkRulesWellFormed() error {
	b, err := readProcErr(abi.ProcRules)
	if err != nil {
		return err
	}
	cmds, err := abi.ParseCommands(string(b))
	if err != nil {
		return fmt.Errorf("rules read during writes do not parse: %w\n%s", err, b)
	}
	model := abi.NewRuleTable()
	if err := model.Apply(cmds); err != nil || model.String() != string(b) {
		return fmt.Errorf("rules read during writes are not one table (%v):\n%s", err, b)
	}
	return nil
}

func checkOtherFilesWellFormed() error {
	for _, name := range []string{abi.ProcStats, abi.ProcHooks, abi.ProcRuleStats} {
		b, err := readProcErr(name)
		if err != nil {
			return err
		}
		r := strings.NewReader(string(b))
		switch name {
		case abi.ProcStats:
			_, err = abi.ParseProcStats(r, name)
		case abi.ProcHooks:
			_, err = abi.ParseProcHooks(r, name)
		default:
			err = abi.ParseProcRuleStats(r, name, func(abi.ProcRuleCounters) error { return nil })
		}
		if err != nil {
			return fmt.Errorf("%s read during writes: %w", name, err)
		}
	}
	return nil
}
