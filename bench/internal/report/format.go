package report

import (
	"fmt"
	"iter"
	"maps"
	"math"
	"strconv"
	"strings"

	"github.com/kfwlabs/kfw_exporter/bench/internal/stats"
)

func pct(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

func f0(x float64) string { return numOrNA(x, 0) }
func f1(x float64) string { return numOrNA(x, 1) }
func f2(x float64) string { return numOrNA(x, 2) }

func numOrNA(x float64, prec int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'f', prec, 64)
}

// fint formats a count or rate rounded to an integer, with thousands
// separators.
func fint(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rangeOf is "min–max" of a summary, formatted by f.
func rangeOf(s stats.Summary, f func(float64) string) string {
	if s.N == 0 {
		return "n/a"
	}
	return f(s.Min) + "–" + f(s.Max)
}

// dur formats seconds with a unit that keeps 3 significant digits.
func dur(sec float64) string {
	switch {
	case math.IsNaN(sec) || sec <= 0:
		return "n/a"
	case sec < 1e-6:
		return trimFloat(roundSig(sec*1e9, 3)) + " ns"
	case sec < 1e-3:
		return trimFloat(roundSig(sec*1e6, 3)) + " µs"
	case sec < 1:
		return trimFloat(roundSig(sec*1e3, 3)) + " ms"
	}
	return trimFloat(roundSig(sec, 3)) + " s"
}

func bytesIEC(b float64) string {
	switch {
	case math.IsNaN(b) || b < 0:
		return "n/a"
	case b < 1<<10:
		return fmt.Sprintf("%.0f B", b)
	case b < 1<<20:
		return trimFloat(roundSig(b/(1<<10), 3)) + " KiB"
	case b < 1<<30:
		return trimFloat(roundSig(b/(1<<20), 3)) + " MiB"
	}
	return trimFloat(roundSig(b/(1<<30), 3)) + " GiB"
}

// roundSig rounds x to n significant digits.
func roundSig(x float64, n int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}

// trimFloat formats x without trailing zeros.
func trimFloat(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

func loads(l [3]float64) string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

func rssList(samples []uint64) string {
	if len(samples) == 0 {
		return "none"
	}
	parts := make([]string, len(samples))
	for i, s := range samples {
		parts[i] = fmt.Sprintf("%.1f", float64(s)/(1<<20))
	}
	return strings.Join(parts, " ") + " MiB"
}

// sub is a - b, 0 if b > a.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func mapsKeys[V any](m map[string]V) iter.Seq[string] { return maps.Keys(m) }

// consumerNanos is the host's CPU per event of the consumer: decoding an
// IPv4 event in a full batch plus counting it, 0 when the benchmarks are
// missing.
func consumerNanos(bs []benchSummary) float64 {
	dec, ok1 := findBench(bs, "BenchmarkDecodeBatch/ipv4")
	cons, ok2 := findBench(bs, "BenchmarkConsumerEvent")
	if !ok1 || !ok2 {
		return 0
	}
	return dec.Metrics["ns/event"] + cons.Metrics["ns/op"]
}

func maxU64(xs []uint64) uint64 {
	var m uint64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// mapValues lists each result's per-round rates.
func mapValues(rs []configResult) [][]float64 {
	out := make([][]float64, len(rs))
	for i, r := range rs {
		for _, v := range r.byRnd {
			out[i] = append(out[i], v)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
