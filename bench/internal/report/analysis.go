package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/bench/internal/stats"
)

// configResult is one packet path configuration on one path, over all
// rounds.
type configResult struct {
	Config string
	PPS    stats.Summary // packets per second counted, per round, as measured
	Adj    stats.Summary // the same, adjusted for the host's share of CPU in its slot
	Ratio  stats.Summary // Adj / the baseline's Adj of the same round
	Checks []string      // failed sanity checks
	byRnd  map[int]float64
	adjRnd map[int]float64
}

// injection holds a phase's injection trials, by slot, and their median
// rate. The injection path is below every hook, so its rate follows only
// the CPU the host gave the VM at the time; rates adjusted by it compare
// slots as if the host had been equally busy throughout.
type injection struct {
	bySlot map[string]results.Trial
	median float64
}

func newInjection(trials []results.Trial) *injection {
	inj := &injection{bySlot: map[string]results.Trial{}}
	var all []float64
	for _, t := range trials {
		if t.Path == results.PathInject && t.PPS() > 0 {
			inj.bySlot[slotKey(t.Round, t.Config)] = t
			all = append(all, t.PPS())
		}
	}
	if len(all) == 0 {
		return nil
	}
	inj.median = stats.Summarize(all).Median
	return inj
}

func slotKey(round int, config string) string { return fmt.Sprint(round, " ", config) }

// adjust returns t's rate adjusted to the median injection rate: the
// median over its bursts of the burst's rate over the injection burst that
// followed or preceded it in the same turn, times the median injection
// rate (without bursts, the whole trial's rates). Unadjusted when the slot
// has no injection trial.
func (inj *injection) adjust(t results.Trial) float64 {
	if inj == nil {
		return t.PPS()
	}
	it, ok := inj.bySlot[slotKey(t.Round, t.Config)]
	if !ok || it.PPS() <= 0 {
		return t.PPS()
	}
	if len(t.Bursts) == 0 || len(t.Bursts) != len(it.Bursts) {
		return t.PPS() / it.PPS() * inj.median
	}
	var r []float64
	for i, b := range t.Bursts {
		if ib := it.Bursts[i].PPS(); ib > 0 {
			r = append(r, b.PPS()/ib)
		}
	}
	return stats.Summarize(r).Median * inj.median
}

// pathResults summarises the trials of one path, in the order of
// sortConfigs, with ratios to baseline ("none"). With inj, ratios are of
// adjusted rates (see injection).
func pathResults(trials []results.Trial, path, baseline string, inj *injection) []configResult {
	var order []string
	by := map[string]*configResult{}
	for _, t := range trials {
		if t.Path != path {
			continue
		}
		c := by[t.Config]
		if c == nil {
			c = &configResult{Config: t.Config, byRnd: map[int]float64{}, adjRnd: map[int]float64{}}
			by[t.Config] = c
			order = append(order, t.Config)
		}
		c.byRnd[t.Round] = t.PPS()
		c.adjRnd[t.Round] = inj.adjust(t)
		if t.Check != "" && !slices.Contains(c.Checks, t.Check) {
			c.Checks = append(c.Checks, t.Check)
		}
	}
	sortConfigs(order)
	base := by[baseline]
	out := make([]configResult, 0, len(order))
	for _, name := range order {
		c := by[name]
		var pps, adj, num, den []float64
		for _, r := range sortedRounds(c.byRnd) {
			pps = append(pps, c.byRnd[r])
			adj = append(adj, c.adjRnd[r])
			if base != nil {
				if b, ok := base.adjRnd[r]; ok {
					num, den = append(num, c.adjRnd[r]), append(den, b)
				}
			}
		}
		c.PPS, c.Adj = stats.Summarize(pps), stats.Summarize(adj)
		c.Ratio = stats.Ratios(num, den)
		out = append(out, *c)
	}
	return out
}

// pairRatio summarises a/b per round for two configs of one path, of
// adjusted rates.
func pairRatio(rs []configResult, a, b string) stats.Summary {
	var ca, cb *configResult
	for i := range rs {
		switch rs[i].Config {
		case a:
			ca = &rs[i]
		case b:
			cb = &rs[i]
		}
	}
	if ca == nil || cb == nil {
		return stats.Summary{}
	}
	var num, den []float64
	for _, r := range sortedRounds(ca.adjRnd) {
		if v, ok := cb.adjRnd[r]; ok {
			num, den = append(num, ca.adjRnd[r]), append(den, v)
		}
	}
	return stats.Ratios(num, den)
}

func find(rs []configResult, name string) (configResult, bool) {
	for _, r := range rs {
		if r.Config == name {
			return r, true
		}
	}
	return configResult{}, false
}

