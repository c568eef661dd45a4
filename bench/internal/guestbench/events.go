package guestbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/bench/internal/scrape"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// exporterPort is where kfw_exporter listens in the VM.
const exporterPort = 10170

// drain is how long a step waits after its flood for the kernel's worker,
// its sync batches (event_sync_ms, 200 ms by default) and the consumer to
// finish.
const drain = time.Second

// dropRule drops the event floods at the router's forward hook, with no
// rate limit of its own (the module's global ceiling is off too).
const dropRule = "id=1 action=drop proto=udp dport=9001 hooks=forward"

// events runs the event pipeline phase: the cost of event delivery on the
// packet path, then for each placement of p.EventSeries stepped floods
// consumed by kfw_exporter (the first placement also sustains its
// lossless rate) and the same steps observed by NET_DM.
func (e *env) events(p Params) (*results.Events, error) {
	if err := guest.LoadModule("event_rate_limit=0"); err != nil {
		return nil, err
	}
	defer func() {
		if err := guest.UnloadModule(); err != nil {
			e.logf("unloading kfw: %v", err)
		}
	}()
	rule, err := abi.ParseRule(strings.Fields(dropRule))
	if err != nil {
		return nil, err
	}
	if err := replaceRules([]abi.Rule{rule}); err != nil {
		return nil, err
	}
	if err := guest.Modprobe("drop_monitor"); err != nil {
		return nil, err
	}
	res := &results.Events{
		StepSeconds:         p.EventStep.Seconds(),
		ReadBuffer:          p.ReadBuffer,
		DropMonitorQueueLen: p.DropMonitorQLen,
	}
	if res.Cost, err = e.eventCost(p); err != nil {
		return res, fmt.Errorf("cost: %w", err)
	}
	for i, spec := range p.EventSeries {
		series := results.EventSeries{Name: spec.Name, Producers: spec.Producers, ConsumerCPU: spec.consumerCPU()}
		e.logf("  %s: %d producer(s), consumer on CPU %d (-1: any)", spec.Name, spec.Producers, series.ConsumerCPU)
		sustain := p.Sustain
		if i > 0 {
			sustain = 0
		}
		err := e.exporterSteps(p, spec, sustain, &series)
		if err == nil {
			err = e.dropMonitorSteps(p, spec, &series)
		}
		res.Series = append(res.Series, series)
		if err != nil {
			return res, fmt.Errorf("%s: %w", spec.Name, err)
		}
	}
	return res, nil
}

// consumerCPU is the vCPU the series' consumers are bound to, -1 for
// none.
func (s SeriesSpec) consumerCPU() int {
	if s.Consumer == ConsumerLastCPU {
		return runtime.NumCPU() - 1
	}
	return -1
}

// startExporter starts kfw_exporter, bound to cpu unless it is -1
// (taskset: every thread inherits the affinity).
func startExporter(p Params, cpu int) (*scrape.Server, error) {
	argv := []string{p.Exporter, fmt.Sprintf("--netlink.read-buffer=%dB", p.ReadBuffer), "--log.level=warn"}
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	return scrape.Start("kfw_exporter", exporterPort, argv...)
}

// onCPU runs fn on a thread bound to cpu (-1: anywhere); the thread dies
// with the goroutine.
func onCPU(cpu int, fn func() error) error {
	if cpu < 0 {
		return fn()
	}
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("bind to CPU %d: %w", cpu, err)
	}
	return fn()
}

