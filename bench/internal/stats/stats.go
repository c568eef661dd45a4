// Package stats summarises repeated measurements: median, quartiles and
// range, the figures BENCHMARKS.md reports for every configuration.
package stats

import (
	"math"
	"slices"
)

// Summary describes a sample of repeated measurements.
type Summary struct {
	N        int
	Median   float64
	Q1, Q3   float64 // quartiles (linear interpolation between order statistics)
	Min, Max float64
	Values   []float64 `json:",omitempty"` // the sample, in measurement order
}

// Summarize returns the summary of xs; the zero Summary for none.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	sorted := slices.Sorted(slices.Values(xs))
	return Summary{
		N:      len(xs),
		Median: Quantile(sorted, 0.5),
		Q1:     Quantile(sorted, 0.25),
		Q3:     Quantile(sorted, 0.75),
		Min:    sorted[0],
		Max:    sorted[len(sorted)-1],
		Values: slices.Clone(xs),
	}
}

// Quantile is the q-quantile of sorted (ascending, not empty), interpolated
// linearly between the closest ranks (type 7, as R and NumPy default to).
func Quantile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// Ratios divides each value of num by the value of den measured in the same
// round (same index), so that a slow round slows both; the result
// summarises the per-round ratios. Rounds missing in either are skipped.
func Ratios(num, den []float64) Summary {
	var r []float64
	for i := range min(len(num), len(den)) {
		if den[i] > 0 {
			r = append(r, num[i]/den[i])
		}
	}
	return Summarize(r)
}