func sortedRounds(m map[int]float64) []int {
	var rs []int
	for r := range m {
		rs = append(rs, r)
	}
	sort.Ints(rs)
	return rs
}

// sortConfigs orders "none" first, then by kind (kfw, nft, iptables, other)
// and rule count.
func sortConfigs(names []string) {
	kindRank := map[string]int{"none": 0, "kfw": 1, "nft": 2, "iptables": 3}
	key := func(s string) (int, int) {
		kind, n, _ := strings.Cut(s, "-")
		rank, ok := kindRank[kind]
		if !ok {
			rank = 4
		}
		var rules int
		fmt.Sscan(n, &rules)
		return rank, rules
	}
	slices.SortStableFunc(names, func(a, b string) int {
		ka, na := key(a)
		kb, nb := key(b)
		if ka != kb {
			return ka - kb
		}
		return na - nb
	})
}

// addedNanos is the time a configuration adds to each packet, from the
// median rates: 1/pps - 1/base, in nanoseconds (of the emulated CPU).
func addedNanos(pps, base float64) float64 {
	if pps <= 0 || base <= 0 {
		return math.NaN()
	}
	return (1/pps - 1/base) * 1e9
}

// benchSummary is the median of each metric over the runs of one
// benchmark.
type benchSummary struct {
	Pkg, Name string
	Runs      int
	Metrics   map[string]float64
}

// summarizeBench groups benchmark runs by package and name (GOMAXPROCS
// suffix dropped), in first-seen order.
func summarizeBench(bs []results.Benchmark) []benchSummary {
	type group struct {
		pkg, name string
		values    map[string][]float64
		runs      int
	}
	var order []string
	groups := map[string]*group{}
	for _, b := range bs {
		name := trimProcs(b.Name)
		k := b.Pkg + " " + name
		g := groups[k]
		if g == nil {
			g = &group{pkg: b.Pkg, name: name, values: map[string][]float64{}}
			groups[k] = g
			order = append(order, k)
		}
		g.runs++
		for unit, v := range b.Metrics {
			g.values[unit] = append(g.values[unit], v)
		}
	}
	out := make([]benchSummary, 0, len(order))
	for _, k := range order {
		g := groups[k]
		s := benchSummary{Pkg: g.pkg, Name: g.name, Runs: g.runs, Metrics: map[string]float64{}}
		for unit, vs := range g.values {
			s.Metrics[unit] = stats.Summarize(vs).Median
		}
		out = append(out, s)
	}
	return out
}

// trimProcs drops the -N GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	for _, r := range name[i+1:] {
		if r < '0' || r > '9' {
			return name
		}
	}
	return name[:i]
}

func findBench(bs []benchSummary, name string) (benchSummary, bool) {
	for _, b := range bs {
		if b.Name == name {
			return b, true
		}
	}
	return benchSummary{}, false
}

// eventLoss splits a step's lost events by where they were lost.
type eventLoss struct {
	Queue, Alloc, Socket uint64
}

func splitLoss(st results.EventStep) eventLoss {
	l := eventLoss{Queue: st.Kernel.QueueOverflows, Alloc: st.Kernel.AllocFailures}
	if kernel := l.Queue + l.Alloc; st.Exporter.Lost > kernel {
		l.Socket = st.Exporter.Lost - kernel
	}
	return l
}

// isLossless mirrors guestbench.IsLossless (the guest decides what it
// sustains; the report recomputes from the raw numbers).
func isLossless(st results.EventStep) bool {
	return st.Kernel.Generated > 0 && st.Exact && st.Exporter.Lost == 0 && st.Kernel.QueueOverflows == 0 &&
		st.Kernel.AllocFailures == 0 && st.Kernel.Suppressed == 0
}

// losslessStep is the lossless step with the highest generated rate.
func losslessStep(steps []results.EventStep) (results.EventStep, bool) {
	var best results.EventStep
	found := false
	for _, st := range steps {
		if isLossless(st) && (!found || st.Achieved() > best.Achieved()) {
			best, found = st, true
		}
	}
	return best, found
}

// slowestLossy is the step with the lowest generated rate among those that
// lost events.
func slowestLossy(steps []results.EventStep) (results.EventStep, bool) {
	var worst results.EventStep
	found := false
	for _, st := range steps {
		if !isLossless(st) && (!found || st.Achieved() < worst.Achieved()) {
			worst, found = st, true
		}
	}
	return worst, found
}

// sortedSteps returns the steps by offered rate.
func sortedSteps(steps []results.EventStep) []results.EventStep {
	s := slices.Clone(steps)
	slices.SortStableFunc(s, func(a, b results.EventStep) int {
		switch {
		case a.Offered < b.Offered:
			return -1
		case a.Offered > b.Offered:
			return 1
		}
		return 0
	})
	return s
}
