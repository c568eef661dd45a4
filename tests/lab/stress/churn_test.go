//go:build labvm

package stress

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// The churn's own rules: ids above the base rules', matching only UDP to
// the churn ports, so that they never see the quiet windows' traffic.
const (
	churnPortMin = 20000
	churnPorts   = 4
	churnIDMin   = 100
	churnIDs     = 64
	churnSetMax  = 20 // churn rules in one replace, besides the base rules
)

// TestChurnUnderTraffic changes the table in a tight loop from one
// goroutine, alternately through /proc/kfw/rules and netlink, with
// transactions of every kind (replace and full restore, add, delete,
// policies, several commands in one write) and some that must be refused
// as a whole, while paced traffic flows on both CPUs, readers walk the
// /proc files and the rule dump, and a listener is subscribed. Between the
// churn phases, quiet windows send known traffic with no update in flight.
//
// Checked: every transaction commits or is refused exactly as a model of
// the table says, and the generation counts the commits; every table a
// reader sees is whole and holds the base rules; no counter of a base rule
// ever goes back; a quiet window moves every rule and hook counter exactly;
// the base rules' counters equal everything ever sent to them (they
// survive every transaction, flushes inside one included); the listener's
// received + lost equals the events generated; the kernel logs nothing.
func TestChurnUnderTraffic(t *testing.T) {
	w := sizes(t)
	ncpu := twoCPUs(t)
	labtest.CheckKernelLog(t)
	labtest.LoadModuleNoLogCheck(t)
	// Subscribed before the first rule, the listener owns every event.
	rec := subscribe(t)
	rec.waitSubscriptions(t, 1)
	instance := readStats(t).Instance

	ns := newNetNS(t)
	targets := quietTargets()
	quiet := []int{drop4, hit4, drop6, hit6}
	background := []int{drop4, drop6}
	for _, a := range loopbacks {
		for p := range churnPorts {
			background = append(background, len(targets))
			targets = append(targets, target{netip.AddrPortFrom(a, churnPortMin+uint16(p)), mayDrop})
		}
	}
	f := newFlows(t, ns, ncpu, targets)

	cl := labtest.DialNetlink(t)
	base := baseRules(t)
	u := newUpdater(cl, base, rand.New(rand.NewPCG(8, uint64(instance))))
	if err := u.apply(u.restoreTxn(false, false)); err != nil {
		t.Fatal(err)
	}
	dumper := labtest.DialNetlink(t)
	rd := startChurnReaders(t, dumper, base, w.pause)

	var sent struct{ drops4, drops6, hits4, hits6 uint64 } // ever sent to the base rules' ports
	for round := range w.rounds {
		// The phase lasts until both the updates and the traffic have
		// reached their size, whichever is the slower on this kernel.
		traffic := startPaced(t, f, background, w.pause, false)
		updates := 0
		for ; updates < w.updates || !traffic.sentAtLeast(uint64(w.churnSends)); updates++ {
			if err := u.step(); err != nil {
				t.Fatalf("round %d, update %d: %v", round, updates, err)
			}
			if err := traffic.failed(); err != nil {
				t.Fatalf("round %d, update %d: %v", round, updates, err)
			}
		}
		out := traffic.stop(t)
		sent.drops4 += out[drop4].dropped
		sent.drops6 += out[drop6].dropped

		// Quiet: no update in flight, nothing sent.
		settleLoopback(t)
		u.checkKernelTable(t)
		checkAccounting(t, rec, instance)
		before := readCounters(t)
		n := uint64(w.quietPerCPU * ncpu)
		f.sendExact(t, quiet, w.quietPerCPU)
		sent.drops4, sent.drops6, sent.hits4, sent.hits6 = sent.drops4+n, sent.drops6+n, sent.hits4+n, sent.hits6+n
		waitFor(t, "the quiet window's hits to reach their sinks", func() (bool, string) {
			h4, h6 := f.received(targets[hit4].dst), f.received(targets[hit6].dst)
			return h4 == sent.hits4 && h6 == sent.hits6, fmt.Sprintf("received %d and %d of %d and %d", h4, h6, sent.hits4, sent.hits6)
		})
		after := readCounters(t)
		wantRules, wantHooks := quietDeltas(n)
		checkDeltas(t, fmt.Sprintf("quiet window %d", round), before, after, wantRules, wantHooks, nil)
		generated := checkAccounting(t, rec, instance)
		if got := generated - before.stats.EventsGenerated; got != 4*n {
			t.Errorf("quiet window %d: %d events generated, want %d (a drop or hit event per datagram)", round, got, 4*n)
		}
		checkSurvival(t, after, sent.drops4, sent.drops6, sent.hits4, sent.hits6)
		received, lost := rec.tally(instance)
		t.Logf("round %d: %d transactions under %d datagrams; so far: %s; generation %d, %d rules, %d reader passes; events generated %d, received %d, lost %d",
			round, updates, sum(out), u.summary(), u.generation, len(u.model.Rules), rd.reads.Load(), generated, received, lost)
		if t.Failed() {
			t.FailNow()
		}
	}
	rd.stop(t)
	for cpu := range ncpu {
		if rec.eventsOnCPU(instance, cpu) == 0 {
			t.Errorf("no event from cpu %d: the traffic did not run on both CPUs", cpu)
		}
	}
}

