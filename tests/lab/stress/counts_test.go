//go:build labvm

package stress

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// The base rules count the quiet windows' traffic. The churn never touches
// them, and every table a reload restores has them.
var baseRuleWords = []string{
	"id=1 action=drop proto=udp dport=9 hooks=output",
	"id=2 action=accept proto=udp dport=10 hooks=output log=1",
	"id=3 action=accept proto=udp dport=10 hooks=input",
}

// baseRules returns the base rules, parsed.
func baseRules(t *testing.T) []abi.Rule {
	t.Helper()
	var rules []abi.Rule
	for _, words := range baseRuleWords {
		r, err := abi.ParseRule(strings.Fields(words))
		if err != nil {
			t.Fatalf("base rule %q: %v", words, err)
		}
		rules = append(rules, r)
	}
	return rules
}

// The indices of quietTargets' targets; every flows starts with them.
const (
	drop4 = iota // rule 1 drops it
	hit4         // rules 2 and 3 accept it
	drop6
	hit6
)

// quietTargets are the targets of a quiet window: both loopback addresses,
// the drop port and the hit port, in the order of drop4, hit4, drop6, hit6.
func quietTargets() []target {
	var tgs []target
	for _, a := range loopbacks {
		tgs = append(tgs, target{netip.AddrPortFrom(a, dropPort), mustDrop}, target{netip.AddrPortFrom(a, hitPort), mustAccept})
	}
	return tgs
}

// delta is how much a rule's or a hook's counters must move.
type delta struct {
	packets, bytes, events uint64
}

func (d *delta) add(packets, bytes, events uint64) {
	d.packets += packets
	d.bytes += bytes
	d.events += events
}

// quietDeltas is what a quiet window of n datagrams to each of
// quietTargets adds, to the base rules and to the hooks.
func quietDeltas(n uint64) (rules map[uint32]delta, hooks map[hookKey]delta) {
	rules = map[uint32]delta{}
	hooks = map[hookKey]delta{}
	for _, a := range loopbacks {
		bytes := n * packetLen(a)
		fam := familyOf(a)
		r1, r2, r3 := rules[1], rules[2], rules[3]
		r1.add(n, bytes, n) // a drop event each
		r2.add(n, bytes, n) // a hit event each
		r3.add(n, bytes, 0)
		rules[1], rules[2], rules[3] = r1, r2, r3
		hooks[hookKey{fam, abi.HookOutput, abi.ActionDrop}] = delta{packets: n, bytes: bytes}
		hooks[hookKey{fam, abi.HookOutput, abi.ActionAccept}] = delta{packets: n, bytes: bytes}
		hooks[hookKey{fam, abi.HookInput, abi.ActionAccept}] = delta{packets: n, bytes: bytes}
	}
	return rules, hooks
}

// checkDeltas fails unless every counter moved from before to after
// exactly as want says (and counters want does not name, not at all), the
// rule set stayed the same and no transaction committed. Hook rows for
// which inexact is true may have moved more (other traffic shares them).
func checkDeltas(t *testing.T, what string, before, after counters, rules map[uint32]delta,
	hooks map[hookKey]delta, inexact func(hookKey) bool) {
	t.Helper()
	if after.stats.Generation != before.stats.Generation || after.stats.Instance != before.stats.Instance {
		t.Errorf("%s: generation %d -> %d, instance %016x -> %016x: the table changed", what,
			before.stats.Generation, after.stats.Generation, before.stats.Instance, after.stats.Instance)
	}
	for id, b := range before.rules {
		a, ok := after.rules[id]
		if !ok {
			t.Errorf("%s: rule %d disappeared", what, id)
			continue
		}
		want := rules[id]
		got := delta{a.Packets - b.Packets, a.Bytes - b.Bytes, a.Events - b.Events}
		if got != want || a.Suppressed != b.Suppressed {
			t.Errorf("%s: rule %d moved by %+v and %d suppressed, want %+v and 0", what, id, got,
				a.Suppressed-b.Suppressed, want)
		}
	}
	for id := range after.rules {
		if _, ok := before.rules[id]; !ok {
			t.Errorf("%s: rule %d appeared", what, id)
		}
	}
	for k, b := range before.hooks {
		a := after.hooks[k]
		want := hooks[k]
		got := delta{packets: a.Packets - b.Packets, bytes: a.Bytes - b.Bytes}
		if inexact != nil && inexact(k) {
			if got.packets < want.packets || got.bytes < want.bytes {
				t.Errorf("%s: hook %s moved by %+v, want at least %+v", what, k, got, want)
			}
			continue
		}
		if got != want {
			t.Errorf("%s: hook %s moved by %+v, want %+v", what, k, got, want)
		}
	}
}

// settleLoopback waits until every datagram that kfw accepted at output
// has been through the input hook: on the loopback, with nothing sent
// now and nothing forwarded, each one is then counted at input, accepted
// or dropped. Sinks listen on every port the tests send to but the drop
// port, whose datagrams never get past output, so no ICMP error adds to
// the count.
func settleLoopback(t *testing.T) {
	t.Helper()
	waitFor(t, "the datagrams accepted at output to reach input", func() (bool, string) {
		h := readHooks(t)
		state := ""
		settled := true
		for _, fam := range []uint8{abi.FamilyIPv4, abi.FamilyIPv6} {
			out := h[hookKey{fam, abi.HookOutput, abi.ActionAccept}].Packets
			in := h[hookKey{fam, abi.HookInput, abi.ActionAccept}].Packets + h[hookKey{fam, abi.HookInput, abi.ActionDrop}].Packets
			settled = settled && out == in
			state += fmt.Sprintf("%s: %d accepted at output, %d seen at input; ", abi.FamilyName(fam), out, in)
		}
		return settled, state
	})
}
