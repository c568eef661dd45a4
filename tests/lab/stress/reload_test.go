//go:build labvm

package stress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// minDropsUnderTraffic is how many datagrams each sender must see rule 1
// drop on each family before the traffic stops and the drops are counted.
const minDropsUnderTraffic = 20

// TestReloadCycles loads and unloads the module again and again while
// traffic flows on both CPUs, kfw_exporter runs and is scraped
// continuously, a listener is subscribed, readers hold the /proc files
// open and netlink commands read the module. Each load restores a rule
// set (through /proc, netlink or kfwctl in turn) and is checked: a new
// instance starting from zero; the exporter back to kfw_up 1 and
// kfw_netlink_subscribed 1; rule 1 counted exactly what the senders saw
// it drop; the listener's accounting exact; a quiet window exact in /proc
// and in the exporter's metrics. Each unload happens with the module's
// reference count at 0 and leaves nothing: no /proc/kfw, no module, no
// family, the listener and the exporter told. Every scrape answers 200
// and the kernel logs nothing.
func TestReloadCycles(t *testing.T) {
	w := sizes(t)
	ncpu := twoCPUs(t)
	labtest.CheckKernelLog(t)
	if guest.ModuleLoaded(guest.ModuleName) {
		t.Fatal("kfw is already loaded: a previous test leaked it")
	}
	t.Cleanup(func() {
		if guest.ModuleLoaded(guest.ModuleName) {
			if err := guest.UnloadModule(); err != nil {
				t.Error(err)
			}
		}
	})
	kfwctl, err := guest.Bin("kfwctl")
	if err != nil {
		t.Fatal(err)
	}

	rec := subscribe(t)
	e := startExporter(t)
	s := startScraper(t, e, w.scrapeEvery)
	ns := newNetNS(t)
	f := newFlows(t, ns, ncpu, quietTargets())
	all := []int{drop4, hit4, drop6, hit6}
	procReaders := startReloadReaders(t, w.pause)
	commands := startCommandReader(t, w.pause)
	traffic := startPaced(t, f, all, w.pause, true)

	var hitsSent [2]uint64 // datagrams to the hit port that passed, by family
	countHits := func(out []outcome) {
		hitsSent[0] += out[hit4].passed
		hitsSent[1] += out[hit6].passed
	}
	waitHits := func(what string) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			h4, h6 := f.received(f.targets[hit4].dst), f.received(f.targets[hit6].dst)
			return h4 == hitsSent[0] && h6 == hitsSent[1],
				fmt.Sprintf("sinks received %d and %d of %d and %d", h4, h6, hitsSent[0], hitsSent[1])
		})
	}
	instances := map[uint64]int{}
	for cycle := range w.reloads {
		// insmod under traffic, with the exporter and the listener waiting.
		if err := guest.LoadModule(); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		st := readStats(t)
		if prev, ok := instances[st.Instance]; ok {
			t.Fatalf("cycle %d: instance %016x again, first seen in cycle %d", cycle, st.Instance, prev)
		}
		instances[st.Instance] = cycle
		if st.Generation != 0 || st.Rules != 0 || st.EventsGenerated != 0 {
			t.Fatalf("cycle %d: a fresh instance has generation %d, %d rules, %d events generated; want all 0",
				cycle, st.Generation, st.Rules, st.EventsGenerated)
		}
		rec.waitSubscriptions(t, cycle+1)
		joined := s.waitScrape(t, fmt.Sprintf("cycle %d: the exporter to report instance %016x, up and subscribed", cycle, st.Instance),
			func(m metrics) (bool, string) {
				up, _ := m.value("kfw_up")
				sub, _ := m.value("kfw_netlink_subscribed")
				return up == 1 && sub == 1 && hasInstance(m, st.Instance),
					fmt.Sprintf("kfw_up %v, kfw_netlink_subscribed %v, kfw_module_info %v", up, sub, m["kfw_module_info"])
			})

		// Restore a rule set. Only rule 1 drops: every EPERM a sender sees
		// from now on is one of its packets and one of its events.
		sentBefore := traffic.snapshotPerCPU()
		table := reloadTable(t, cycle)
		how := restore(t, cycle, kfwctl, table)
		if got := mustReadProc(t, abi.ProcRules); got != table.String() {
			t.Fatalf("cycle %d: after the restore through %s, %s is\n%s\nwant\n%s", cycle, how, abi.ProcRules, got, table.String())
		}
		if st := readStats(t); st.Generation != 1 || int(st.Rules) != len(table.Rules) {
			t.Fatalf("cycle %d: after the restore, generation %d and %d rules; want 1 and %d", cycle, st.Generation, st.Rules, len(table.Rules))
		}
		waitFor(t, "drops on every CPU and family under the restored rules", func() (bool, string) {
			now := traffic.snapshotPerCPU()
			for cpu := range now {
				for _, ti := range []int{drop4, drop6} {
					if d := now[cpu][ti].dropped - sentBefore[cpu][ti].dropped; d < minDropsUnderTraffic {
						return false, fmt.Sprintf("%d drops on cpu %d to %s", d, cpu, f.targets[ti])
					}
				}
			}
			return true, ""
		})
		out := traffic.stop(t)
		countHits(out)
		waitHits(fmt.Sprintf("cycle %d: the hits sent under traffic to reach their sinks", cycle))

		// Rule 1 counted every drop the senders saw, and each is an event
		// the listener received or counted as lost.
		c := readCounters(t)
		drops4, drops6 := totalDrops(sentBefore, out)
		checkInstanceDrops(t, cycle, c, drops4, drops6)
		checkAccounting(t, rec, st.Instance)

		// A quiet window: no update in flight, no other traffic in the
		// namespace. Scrapes cross the loopback of the initial namespace:
		// IPv4 accept rows at input and output count them too.
		before := c
		f.sendExact(t, all, w.quietPerCPU)
		n := uint64(w.quietPerCPU * ncpu)
		hitsSent[0], hitsSent[1] = hitsSent[0]+n, hitsSent[1]+n
		waitHits(fmt.Sprintf("cycle %d: the quiet window's hits to reach their sinks", cycle))
		after := readCounters(t)
		wantRules, wantHooks := quietDeltas(n)
		checkDeltas(t, fmt.Sprintf("cycle %d: quiet window", cycle), before, after, wantRules, wantHooks, scrapedRow)
		generated := checkAccounting(t, rec, st.Instance)
		if got := generated - before.stats.EventsGenerated; got != 4*n {
			t.Errorf("cycle %d: quiet window: %d events generated, want %d", cycle, got, 4*n)
		}
		checkExporterAgrees(t, s, cycle, after)
		checkExporterEvents(t, s, cycle, joined, generated)
		if t.Failed() {
			t.FailNow()
		}

		// rmmod under traffic, with the exporter scraping and the readers
		// holding the files open.
		traffic = startPaced(t, f, all, w.pause, true)
		restarted := traffic.snapshot()
		waitFor(t, "the traffic to flow again", func() (bool, string) {
			now := traffic.snapshot()
			return now[drop4].dropped > restarted[drop4].dropped+10 && now[drop6].dropped > restarted[drop6].dropped+10,
				fmt.Sprintf("%+v", now)
		})
		unload(t, cycle, rec, s)
		received, lost := rec.tally(st.Instance)
		t.Logf("cycle %d: instance %016x restored through %s; %d drops under traffic, then a quiet window of %d datagrams; events received %d, lost %d",
			cycle, st.Instance, how, drops4+drops6, 4*n, received, lost)
	}
	countHits(traffic.stop(t))
	waitHits("the last hits to reach their sinks")
	rec.checkProblems(t)
	procReaders.stop(t)
	commands.stop(t)
	s.stop()
	scrapes, failures := s.count()
	for _, r := range failures {
		t.Errorf("scrape %d at %s: %v", r.seq, r.when.Format("15:04:05.000"), r.err)
	}
	t.Logf("%d cycles, %d instances; %d scrapes, %d failed; %d passes of the /proc readers, %d of the command reader",
		w.reloads, len(instances), scrapes, len(failures), procReaders.reads.Load(), commands.reads.Load())
}

