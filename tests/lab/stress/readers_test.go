//go:build labvm

package stress

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// checkRulesText fails unless one read of /proc/kfw/rules is one whole,
// canonical table: what a write of it would restore, byte for byte.
func checkRulesText(b []byte) (*abi.RuleTable, error) {
	cmds, err := abi.ParseCommands(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s does not parse: %w\n%s", abi.ProcRules, err, b)
	}
	table := abi.NewRuleTable()
	if err := table.Apply(cmds); err != nil || table.String() != string(b) {
		return nil, fmt.Errorf("%s is not one canonical table (%v):\n%s", abi.ProcRules, err, b)
	}
	return table, nil
}

// checkProcRead checks one read of a /proc/kfw file for well-formedness.
func checkProcRead(name string, b []byte) error {
	var err error
	switch name {
	case abi.ProcRules:
		_, err = checkRulesText(b)
	case abi.ProcRuleStats:
		_, err = parseRuleStats(b)
	case abi.ProcHooks:
		_, err = parseHooks(b)
	case abi.ProcStats:
		_, err = parseStats(b)
	}
	return err
}

var procFiles = []string{abi.ProcRules, abi.ProcRuleStats, abi.ProcHooks, abi.ProcStats}

// readers runs goroutines that read the table while it changes and
// records the first thing they found wrong.
type readers struct {
	quit  chan struct{}
	wg    sync.WaitGroup
	err   atomic.Pointer[error]
	reads atomic.Uint64
}

func newReaders() *readers { return &readers{quit: make(chan struct{})} }

// loop runs read until stop, pausing between calls; the first error ends
// every reader.
func (r *readers) loop(pause time.Duration, read func() error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-r.quit:
				return
			default:
			}
			if err := read(); err != nil {
				r.err.CompareAndSwap(nil, &err)
				return
			}
			r.reads.Add(1)
			time.Sleep(pause)
		}
	}()
}

// stop stops the readers and fails the test if one found a problem.
func (r *readers) stop(t *testing.T) {
	t.Helper()
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	r.wg.Wait()
	if e := r.err.Load(); e != nil {
		t.Errorf("a reader failed: %v", *e)
	}
}

// monotonic remembers the last value of named counters and complains when
// one goes back: a rule's counters live as long as the rule, and the
// churn never touches the base rules.
type monotonic map[string]uint64

func (m monotonic) see(name string, v uint64) error {
	if last, ok := m[name]; ok && v < last {
		return fmt.Errorf("%s went back from %d to %d", name, last, v)
	}
	m[name] = v
	return nil
}

// baseRulesIn fails unless rules holds every base rule exactly.
func baseRulesIn(rules []abi.Rule, base []abi.Rule) error {
	have := map[uint16]abi.Rule{}
	for _, r := range rules {
		have[r.ID] = r
	}
	for _, b := range base {
		r, ok := have[b.ID]
		switch {
		case !ok:
			return fmt.Errorf("base rule %d is missing from a table read during the churn", b.ID)
		case r != b:
			return fmt.Errorf("base rule %d is %q in a table read during the churn, want %q", b.ID, r, b)
		}
	}
	return nil
}

// startChurnReaders reads every /proc/kfw file, and dumps the table and
// its stats over netlink, while the churn runs: every read is well formed,
// every table holds the base rules unchanged, and no counter of a base
// rule, a hook, the generation or the event pipeline ever goes back.
func startChurnReaders(t *testing.T, cl *netlinkclient.Client, base []abi.Rule, pause time.Duration) *readers {
	t.Helper()
	r := newReaders()
	seen := monotonic{}
	r.loop(pause, func() error {
		for _, name := range procFiles {
			b, err := readProc(name)
			if err != nil {
				return err
			}
			if err := checkProcRead(name, b); err != nil {
				return err
			}
			if err := procMonotonic(seen, name, b, base); err != nil {
				return err
			}
		}
		return nil
	})
	dumped := monotonic{}
	baseIDs := map[uint16]bool{}
	for _, b := range base {
		baseIDs[b.ID] = true
	}
	r.loop(pause, func() error {
		ctx, cancel := cmdCtx()
		defer cancel()
		infos, err := cl.Rules(ctx)
		if err != nil {
			return fmt.Errorf("rule dump: %w", err)
		}
		rules := make([]abi.Rule, len(infos))
		for i, info := range infos {
			rules[i] = info.Rule
			if !baseIDs[info.Rule.ID] {
				continue
			}
			name := fmt.Sprintf("dump: rule %d", info.Rule.ID)
			for _, c := range []struct {
				what string
				v    uint64
			}{{"packets", info.Counters.Packets}, {"bytes", info.Counters.Bytes}, {"events", info.Counters.Events}} {
				if err := dumped.see(name+" "+c.what, c.v); err != nil {
					return err
				}
			}
		}
		if err := baseRulesIn(rules, base); err != nil {
			return fmt.Errorf("rule dump: %w", err)
		}
		st, err := cl.Stats(ctx)
		if err != nil {
			return fmt.Errorf("stats command: %w", err)
		}
		return dumped.see("stats command: generation", st.Generation)
	})
	t.Cleanup(func() { r.stop(t) })
	return r
}

