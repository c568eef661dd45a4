// Command kfwbench measures kfw against the alternatives and writes
// BENCHMARKS.md (see package bench and BENCHMARKS.md itself).
//
//	kfwbench [flags]         on the host: everything; make bench runs this
//	kfwbench guest [flags]   the in-VM payload; the host part starts it
//
// Host flags: -quick (the BENCH_QUICK=1 smoke run: results under
// build/bench/quick), -wait-quiet DURATION (first wait up to that long for
// the host's 1-minute load average to fall below 0.5), -markdown FILE and
// -results DIR (where to write), -render RUN.JSON (write the report again
// from a run's raw results, measuring nothing).
//
// Exit status: 0 done, 1 a measurement or the lab failed, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kfwlabs/kfw_exporter/bench/internal/guestbench"
	"github.com/kfwlabs/kfw_exporter/bench/internal/harness"
)

const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "guest" {
		return runGuest(args[1:], stderr)
	}
	fs := flag.NewFlagSet("kfwbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o harness.Options
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: one short round of everything, results under build/bench/quick")
	fs.DurationVar(&o.WaitQuiet, "wait-quiet", 0, "wait up to this long for the host's 1-minute load average to fall below 0.5")
	fs.StringVar(&o.Markdown, "markdown", "", "write the report here (default: BENCHMARKS.md, or build/bench/quick/BENCHMARKS.md)")
	fs.StringVar(&o.ResultsDir, "results", "", "write the raw results here (default: bench/results, or build/bench/quick/results)")
	render := fs.String("render", "", "only write the report again from this run.json (no measurement)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kfwbench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	o.Log = stderr
	if *render != "" {
		if err := harness.Render(o, *render); err != nil {
			fmt.Fprintln(stderr, "kfwbench:", err)
			return exitFailure
		}
		return 0
	}
	if _, err := harness.Run(ctx, o); err != nil {
		fmt.Fprintln(stderr, "kfwbench:", err)
		return exitFailure
	}
	return 0
}

// runGuest is the in-VM payload: it measures and writes its results as
// JSON, partial results included when a phase failed.
func runGuest(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("kfwbench guest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quick := fs.Bool("quick", false, "the smoke run's sizes")
	out := fs.String("out", "", "write the results (JSON) to this `FILE`")
	phases := fs.String("phases", strings.Join(guestbench.AllPhases, ","), "comma list of phases to run")
	exporter := fs.String("exporter", "", "kfw_exporter binary")
	node := fs.String("node-exporter", "", "node_exporter binary")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || *exporter == "" || *node == "" {
		fmt.Fprintln(stderr, "kfwbench guest: -out, -exporter and -node-exporter are required")
		return exitUsage
	}
	p := guestbench.Full
	if *quick {
		p = guestbench.Quick
	}
	p.Phases = strings.Split(*phases, ",")
	p.Exporter, p.NodeExporter = *exporter, *node
	res, err := guestbench.Run(p)
	b, merr := json.MarshalIndent(res, "", "  ")
	if merr == nil {
		merr = os.WriteFile(*out, append(b, '\n'), 0o644)
	}
	if err = errors.Join(err, merr); err != nil {
		fmt.Fprintln(stderr, "kfwbench guest:", err)
		return exitFailure
	}
	return 0
}