// hasInstance reports whether kfw_module_info names instance.
func hasInstance(m metrics, instance uint64) bool {
	want := fmt.Sprintf("module_instance=%q", abi.FormatInstance(instance))
	for labels := range m["kfw_module_info"] {
		if strings.Contains(labels, want) {
			return true
		}
	}
	return false
}

// scrapedRow is true for the hook rows that the exporter's scrapes count:
// TCP over the IPv4 loopback of the initial namespace, accepted.
func scrapedRow(k hookKey) bool {
	return k.family == abi.FamilyIPv4 && k.verdict == abi.ActionAccept && k.hook != abi.HookForward
}

// reloadTable is the rule set restored after a load: the base rules, a
// rule and a policy that differ from cycle to cycle.
func reloadTable(t *testing.T, cycle int) *abi.RuleTable {
	t.Helper()
	lines := []string{"flush", "policy hook=forward action=" + []string{"accept", "drop"}[cycle%2]}
	for _, words := range baseRuleWords {
		lines = append(lines, "add "+words)
	}
	lines = append(lines, fmt.Sprintf("add id=%d action=drop proto=tcp dport=1000-1999 hooks=input", 100+cycle))
	table := abi.NewRuleTable()
	if err := table.ApplyText(strings.Join(lines, "\n")); err != nil {
		t.Fatal(err)
	}
	return table
}