// sum is the number of datagrams sent.
func sum(out []outcome) uint64 {
	var n uint64
	for _, o := range out {
		n += o.passed + o.dropped + o.refused
	}
	return n
}

// checkSurvival fails unless the base rules counted everything ever sent
// to them, in every phase: their counters survived every transaction.
func checkSurvival(t *testing.T, c counters, drops4, drops6, hits4, hits6 uint64) {
	t.Helper()
	l4, l6 := packetLen(loopback4), packetLen(loopback6)
	want := map[uint32]delta{
		1: {drops4 + drops6, drops4*l4 + drops6*l6, drops4 + drops6},
		2: {hits4 + hits6, hits4*l4 + hits6*l6, hits4 + hits6},
		3: {hits4 + hits6, hits4*l4 + hits6*l6, 0},
	}
	for id, w := range want {
		r := c.rules[id]
		if got := (delta{r.Packets, r.Bytes, r.Events}); got != w || r.Suppressed != 0 {
			t.Errorf("rule %d counts %+v, %d suppressed, since its creation; everything sent to it is %+v, none suppressed",
				id, got, r.Suppressed, w)
		}
	}
}

// updater changes the table one transaction at a time and keeps a model
// of what it must be.
type updater struct {
	cl         *netlinkclient.Client
	rng        *rand.Rand
	base       []abi.Rule
	model      *abi.RuleTable
	generation uint64         // the module's, as the commits so far make it
	kinds      map[string]int // transactions by kind
}

func newUpdater(cl *netlinkclient.Client, base []abi.Rule, rng *rand.Rand) *updater {
	return &updater{cl: cl, rng: rng, base: base, model: abi.NewRuleTable(), kinds: map[string]int{}}
}

// txn is one transaction: its commands, for the model, and a way to send
// them to the kernel.
type txn struct {
	kind     string // what and through which path, "replace/netlink"
	cmds     []abi.Command
	mustFail bool
	send     func() error
}

func (tx txn) String() string {
	lines := make([]string, len(tx.cmds))
	for i, c := range tx.cmds {
		lines[i] = c.String()
	}
	return fmt.Sprintf("%s %q", tx.kind, lines)
}

// step runs one random transaction.
func (u *updater) step() error {
	mustFail := u.rng.IntN(8) == 0
	viaNetlink := u.rng.IntN(2) == 0
	var tx txn
	switch u.rng.IntN(6) {
	case 0:
		tx = u.restoreTxn(viaNetlink, mustFail)
	case 1, 2:
		tx = u.addTxn(viaNetlink, mustFail)
	case 3:
		tx = u.delTxn(viaNetlink, mustFail)
	case 4:
		tx = u.policyTxn(viaNetlink)
	default:
		tx = u.editTxn(mustFail)
	}
	return u.apply(tx)
}

// apply runs tx against the model and the kernel: both must commit it or
// both refuse it, as tx says they must.
func (u *updater) apply(tx txn) error {
	modelErr := u.model.Apply(tx.cmds) // leaves the model alone on failure
	if (modelErr != nil) != tx.mustFail {
		return fmt.Errorf("the test's own model disagrees with %s: %v", tx, modelErr)
	}
	err := tx.send()
	switch {
	case !tx.mustFail && err != nil:
		return fmt.Errorf("%s: %w", tx, err)
	case tx.mustFail && err == nil:
		return fmt.Errorf("%s: committed; it must be refused as a whole (%v)", tx, modelErr)
	case err == nil:
		u.generation++
	}
	u.kinds[tx.kind]++
	return nil
}

// summary lists the transactions run so far by kind.
func (u *updater) summary() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(u.kinds)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, u.kinds[k]))
	}
	return strings.Join(parts, ", ")
}

