package stats

import "testing"

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{5, 1, 4, 2, 3})
	if s.N != 5 || s.Median != 3 || s.Min != 1 || s.Max != 5 || s.Q1 != 2 || s.Q3 != 4 {
		t.Errorf("got %+v", s)
	}
	if s.Values[0] != 5 {
		t.Errorf("values reordered: %v", s.Values)
	}
	if e := Summarize([]float64{1, 2}); e.Median != 1.5 || e.Q1 != 1.25 || e.Q3 != 1.75 {
		t.Errorf("even sample: %+v", e)
	}
	if z := Summarize(nil); z.N != 0 {
		t.Errorf("empty: %+v", z)
	}
}

func TestRatios(t *testing.T) {
	r := Ratios([]float64{50, 90, 30}, []float64{100, 100, 0})
	if r.N != 2 || r.Min != 0.5 || r.Max != 0.9 || r.Median != 0.7 {
		t.Errorf("got %+v", r)
	}
}
