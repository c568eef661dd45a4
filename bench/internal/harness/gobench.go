package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// goBenchPackages are the packages whose benchmarks kfwbench runs: the
// parsers (abi), the event decoder (netlinkclient), the collectors and
// consumer (collector), and this module's scrape and parser benchmarks.
var goBenchPackages = []string{"./abi", "./netlinkclient", "./collector", "./bench"}

// goBenchArgs is the go test command line of the micro-benchmarks.
func goBenchArgs(quick bool) []string {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem"}
	if quick {
		args = append(args, "-count", "1", "-benchtime", "100ms")
	} else {
		args = append(args, "-count", "6", "-benchtime", "500ms")
	}
	return append(args, goBenchPackages...)
}

// runGoBench runs the micro-benchmarks in repo, copying their output to
// raw, and parses it.
func runGoBench(ctx context.Context, goCmd, repo string, quick bool, raw io.Writer) ([]results.Benchmark, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, goCmd, goBenchArgs(quick)...)
	cmd.Dir = repo
	cmd.Stdout = io.MultiWriter(&out, raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s: %w\n%s%s", strings.Join(cmd.Args[1:], " "), err, out.String(), stderr.String())
	}
	return parseGoBench(&out)
}

// parseGoBench reads the benchmark lines of go test -bench output
// ("BenchmarkX-2  100  123 ns/op  45 B/op ..."), noting each one's package
// from the "pkg:" line before it.
func parseGoBench(r io.Reader) ([]results.Benchmark, error) {
	var bs []results.Benchmark
	pkg := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a benchmark's own log line
		}
		b := results.Benchmark{Pkg: pkg, Name: f[0], N: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", line, err)
			}
			b.Metrics[f[i+1]] = v
		}
		bs = append(bs, b)
	}
	return bs, sc.Err()
}
