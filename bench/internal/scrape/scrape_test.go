package scrape

import (
	"os"
	"testing"
)

func TestCountSamples(t *testing.T) {
	body := []byte("# HELP a A.\n# TYPE a counter\na 1\nb{x=\"1\"} 2\nb{x=\"2\"} 3\n\n")
	if n := countSamples(body); n != 3 {
		t.Errorf("%d samples, want 3", n)
	}
}

func TestProcessCPUNanos(t *testing.T) {
	n, err := ProcessCPUNanos(os.Getpid())
	if err != nil {
		t.Skipf("no schedstat here: %v", err)
	}
	if n == 0 {
		t.Error("this process has used no CPU")
	}
}
