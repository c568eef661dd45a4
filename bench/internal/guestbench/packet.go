package guestbench

import (
	"fmt"
	"time"

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
		TrialSeconds: p.Trial.Seconds(),
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
// removes f.
func (e *env) filterTrials(f filter, round int, p Params) (trials []results.Trial, err error) {
	if err := e.apply(f); err != nil {
		return nil, err
	}
	defer func() {
		if rerr := e.remove(f); rerr != nil && err == nil {
			err = rerr
		}
	}()
	paths := []string{results.PathForward, results.PathInput}
	if round%2 == 1 {
		paths = []string{results.PathInput, results.PathForward}
	}
	if f.kind == "none" {
		paths = append(paths, results.PathInject)
	}
	for _, path := range paths {
		t, err := e.trial(path, 0, p.PacketSenders, p.Trial)
		if err != nil {
			return trials, fmt.Errorf("%s: %w", path, err)
		}
		t.Round, t.Config = round+1, f.String()
		trials = append(trials, t)
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

// trial floods path for d with n senders at rate (0: as fast as they can)
// and reads the path's counter before and after.
func (e *env) trial(path string, rate float64, n int, d time.Duration) (results.Trial, error) {
	snd, err := e.openSenders(path, n)
	if err != nil {
		return results.Trial{}, err
	}
	defer snd.close()
	before, err := e.count(path)
	if err != nil {
		return results.Trial{}, err
	}
	c, err := snd.run(rate, d)
	if err != nil {
		return results.Trial{}, err
	}
	after, err := e.count(path)
	if err != nil {
		return results.Trial{}, err
	}
	return results.Trial{Path: path, Sent: c.Sent, Counted: after - before, Seconds: c.Time.Seconds()}, nil
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