// checkKernelTable fails unless the kernel's table, through /proc and
// netlink, is the model's, and the generation counts the commits.
func (u *updater) checkKernelTable(t *testing.T) {
	t.Helper()
	if got, want := mustReadProc(t, abi.ProcRules), u.model.String(); got != want {
		t.Fatalf("%s after the churn:\n%s\nthe model says:\n%s", abi.ProcRules, got, want)
	}
	ctx, cancel := cmdCtx()
	defer cancel()
	infos, err := u.cl.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dumped := make([]abi.Rule, len(infos))
	for i, info := range infos {
		dumped[i] = info.Rule
	}
	if !slices.Equal(dumped, u.model.Rules) {
		t.Fatalf("the rule dump after the churn is not the model's table:\n%q\nwant\n%q", dumped, u.model.Rules)
	}
	if st := readStats(t); st.Generation != u.generation || int(st.Rules) != len(u.model.Rules) {
		t.Fatalf("generation %d and %d rules after the churn; the commits make %d and %d",
			st.Generation, st.Rules, u.generation, len(u.model.Rules))
	}
}

func pick[T any](rng *rand.Rand, choices ...T) T { return choices[rng.IntN(len(choices))] }

// churnRule draws a valid rule with id that matches only UDP to the churn
// ports.
func (u *updater) churnRule(id uint16) abi.Rule {
	for {
		lo := u.rng.IntN(churnPorts)
		hi := lo + u.rng.IntN(churnPorts-lo)
		words := []string{
			fmt.Sprintf("id=%d", id),
			"action=" + pick(u.rng, "accept", "drop"),
			"proto=udp",
			fmt.Sprintf("dport=%d-%d", churnPortMin+lo, churnPortMin+hi),
		}
		if fam := pick(u.rng, "", "", "ipv4", "ipv6"); fam != "" {
			words = append(words, "family="+fam)
		}
		if hooks := pick(u.rng, "", "input", "output", "input,output", "forward,output"); hooks != "" {
			words = append(words, "hooks="+hooks)
		}
		if u.rng.IntN(4) == 0 {
			words = append(words, "iif=lo")
		}
		if u.rng.IntN(4) == 0 {
			words = append(words, "oif=lo")
		}
		if u.rng.IntN(2) == 0 {
			words = append(words, "log=1")
		}
		if u.rng.IntN(3) == 0 {
			rate := 1 + u.rng.IntN(1000)
			words = append(words, fmt.Sprintf("rate=%d", rate), fmt.Sprintf("burst=%d", rate+u.rng.IntN(100)))
		}
		// iif with output only, or oif with input only, is invalid: draw again.
		if r, err := abi.ParseRule(words); err == nil {
			return r
		}
	}
}