// waitSubscribed waits until kfw_exporter reports its event subscription.
func waitSubscribed(ctx context.Context, s *scrape.Server) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := s.Metrics(ctx)
		if err != nil {
			return err
		}
		if m["kfw_netlink_subscribed"] == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("kfw_exporter not subscribed to the events group after 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// costSpec places the cost floods: one producer, the consumer pinned.
var costSpec = SeriesSpec{Producers: 1, Consumer: ConsumerLastCPU}

// eventCost floods the drop rule at the sender's top rate with no event
// listener, with kfw_exporter subscribed (an event per packet, delivered),
// and with NET_DM in packet mode (an alert per packet, delivered), in
// rotating order.
func (e *env) eventCost(p Params) ([]results.Trial, error) {
	configs := []string{"quiet", "kfw-events", "drop-monitor"}
	var trials []results.Trial
	for round := range p.CostRounds {
		for i := range configs {
			cfg := configs[(i+round)%len(configs)]
			t, err := e.costTrial(cfg, p)
			if err != nil {
				return trials, fmt.Errorf("%s: %w", cfg, err)
			}
			t.Round, t.Config = round+1, cfg
			trials = append(trials, t)
			e.logf("  drop flood, %-12s %8.0f pps", cfg, t.PPS())
		}
	}
	return trials, nil
}

func (e *env) costTrial(cfg string, p Params) (results.Trial, error) {
	switch cfg {
	case "kfw-events":
		s, err := startExporter(p, costSpec.consumerCPU())
		if err != nil {
			return results.Trial{}, err
		}
		defer s.Stop()
		if err := waitSubscribed(context.Background(), s); err != nil {
			return results.Trial{}, err
		}
	case "drop-monitor":
		stop, err := startDropMonitor(p, costSpec.consumerCPU())
		if err != nil {
			return results.Trial{}, err
		}
		defer stop()
	}
	before, err := dropRulePackets()
	if err != nil {
		return results.Trial{}, err
	}
	snd, err := e.openSenders(results.PathDrop, costSpec.Producers)
	if err != nil {
		return results.Trial{}, err
	}
	defer snd.close()
	c, err := snd.run(0, p.Trial)
	if err != nil {
		return results.Trial{}, err
	}
	after, err := dropRulePackets()
	if err != nil {
		return results.Trial{}, err
	}
	return results.Trial{Path: results.PathDrop, Sent: c.Sent, Counted: after - before, Seconds: c.Time.Seconds()}, nil
}

// dropRulePackets is the drop rule's packet counter.
func dropRulePackets() (uint64, error) {
	rc, err := kfwCounters()
	if err != nil {
		return 0, err
	}
	return rc["any"].last, nil
}

func procStats() (abi.ModuleStats, error) {
	fh, err := os.Open(filepath.Join("/proc", abi.ProcDir, abi.ProcStats))
	if err != nil {
		return abi.ModuleStats{}, err
	}
	defer fh.Close()
	return abi.ParseProcStats(fh, fh.Name())
}

func kernelDelta(a, b abi.ModuleStats) results.KernelDelta {
	return results.KernelDelta{
		Generated:      b.EventsGenerated - a.EventsGenerated,
		Suppressed:     b.EventsSuppressed - a.EventsSuppressed,
		QueueOverflows: b.EventsQueueOverflows - a.EventsQueueOverflows,
		MessagesSent:   b.EventsMessagesSent - a.EventsMessagesSent,
		NoListener:     b.EventsNoListener - a.EventsNoListener,
		AllocFailures:  b.EventsAllocFailures - a.EventsAllocFailures,
		Nobufs:         b.EventsNobufs - a.EventsNobufs,
	}
}

// exporterCounters are the exporter's event counters at one scrape.
type exporterCounters struct{ received, lost, overruns, decodeErrors uint64 }

func readExporterCounters(ctx context.Context, s *scrape.Server) (exporterCounters, error) {
	m, err := s.Metrics(ctx)
	if err != nil {
		return exporterCounters{}, err
	}
	return exporterCounters{
		received:     uint64(m["kfw_events_received_total"]),
		lost:         uint64(m["kfw_events_lost_total"]),
		overruns:     uint64(m["kfw_netlink_overruns_total"]),
		decodeErrors: uint64(m["kfw_netlink_decode_errors_total"]),
	}, nil
}

// exporterSteps floods at each rate of p.EventRates with kfw_exporter
// consuming, until the senders top out or two steps in a row lose events;
// then it narrows the lossless rate with p.Refine steps at the geometric
// mean of the highest lossless and the lowest lossy rate above it, and
// floods at the highest lossless rate for sustain (if > 0), sampling the
// exporter's memory.
func (e *env) exporterSteps(p Params, spec SeriesSpec, sustain time.Duration, res *results.EventSeries) error {
	s, err := startExporter(p, spec.consumerCPU())
	if err != nil {
		return err
	}
	defer s.Stop()
	ctx := context.Background()
	if err := waitSubscribed(ctx, s); err != nil {
		return err
	}
	step := func(rate float64, d time.Duration, samples *[]uint64) (results.EventStep, error) {
		st, err := e.exporterStep(ctx, s, rate, d, spec.Producers, samples, 0)
		if err != nil {
			return st, fmt.Errorf("%.0f events/s: %w", rate, err)
		}
		e.logf("  events: offered %7.0f/s generated %7.0f/s received %8d lost %7d (queue %d, nobufs %d), exact %v, %5.0f ns/event exporter CPU, RSS %d KiB",
			rate, st.Achieved(), st.Exporter.Received, st.Exporter.Lost, st.Kernel.QueueOverflows, st.Kernel.Nobufs,
			st.Exact, float64(st.Exporter.CPUNanos)/math.Max(1, float64(st.Exporter.Received)), st.RSSBytes>>10)
		return st, nil
	}

	lossyRun := 0
	for _, rate := range p.EventRates {
		st, err := step(rate, p.EventStep, nil)
		if err != nil {
			return err
		}
		res.Steps = append(res.Steps, st)
		if IsLossless(st) {
			lossyRun = 0
		} else {
			lossyRun++
		}
		if st.Achieved() < 0.8*rate {
			e.logf("  events: the senders top out at %.0f events/s", st.Achieved())
			break
		}
		if lossyRun == 2 {
			break
		}
	}
	for range p.Refine {
		best, worst := LosslessBounds(res.Steps)
		if best == 0 || worst == 0 || worst/best < 1.1 {
			break
		}
		st, err := step(math.Sqrt(best*worst), p.EventStep, nil)
		if err != nil {
			return err
		}
		res.Steps = append(res.Steps, st)
	}

	best, _ := LosslessBounds(res.Steps)
	if best == 0 || sustain <= 0 {
		return nil
	}
	// Near the senders' ceiling a step may be lossless at less than it
	// offered: sustain what it achieved, not more.
	for _, st := range res.Steps {
		if st.Offered == best && IsLossless(st) {
			best = min(best, st.Achieved())
		}
	}
	rss, _, err := s.Memory()
	if err != nil {
		return err
	}
	sus := &results.Sustained{RSSBefore: rss}
	if sus.Step, err = step(best, sustain, &sus.RSSSamples); err != nil {
		return err
	}
	res.Sustained = sus
	if p.Stall <= 0 {
		return nil
	}
	// Above the consumer's capacity: the same rate with the consumer
	// stopped for a while, which no socket buffer absorbs.
	d := p.Stall + 2*time.Second
	ov, err := e.exporterStep(ctx, s, best, d, spec.Producers, nil, p.Stall)
	if err != nil {
		return fmt.Errorf("overload: %w", err)
	}
	e.logf("  events, exporter stopped for %s: generated %d received %d lost %d (queue %d, nobufs %d), exact %v",
		p.Stall, ov.Kernel.Generated, ov.Exporter.Received, ov.Exporter.Lost, ov.Kernel.QueueOverflows, ov.Kernel.Nobufs, ov.Exact)
	res.Overload = &results.Overload{Step: ov, StallSeconds: p.Stall.Seconds()}
	return nil
}

// IsLossless tells whether a step delivered every event it generated:
// nothing lost, suppressed or refused, and the exporter's accounting
// exact.
func IsLossless(st results.EventStep) bool {
	return st.Kernel.Generated > 0 && st.Exact && st.Exporter.Lost == 0 && st.Kernel.QueueOverflows == 0 &&
		st.Kernel.AllocFailures == 0 && st.Kernel.Suppressed == 0
}

// LosslessBounds returns the highest offered rate of a lossless step and
// the lowest offered rate above it of a step that lost events (0 if
// none).
func LosslessBounds(steps []results.EventStep) (best, worst float64) {
	for _, st := range steps {
		if IsLossless(st) && st.Offered > best {
			best = st.Offered
		}
	}
	for _, st := range steps {
		if !IsLossless(st) && st.Offered > best && (worst == 0 || st.Offered < worst) {
			worst = st.Offered
		}
	}
	return best, worst
}

// exporterStep floods the drop rule at rate for d, lets the pipeline
// drain, and records what the kernel and the exporter counted. With
// samples, it appends the exporter's VmRSS every half second of the flood.
// With stall > 0, it stops the exporter (SIGSTOP) for that long from half
// a second into the flood: a consumer that falls behind.
func (e *env) exporterStep(ctx context.Context, s *scrape.Server, rate float64, d time.Duration, senders int,
	samples *[]uint64, stall time.Duration) (results.EventStep, error) {
	st := results.EventStep{Offered: rate}
	k0, err := procStats()
	if err != nil {
		return st, err
	}
	drops0, err := dropRulePackets()
	if err != nil {
		return st, err
	}
	x0, err := readExporterCounters(ctx, s)
	if err != nil {
		return st, err
	}
	// CPU is read around the flood and the drain only, not the scrapes.
	cpu0, err := s.CPUNanos()
	if err != nil {
		return st, err
	}
	snd, err := e.openSenders(results.PathDrop, senders)
	if err != nil {
		return st, err
	}
	defer snd.close()

	stopSampling := func() {}
	if samples != nil {
		quit, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-quit:
					return
				case <-t.C:
					if rss, _, err := s.Memory(); err == nil {
						*samples = append(*samples, rss)
					}
				}
			}
		}()
		stopSampling = func() { close(quit); <-done }
	}
	stalled := make(chan error, 1)
	if stall > 0 {
		go func() {
			time.Sleep(500 * time.Millisecond)
			err := s.Signal(syscall.SIGSTOP)
			time.Sleep(stall)
			stalled <- errors.Join(err, s.Signal(syscall.SIGCONT))
		}()
	} else {
		stalled <- nil
	}
	c, err := snd.run(rate, d)
	stopSampling()
	if serr := <-stalled; serr != nil {
		return st, fmt.Errorf("stalling the exporter: %w", serr)
	}
	if err != nil {
		return st, err
	}
	st.Sent, st.Seconds = c.Sent, c.Time.Seconds()
	time.Sleep(drain)
	cpu1, err := s.CPUNanos()
	if err != nil {
		return st, err
	}
	st.Exporter.CPUNanos = cpu1 - cpu0

	// The exporter has seen everything once received + lost reaches
	// what the kernel generated; give a slow consumer a few more seconds.
	var k1 abi.ModuleStats
	var x1 exporterCounters
	for wait := 0; ; wait++ {
		if k1, err = procStats(); err != nil {
			return st, err
		}
		if x1, err = readExporterCounters(ctx, s); err != nil {
			return st, err
		}
		st.Kernel = kernelDelta(k0, k1)
		seen := (x1.received - x0.received) + (x1.lost - x0.lost)
		if st.Exact = seen == st.Kernel.Generated; st.Exact || wait == 20 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	st.Exporter.Received = x1.received - x0.received
	st.Exporter.Lost = x1.lost - x0.lost
	st.Exporter.Overruns = x1.overruns - x0.overruns
	st.Exporter.DecodeErrors = x1.decodeErrors - x0.decodeErrors
	drops1, err := dropRulePackets()
	if err != nil {
		return st, err
	}
	st.Drops = drops1 - drops0
	st.RSSBytes, st.HWMBytes, err = s.Memory()
	return st, err
}
