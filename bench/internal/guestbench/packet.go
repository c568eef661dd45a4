package guestbench

import (
	"fmt"
	"slices"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// packetPath measures every filter configuration on the forward and input
// paths, round after round, each round starting one configuration later so
// that no configuration always runs first or last. A round of "none" also
// measures the injection ceiling.
func (e *env) packetPath(p Params) (*results.PacketPath, error) {
	filters := []filter{{kind: "none"}}
	for _, kind := range []string{"kfw", "nft", "iptables"} {
		for _, n := range p.RuleCounts {
			filters = append(filters, filter{kind: kind, rules: n})
		}
	}
	res := &results.PacketPath{
		Rounds:       p.Rounds,
		TrialSeconds: p.Burst.Seconds() * float64(p.Bursts),
		Bursts:       p.Bursts,
		Senders:      p.PacketSenders,
		FrameBytes:   len(e.frames[results.PathForward]),
		RuleCounts:   p.RuleCounts,
	}
	for round := range p.Rounds {
		for i := range filters {
			f := filters[(i+round)%len(filters)]
			trials, err := e.filterTrials(f, round, p)
			if err != nil {
				return res, fmt.Errorf("round %d, %s: %w", round+1, f, err)
			}
			res.Trials = append(res.Trials, trials...)
		}
		e.logf("packet path: round %d of %d done", round+1, p.Rounds)
	}
	return res, nil
}

// filterTrials installs f, floods each path, checks the rule counters and
// removes f. The paths take turns in short bursts, so that every path of a
// configuration sees the same share of the host's CPU (which varies from
// second to second on a shared host), and the injection path, which no
// filter touches, measures that share: the report normalises by it.
func (e *env) filterTrials(f filter, round int, p Params) (trials []results.Trial, err error) {
	if err := e.apply(f); err != nil {
		return nil, err
	}
	defer func() {
		if rerr := e.remove(f); rerr != nil && err == nil {
			err = rerr
		}
	}()
	all := []string{results.PathForward, results.PathInput, results.PathInject}
	k := round % len(all) // which path leads rotates by round
	paths := slices.Concat(all[k:], all[:k])
	snd := map[string]senders{}
	for _, path := range paths {
		s, err := e.openSenders(path, p.PacketSenders)
		if err != nil {
			return nil, err
		}
		defer s.close()
		snd[path] = s
	}
	acc := map[string]*results.Trial{}
	for _, path := range paths {
		acc[path] = &results.Trial{Round: round + 1, Config: f.String(), Path: path}
	}
	for range p.Bursts {
		for _, path := range paths {
			before, err := e.count(path)
			if err != nil {
				return nil, err
			}
			c, err := snd[path].run(0, p.Burst)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			after, err := e.count(path)
			if err != nil {
				return nil, err
			}
			t := acc[path]
			t.Sent += c.Sent
			t.Counted += after - before
			t.Seconds += c.Time.Seconds()
			t.Bursts = append(t.Bursts, results.Burst{Counted: after - before, Seconds: c.Time.Seconds()})
		}
	}
	for _, path := range paths {
		trials = append(trials, *acc[path])
	}
	check, err := e.checkCounters(f, trials)
	if err != nil {
		return trials, err
	}
	for i := range trials {
		trials[i].Check = check
	}
	e.logf("  %-14s %s", f, trialSummary(trials))
	return trials, nil
}

func trialSummary(ts []results.Trial) string {
	s := ""
	for _, t := range ts {
		s += fmt.Sprintf(" %s %8.0f pps", t.Path, t.PPS())
	}
	return s
}

// checkCounters verifies that the flood matched the last rule and nothing
// else: the last rule counted at least what the receivers counted and at
// most what was sent, the other rules nothing. It returns "" when that
// holds, else what is wrong (recorded with the trials, reported in
// BENCHMARKS.md); an error only when the counters cannot be read.
func (e *env) checkCounters(f filter, trials []results.Trial) (string, error) {
	if f.kind == "none" {
		return "", nil
	}
	rc, err := e.counters(f)
	if err != nil {
		return "", err
	}
	want := map[string][2]uint64{} // counter key → counted, sent
	for _, t := range trials {
		if t.Path == results.PathInject {
			continue // below every hook
		}
		key := t.Path
		if f.kind == "kfw" {
			key = "any" // one table for both hooks
		}
		w := want[key]
		want[key] = [2]uint64{w[0] + t.Counted, w[1] + t.Sent}
	}
	for key, w := range want {
		c, ok := rc[key]
		switch {
		case !ok:
			return fmt.Sprintf("no %s rules found", key), nil
		case c.others != 0:
			return fmt.Sprintf("%s: %d packets matched rules before the last", key, c.others), nil
		case c.last < w[0] || c.last > w[1]:
			return fmt.Sprintf("%s: last rule counted %d, receivers %d, sent %d", key, c.last, w[0], w[1]), nil
		}
	}
	return "", nil
}