// churnIDsIn returns the ids of the churn rules in the model, ascending.
func (u *updater) churnIDsIn() []uint16 {
	var ids []uint16
	for _, r := range u.model.Rules {
		if r.ID >= churnIDMin {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// freeChurnID returns a churn id not in the model, or false when all are.
func (u *updater) freeChurnID() (uint16, bool) {
	used := map[uint16]bool{}
	for _, id := range u.churnIDsIn() {
		used[id] = true
	}
	start := u.rng.IntN(churnIDs)
	for i := range churnIDs {
		id := uint16(churnIDMin + (start+i)%churnIDs)
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

func (u *updater) randomPolicies(min int) []abi.Policy {
	var ps []abi.Policy
	for _, h := range abi.Hooks() {
		if u.rng.IntN(2) == 0 {
			ps = append(ps, abi.Policy{Hook: h, Action: pick(u.rng, abi.ActionAccept, abi.ActionDrop)})
		}
	}
	if len(ps) < min {
		ps = append(ps, abi.Policy{Hook: pick(u.rng, abi.Hooks()...), Action: pick(u.rng, abi.ActionAccept, abi.ActionDrop)})
	}
	return ps
}

// text is the /proc/kfw/rules write of cmds.
func text(cmds []abi.Command) string {
	var sb strings.Builder
	for _, c := range cmds {
		sb.WriteString(c.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}

// viaProc sends cmds as one /proc/kfw/rules write.
func viaProc(cmds []abi.Command) func() error {
	return func() error { return writeRules(text(cmds)) }
}

// viaNetlink sends with one netlink command.
func (u *updater) viaNetlink(do func(*netlinkclient.Client) error) func() error {
	return func() error { return do(u.cl) }
}

func kind(what string, viaNetlink bool) string {
	if viaNetlink {
		return what + "/netlink"
	}
	return what + "/proc"
}

// restoreTxn replaces the whole table: flush, some policies, the base
// rules and a random set of churn rules; the base rules keep their
// counters. Made to fail, it adds a base rule's id twice at the end.
func (u *updater) restoreTxn(viaNetlink, mustFail bool) txn {
	policies := u.randomPolicies(0)
	rules := slices.Clone(u.base)
	perm := u.rng.Perm(churnIDs)[:u.rng.IntN(churnSetMax+1)]
	slices.Sort(perm)
	for _, i := range perm {
		rules = append(rules, u.churnRule(uint16(churnIDMin+i)))
	}
	if mustFail {
		dup := pick(u.rng, u.base...)
		dup.Action = abi.ActionAccept + abi.ActionDrop - dup.Action
		rules = append(rules, dup)
	}
	cmds := []abi.Command{{Op: abi.CommandFlush}}
	for _, p := range policies {
		cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: p})
	}
	for _, r := range rules {
		cmds = append(cmds, abi.Command{Op: abi.CommandAdd, Rule: r})
	}
	tx := txn{kind: kind("restore", viaNetlink), cmds: cmds, mustFail: mustFail, send: viaProc(cmds)}
	if viaNetlink {
		tx.send = u.viaNetlink(func(c *netlinkclient.Client) error {
			ctx, cancel := cmdCtx()
			defer cancel()
			return c.Replace(ctx, policies, rules)
		})
	}
	return tx
}

// addTxn adds a churn rule; made to fail, it adds an id that exists.
func (u *updater) addTxn(viaNetlink, mustFail bool) txn {
	id, ok := u.freeChurnID()
	if mustFail || !ok {
		id = pick(u.rng, append(u.churnIDsIn(), u.base[u.rng.IntN(len(u.base))].ID)...)
		mustFail = true
	}
	r := u.churnRule(id)
	cmds := []abi.Command{{Op: abi.CommandAdd, Rule: r}}
	tx := txn{kind: kind("add", viaNetlink), cmds: cmds, mustFail: mustFail, send: viaProc(cmds)}
	if viaNetlink {
		tx.send = u.viaNetlink(func(c *netlinkclient.Client) error {
			ctx, cancel := cmdCtx()
			defer cancel()
			return c.AddRule(ctx, r)
		})
	}
	return tx
}

// delTxn deletes a churn rule; made to fail (or with none to delete), it
// deletes an id that does not exist.
func (u *updater) delTxn(viaNetlink, mustFail bool) txn {
	ids := u.churnIDsIn()
	var id uint16
	if mustFail || len(ids) == 0 {
		free, ok := u.freeChurnID()
		if !ok {
			return u.addTxn(viaNetlink, true)
		}
		id, mustFail = free, true
	} else {
		id = pick(u.rng, ids...)
	}
	cmds := []abi.Command{{Op: abi.CommandDel, ID: id}}
	tx := txn{kind: kind("del", viaNetlink), cmds: cmds, mustFail: mustFail, send: viaProc(cmds)}
	if viaNetlink {
		tx.send = u.viaNetlink(func(c *netlinkclient.Client) error {
			ctx, cancel := cmdCtx()
			defer cancel()
			return c.DelRule(ctx, id)
		})
	}
	return tx
}

// policyTxn sets one to three default policies.
func (u *updater) policyTxn(viaNetlink bool) txn {
	policies := u.randomPolicies(1)
	var cmds []abi.Command
	for _, p := range policies {
		cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: p})
	}
	tx := txn{kind: kind("policy", viaNetlink), cmds: cmds, send: viaProc(cmds)}
	if viaNetlink {
		tx.send = u.viaNetlink(func(c *netlinkclient.Client) error {
			ctx, cancel := cmdCtx()
			defer cancel()
			return c.SetPolicy(ctx, policies...)
		})
	}
	return tx
}

// editTxn is one /proc write of several commands: it replaces a churn rule
// by another with the same id (deleting it first), adds one and sets a
// policy. Made to fail, it ends with the add of a base rule's id, which
// exists: none of the commands before it may take effect.
func (u *updater) editTxn(mustFail bool) txn {
	var cmds []abi.Command
	if ids := u.churnIDsIn(); len(ids) > 0 {
		id := pick(u.rng, ids...)
		cmds = append(cmds, abi.Command{Op: abi.CommandDel, ID: id}, abi.Command{Op: abi.CommandAdd, Rule: u.churnRule(id)})
	}
	if id, ok := u.freeChurnID(); ok {
		cmds = append(cmds, abi.Command{Op: abi.CommandAdd, Rule: u.churnRule(id)})
	}
	cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: u.randomPolicies(1)[0]})
	if mustFail {
		dup := pick(u.rng, u.base...)
		cmds = append(cmds, abi.Command{Op: abi.CommandAdd, Rule: dup})
	}
	return txn{kind: "edit/proc", cmds: cmds, mustFail: mustFail, send: viaProc(cmds)}
}