// procMonotonic checks one read of a /proc/kfw file against the previous
// reads of the same reader.
func procMonotonic(seen monotonic, name string, b []byte, base []abi.Rule) error {
	switch name {
	case abi.ProcRules:
		table, err := checkRulesText(b)
		if err != nil {
			return err
		}
		return baseRulesIn(table.Rules, base)
	case abi.ProcRuleStats:
		rows, err := parseRuleStats(b)
		if err != nil {
			return err
		}
		for _, b := range base {
			row, ok := rows[uint32(b.ID)]
			if !ok {
				return fmt.Errorf("%s has no row for base rule %d", abi.ProcRuleStats, b.ID)
			}
			prefix := fmt.Sprintf("%s: rule %d ", abi.ProcRuleStats, b.ID)
			if err := errors.Join(seen.see(prefix+"packets", row.Packets), seen.see(prefix+"bytes", row.Bytes),
				seen.see(prefix+"events", row.Events)); err != nil {
				return err
			}
		}
	case abi.ProcHooks:
		rows, err := parseHooks(b)
		if err != nil {
			return err
		}
		for k, row := range rows {
			if err := errors.Join(seen.see(abi.ProcHooks+": "+k.String()+" packets", row.Packets),
				seen.see(abi.ProcHooks+": "+k.String()+" bytes", row.Bytes)); err != nil {
				return err
			}
		}
	case abi.ProcStats:
		st, err := parseStats(b)
		if err != nil {
			return err
		}
		return errors.Join(seen.see("generation", st.Generation), seen.see("events_generated", st.EventsGenerated),
			seen.see("events_messages_sent", st.EventsMessagesSent))
	}
	return nil
}

// goneErr reports whether a /proc error means the module went away: the
// file is gone (ENOENT), or was removed under an open file, which then
// fails reads with EIO and seeks with EINVAL (fs/proc/inode.c).
func goneErr(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.EIO)
}

// staleSeek reports whether a seek failed because the file was removed
// under it.
func staleSeek(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && pe.Op == "seek" && errors.Is(err, unix.EINVAL)
}

// startReloadReaders reads every /proc/kfw file while the module comes
// and goes: each through a file it keeps open and reads again from offset
// 0 (which the module must release when it unloads), and each afresh. A
// read that succeeds must be well formed; the module's absence is no
// error.
func startReloadReaders(t *testing.T, pause time.Duration) *readers {
	t.Helper()
	r := newReaders()
	held := map[string]*os.File{}
	r.loop(pause, func() error {
		for _, name := range procFiles {
			b, err := readHeld(held, name)
			if err == nil {
				err = checkProcRead(name, b)
			} else if goneErr(err) || staleSeek(err) {
				err = nil
			}
			if err != nil {
				return fmt.Errorf("held open: %w", err)
			}
		}
		return nil
	})
	r.loop(pause, func() error {
		for _, name := range procFiles {
			b, err := readProc(name)
			if err == nil {
				err = checkProcRead(name, b)
			} else if goneErr(err) {
				err = nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	t.Cleanup(func() {
		r.stop(t)
		for _, f := range held {
			f.Close()
		}
	})
	return r
}

// startCommandReader runs the module's read-only netlink commands (stats
// and policies; no dump, which holds the module and would make rmmod
// fail) in a loop while the module comes and goes. A command sent to an
// unregistered family fails with ENOENT; then the reader resolves the
// family again. Any other failure is an error, and so is a generation that
// goes back within an instance.
func startCommandReader(t *testing.T, pause time.Duration) *readers {
	t.Helper()
	r := newReaders()
	var cl *netlinkclient.Client
	generation := map[uint64]uint64{}
	r.loop(pause, func() error {
		if cl == nil {
			c, err := netlinkclient.Dial(abi.GenlName)
			if errors.Is(err, netlinkclient.ErrModuleNotLoaded) {
				return nil
			}
			if err != nil {
				return err
			}
			cl = c
		}
		ctx, cancel := cmdCtx()
		defer cancel()
		st, err := cl.Stats(ctx)
		if err == nil {
			if st.Generation < generation[st.Instance] {
				return fmt.Errorf("stats command: instance %016x: generation went back from %d to %d",
					st.Instance, generation[st.Instance], st.Generation)
			}
			generation[st.Instance] = st.Generation
			_, err = cl.Policies(ctx)
		}
		if errors.Is(err, unix.ENOENT) {
			cl.Close()
			cl = nil
			return nil
		}
		return err
	})
	t.Cleanup(func() {
		r.stop(t)
		if cl != nil {
			cl.Close()
		}
	})
	return r
}

// readHeld reads name from offset 0 through a file kept open across
// calls; after an error the file is closed and the next call opens it
// again.
func readHeld(held map[string]*os.File, name string) ([]byte, error) {
	f := held[name]
	if f == nil {
		var err error
		if f, err = os.Open(filepath.Join(procKFW, name)); err != nil {
			return nil, err
		}
		held[name] = f
	}
	b, err := readFrom0(f)
	if err != nil {
		f.Close()
		delete(held, name)
	}
	return b, err
}

func readFrom0(f *os.File) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}