// restore loads table into the module, through /proc/kfw/rules, netlink
// or "kfwctl rules restore" in turn, and says which.
func restore(t *testing.T, cycle int, kfwctl string, table *abi.RuleTable) string {
	t.Helper()
	switch cycle % 3 {
	case 0:
		if err := writeRules(table.String()); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		return abi.ProcRules
	case 1:
		cl, err := netlinkclient.Dial(abi.GenlName)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		defer cl.Close()
		var policies []abi.Policy
		for _, h := range abi.Hooks() {
			policies = append(policies, abi.Policy{Hook: h, Action: table.Policies[h]})
		}
		ctx, cancel := cmdCtx()
		defer cancel()
		if err := cl.Replace(ctx, policies, table.Rules); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		return "netlink"
	default:
		path := filepath.Join(t.TempDir(), "rules")
		if err := os.WriteFile(path, []byte(table.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := guest.Run(kfwctl, "rules", "restore", path); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		return "kfwctl"
	}
}

// totalDrops sums the drops to the drop port of both families between two
// snapshots of the senders.
func totalDrops(before [][]outcome, after []outcome) (drops4, drops6 uint64) {
	drops4, drops6 = after[drop4].dropped, after[drop6].dropped
	for cpu := range before {
		drops4 -= before[cpu][drop4].dropped
		drops6 -= before[cpu][drop6].dropped
	}
	return drops4, drops6
}

// checkInstanceDrops fails unless rule 1 of this instance counted exactly
// the drops the senders saw since its restore, each with an event.
func checkInstanceDrops(t *testing.T, cycle int, c counters, drops4, drops6 uint64) {
	t.Helper()
	want := delta{drops4 + drops6, drops4*packetLen(loopback4) + drops6*packetLen(loopback6), drops4 + drops6}
	r := c.rules[1]
	if got := (delta{r.Packets, r.Bytes, r.Events}); got != want {
		t.Errorf("cycle %d: rule 1 counted %+v under traffic; the senders saw %d and %d drops: %+v", cycle, got, drops4, drops6, want)
	}
}

// checkExporterAgrees waits for a scrape, begun after the quiet window,
// and fails unless it reports what /proc says: the module up and
// subscribed, the base rules' counters, the hook rows no scrape touches,
// the events generated.
func checkExporterAgrees(t *testing.T, s *scraper, cycle int, c counters) {
	t.Helper()
	type series struct {
		name string
		kv   []string
		want uint64
	}
	want := []series{
		{"kfw_up", nil, 1},
		{"kfw_netlink_subscribed", nil, 1},
		{"kfw_ruleset_generation", nil, c.stats.Generation},
		{"kfw_kernel_events_generated_total", nil, c.stats.EventsGenerated},
	}
	for _, id := range []uint32{1, 2, 3} {
		r := c.rules[id]
		kv := []string{"rule", fmt.Sprint(id), "action", r.Action.String()}
		want = append(want, series{"kfw_rule_packets_total", kv, r.Packets}, series{"kfw_rule_bytes_total", kv, r.Bytes})
	}
	for k, row := range c.hooks {
		if scrapedRow(k) {
			continue
		}
		kv := []string{"family", abi.FamilyName(k.family), "hook", k.hook.String(), "verdict", k.verdict.String()}
		want = append(want, series{"kfw_packets_total", kv, row.Packets}, series{"kfw_bytes_total", kv, row.Bytes})
	}
	s.waitScrape(t, fmt.Sprintf("cycle %d: the exporter to report the quiet window's counts", cycle), func(m metrics) (bool, string) {
		for _, w := range want {
			if got, ok := m.value(w.name, w.kv...); !ok || got != float64(w.want) {
				return false, fmt.Sprintf("%s%q is %v (present %v), /proc says %d", w.name, w.kv, got, ok, w.want)
			}
		}
		return true, ""
	})
}

// eventsAccounted is what the exporter has received or counted as lost,
// over every instance since it started.
func eventsAccounted(m metrics) float64 {
	return m.sum("kfw_events_received_total") + m.sum("kfw_events_lost_total")
}

// checkExporterEvents waits for a scrape in which the exporter has
// received or counted as lost, since it joined this instance (joined is a
// scrape that saw it subscribed to it, before any event), every event the
// instance generated: docs/METRICS.md's generated = received + lost, for
// each instance. Its counters span instances, whose ends (events still
// queued in the module when it unloads, batches that arrive after the
// listener saw the family go) count for no one: the totals of two
// listeners may differ by them, the count of one instance may not.
func checkExporterEvents(t *testing.T, s *scraper, cycle int, joined metrics, generated uint64) {
	t.Helper()
	base := eventsAccounted(joined)
	s.waitScrape(t, fmt.Sprintf("cycle %d: the exporter to account for every event of the instance", cycle), func(m metrics) (bool, string) {
		got := eventsAccounted(m) - base
		return got == float64(generated), fmt.Sprintf("exporter: %v received or lost since it joined the instance, which generated %d",
			got, generated)
	})
}

// unload unloads the module, under traffic, with its reference count at
// 0, and checks that nothing of it is left and that the listener and the
// exporter saw it go.
func unload(t *testing.T, cycle int, rec *recorder, s *scraper) {
	t.Helper()
	if ref, err := moduleRefcount(); err != nil || ref != "0" {
		t.Fatalf("cycle %d: kfw's reference count is %q (%v) before rmmod, want 0", cycle, ref, err)
	}
	if err := guest.UnloadModule(); err != nil {
		t.Fatalf("cycle %d: rmmod under traffic: %v", cycle, err)
	}
	for _, path := range []string{procKFW, "/sys/module/" + guest.ModuleName} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cycle %d: %s after rmmod: %v, want it gone", cycle, path, err)
		}
	}
	if cl, err := netlinkclient.Dial(abi.GenlName); !errors.Is(err, netlinkclient.ErrModuleNotLoaded) {
		if err == nil {
			cl.Close()
		}
		t.Fatalf("cycle %d: the kfw family after rmmod: %v, want it unregistered", cycle, err)
	}
	waitFor(t, "the listener to see the family go", func() (bool, string) {
		_, last := rec.subscription()
		return !last.Subscribed && errors.Is(last.Err, netlinkclient.ErrModuleNotLoaded), fmt.Sprintf("%+v", last)
	})
	s.waitScrape(t, fmt.Sprintf("cycle %d: the exporter to report the module gone", cycle), func(m metrics) (bool, string) {
		up, _ := m.value("kfw_up")
		sub, _ := m.value("kfw_netlink_subscribed")
		return up == 0 && sub == 0 && len(m["kfw_module_info"]) == 0,
			fmt.Sprintf("kfw_up %v, kfw_netlink_subscribed %v, kfw_module_info %v", up, sub, m["kfw_module_info"])
	})
}
