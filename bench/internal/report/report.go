// Package report writes BENCHMARKS.md from a kfwbench run: the summary,
// the machine and method, the four measurements with their raw figures,
// and what was not measured. It computes every summary from the raw
// records in results.Run, so the document and bench/results agree.
package report

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/bench/internal/stats"
)

// doc accumulates the document.
type doc struct {
	strings.Builder
	run   *results.Run
	bench []benchSummary
	// Per path, the packet path results (nil without a packet phase).
	forward, input, inject []configResult
}

func (d *doc) p(format string, args ...any) { fmt.Fprintf(d, format+"\n", args...) }

// Markdown renders the run. resultsDir and repo locate the raw files for
// the links (relative to the repository root).
func Markdown(run *results.Run, resultsDir, repo string) (string, error) {
	if run.Guest == nil {
		return "", fmt.Errorf("report: no results from the VM")
	}
	rel, err := filepath.Rel(repo, resultsDir)
	if err != nil || strings.HasPrefix(rel, "..") {
		rel = resultsDir
	}
	d := &doc{run: run, bench: summarizeBench(run.GoBench)}
	if pp := run.Guest.Packet; pp != nil {
		inj := newInjection(pp.Trials)
		d.forward = pathResults(pp.Trials, results.PathForward, "none", inj)
		d.input = pathResults(pp.Trials, results.PathInput, "none", inj)
		d.inject = pathResults(pp.Trials, results.PathInject, "none", nil)
	}
	d.header()
	d.summary()
	d.machine()
	d.packetPath()
	d.events()
	d.exporter()
	d.microBenchmarks(rel)
	d.notMeasured()
	d.rawFiles(rel)
	return d.String(), nil
}

func (d *doc) header() {
	r := d.run
	d.p("# kfw benchmarks")
	d.p("")
	d.p("Written by `%s` (`bench/cmd/kfwbench`) on %s in %s; do not edit: run it again.",
		r.Commands[len(r.Commands)-1], r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second))
	if r.Quick {
		d.p("")
		d.p("**This is a smoke run (`BENCH_QUICK=1`): one short round of each measurement, to check that the harness")
		d.p("works. Do not quote its numbers.**")
	}
	d.p("")
	d.p("The lab VM runs under qemu TCG (software emulation, no KVM): every absolute time and rate below is that of")
	d.p("an emulated CPU, tens of times slower than the host, and the host is shared. What carries over to real")
	d.p("hardware are the **ratios against the baseline measured in the same run** (no filter, no listener,")
	d.p("node_exporter), which is how the results are given. Rates are medians of interleaved rounds, with the")
	d.p("spread (min–max over rounds).")
	d.p("")
}

func (d *doc) summary() {
	d.p("## Summary")
	d.p("")
	for _, hook := range []struct {
		name string
		rs   []configResult
	}{{"forward", d.forward}, {"input", d.input}} {
		if len(hook.rs) == 0 {
			continue
		}
		for _, n := range []int{100, 1000} {
			kfw, ok1 := find(hook.rs, fmt.Sprintf("kfw-%d", n))
			nft, ok2 := find(hook.rs, fmt.Sprintf("nft-%d", n))
			ipt, ok3 := find(hook.rs, fmt.Sprintf("iptables-%d", n))
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			vs := pairRatio(hook.rs, kfw.Config, nft.Config)
			d.p("- **%s hook, %d rules** (matching rule last): kfw passes %s of the no-filter rate, nftables %s,",
				hook.name, n, pct(kfw.Ratio.Median), pct(nft.Ratio.Median))
			d.p("  iptables-nft %s; **kfw/nftables = %s** (per-round ratio, median; range %s).",
				pct(ipt.Ratio.Median), f2(vs.Median), rangeOf(vs, f2))
		}
	}
	if ev := d.run.Guest.Events; ev != nil {
		for _, se := range ev.Series {
			d.p("%s", seriesSummary(se, ev.StepSeconds))
		}
		if c := costResults(ev.Cost); len(c) > 0 {
			kfw, ok1 := find(c, "kfw-events")
			dm, ok2 := find(c, "drop-monitor")
			if ok1 && ok2 {
				d.p("- Drop flood at the sender's top rate: with kfw_exporter consuming events the path keeps %s of its rate",
					pct(kfw.Ratio.Median))
				d.p("  without a listener, with drop_monitor in packet mode %s.", pct(dm.Ratio.Median))
			}
		}
	}
	for _, n := range []int{10, 1000, 4096} {
		if b, ok := findBench(d.bench, fmt.Sprintf("BenchmarkScrape/rules=%d", n)); ok {
			d.p("- Scrape with %d rules (host, `go test -bench`): %s, %s allocations, %s allocated.", n,
				dur(b.Metrics["ns/op"]*1e-9), fint(b.Metrics["allocs/op"]), bytesIEC(b.Metrics["B/op"]))
		}
	}
	if hs := d.run.HostScrape; hs != nil {
		d.p("- kfw_exporter (%d rules) vs node_exporter, default collectors, CPU per scrape: %s on the host; %s",
			hs.Rules, cpuRatioText(*hs), d.vmScrapeSummary())
	}
	if c := consumerNanos(d.bench); c > 0 {
		d.p("- Consumer CPU per event on the host: %s ns (decode + count).%s", f0(c), d.vmConsumerText())
	}
	d.p("")
}

// seriesSummary is the summary line of one event series.
func seriesSummary(se results.EventSeries, stepSeconds float64) string {
	line := fmt.Sprintf("- **Events, %s**: ", placement(se))
	best, ok := losslessStep(se.Steps)
	if !ok {
		line += "no step was lossless."
	} else {
		line += fmt.Sprintf("**lossless up to %s events/s** generated, every one received by kfw_exporter (exact accounting, %s s steps).",
			fint(best.Achieved()), trimFloat(stepSeconds))
	}
	if sus := se.Sustained; sus != nil {
		st := sus.Step
		if isLossless(st) {
			line += fmt.Sprintf(" Sustained for %s s at %s/s: lossless.", f0(st.Seconds), fint(st.Achieved()))
		} else {
			l := splitLoss(st)
			line += fmt.Sprintf(" Sustained for %s s at %s/s: %s of %s lost (kernel queue %s, socket %s).", f0(st.Seconds),
				fint(st.Achieved()), fint(float64(st.Exporter.Lost)), fint(float64(st.Kernel.Generated)), fint(float64(l.Queue)),
				fint(float64(l.Socket)))
		}
	}
	if worst, lossy := slowestLossy(se.Steps); lossy {
		l := splitLoss(worst)
		line += fmt.Sprintf(" The slowest step that lost events ran at %s/s: %s of %s lost (%s): kernel queue %s, socket (ENOBUFS) %s, suppressed %s.",
			fint(worst.Achieved()), fint(float64(worst.Exporter.Lost)), fint(float64(worst.Kernel.Generated)),
			pct(float64(worst.Exporter.Lost)/float64(worst.Kernel.Generated)),
			fint(float64(l.Queue)), fint(float64(l.Socket)), fint(float64(worst.Kernel.Suppressed)))
	} else if ok {
		line += " No step lost events: the producers topped out first."
	}
	if ov := se.Overload; ov != nil {
		st := ov.Step
		l := splitLoss(st)
		line += fmt.Sprintf(" With kfw_exporter stopped for %s s during a flood at %s/s: %s of %s events lost (kernel queue %s, socket %s), accounting exact: %v.",
			trimFloat(ov.StallSeconds), fint(st.Achieved()), fint(float64(st.Exporter.Lost)), fint(float64(st.Kernel.Generated)),
			fint(float64(l.Queue)), fint(float64(l.Socket)), st.Exact)
	}
	if dm := dropMonitorLossless(se.DropMonitor); dm >= 0 {
		line += fmt.Sprintf(" drop_monitor (packet mode), same floods: every alert delivered up to %s drops/s", fint(dm))
		if w, ok := dropMonitorFirstLossy(se.DropMonitor, dm); ok {
			line += fmt.Sprintf(", %s of them lost at %s drops/s", pct(float64(sub(w.Drops, w.Matching))/float64(w.Drops)),
				fint(float64(w.Drops)/w.Seconds))
		}
		line += "."
	} else if len(se.DropMonitor) > 0 {
		w := se.DropMonitor[0]
		line += fmt.Sprintf(" drop_monitor (packet mode), same floods: lost alerts at every rate, %s already at %s drops/s.",
			pct(float64(sub(w.Drops, w.Matching))/float64(w.Drops)), fint(float64(w.Drops)/w.Seconds))
	}
	return line
}

// placement describes a series' producers and consumer.
func placement(se results.EventSeries) string {
	producers := fmt.Sprintf("%d producer vCPU", se.Producers)
	if se.Producers > 1 {
		producers += "s"
	}
	switch {
	case se.ConsumerCPU < 0:
		return producers + ", consumer scheduled among them"
	case se.ConsumerCPU < se.Producers:
		return producers + fmt.Sprintf(", consumer bound to vCPU %d with a producer", se.ConsumerCPU)
	}
	return producers + ", consumer on its own vCPU"
}

func (d *doc) vmScrapeSummary() string {
	ex := d.run.Guest.Exporter
	if ex == nil || len(ex.Scrapes) == 0 {
		return "not measured in the VM."
	}
	var parts []string
	for _, s := range ex.Scrapes {
		parts = append(parts, fmt.Sprintf("%s with %d rules", cpuRatioText(s), s.Rules))
	}
	return "in the VM with the real module: " + strings.Join(parts, ", ") + "."
}

func (d *doc) vmConsumerText() string {
	ev := d.run.Guest.Events
	if ev == nil || len(ev.Series) == 0 {
		return ""
	}
	se := ev.Series[0]
	best, ok := losslessStep(se.Steps)
	if !ok || best.Exporter.Received == 0 {
		return ""
	}
	s := fmt.Sprintf(" In the VM (TCG), kfw_exporter used %s µs of CPU per event at the lossless rate",
		f1(float64(best.Exporter.CPUNanos)/float64(best.Exporter.Received)/1e3))
	if sus := se.Sustained; sus != nil && len(sus.RSSSamples) > 0 {
		s += fmt.Sprintf(", and its resident memory stayed at %s (peak %s) during %s s at that rate",
			bytesIEC(float64(maxU64(sus.RSSSamples))), bytesIEC(float64(sus.Step.HWMBytes)), f1(sus.Step.Seconds))
	}
	return s + "."
}

// cpuRatioText is "N.NN× node_exporter's CPU (a vs b ms)".
func cpuRatioText(s results.ScrapeSet) string {
	k := stats.Summarize(s.Kfw.CPUNanos).Median
	n := stats.Summarize(s.Node.CPUNanos).Median
	if n <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s× node_exporter's (%s vs %s)", f2(k/n), dur(k*1e-9), dur(n*1e-9))
}

func (d *doc) machine() {
	m := d.run.Machine
	g := d.run.Guest
	d.p("## Machine and method")
	d.p("")
	d.p("| | |")
	d.p("|---|---|")
	d.p("| host CPU | %d × %s (`nproc` %d) |", m.CPUs, m.CPUModel, m.CPUs)
	d.p("| host memory | %s |", bytesIEC(float64(m.MemoryBytes)))
	d.p("| host OS, kernel | %s, %s |", m.OS, m.HostKernel)
	d.p("| Go, qemu | %s, %s |", m.GoVersion, m.Qemu)
	d.p("| lab VM | `%s` (%s), %d vCPUs, %d MiB, TCG |", g.Release, g.Kernel, m.VMCPUs, m.VMMemoryMB)
	for _, t := range slices.Sorted(mapsKeys(m.Tools)) {
		d.p("| %s | %s |", t, m.Tools[t])
	}
	quiet := "not waited for"
	if m.QuietWaited > 0 || m.QuietReached {
		quiet = fmt.Sprintf("waited %s for a 1-minute load average below %.2f: %s", m.QuietWaited.Round(time.Second),
			m.QuietThreshold, map[bool]string{true: "reached", false: "**not reached: the host was busy**"}[m.QuietReached])
	}
	d.p("| host load average (1, 5, 15 min) | start %s, end %s; %s |", loads(m.LoadStart), loads(m.LoadEnd), quiet)
	d.p("| VM run | %s (boot, all in-VM phases, log collection) |", d.run.GuestRun.Round(time.Second))
	d.p("")
	d.p("The load average at the end includes this run's own VM, whose two vCPU threads add about %d.", m.VMCPUs)
	if m.LoadStart[0] >= 1 || m.LoadEnd[0] >= float64(m.VMCPUs)+1 {
		d.p("The host was also busy with other work (other lab VMs share its %d cores): expect a wider spread.", m.CPUs)
	}
	d.p("")
	d.p("To reproduce, from the repository root:")
	d.p("")
	d.p("```sh")
	for _, c := range d.run.Commands {
		d.p("%s", c)
	}
	d.p("```")
	d.p("")
	d.p("`make bench` runs `bench/cmd/kfwbench`: the Go micro-benchmarks on the host, a native scrape comparison on the")
	d.p("host, then one lab VM (`lab.Start`) running `kfwbench guest`, which builds the lab topology (client `kfwc` —")
	d.p("router `kfwr` — server `kfws`, veth pairs) and measures sections 1–3 in that one boot. `BENCH_QUICK=1` is a")
	d.p("smoke run (one short round; `go test ./bench` runs it too and checks the numbers are sane).")
	for _, n := range g.Notes {
		d.p("")
		d.p("Note: %s.", n)
	}
	d.p("")
}

func (d *doc) packetPath() {
	pp := d.run.Guest.Packet
	d.p("## 1. Packet path")
	d.p("")
	if pp == nil {
		d.p("Not measured in this run.")
		d.p("")
		return
	}
	d.p("**Traffic.** One sender thread on vCPU 0 writes %d-byte frames (Ethernet + IPv4 + UDP, 18-byte payload) to",
		pp.FrameBytes)
	d.p("the client's veth with `sendmmsg` on an `AF_PACKET` socket (qdisc bypassed, 64 frames per call), as fast as it")
	d.p("can. The client's own IP stack is not involved (no routing, no output hook), so nearly all the CPU a packet")
	d.p("costs is spent in the router: the veth delivers it synchronously in the sender's softirq, on the same vCPU.")
	d.p("So the rate is that of the whole path, the sender included: its share is given by the injection path.")
	d.p("")
	d.p("**Paths and counting.** *forward*: to the server's address through the router's FORWARD hook, counted as")
	d.p("frames received by the server's interface (the router's neighbour entry for the server is a MAC the server")
	d.p("does not own, so the server discards them before its IP layer: no hook, socket or kfw walk there). *input*:")
	d.p("to the router's own address through its LOCAL_IN hook, counted as datagrams that reached the router's UDP")
	d.p("socket (`InDatagrams + RcvbufErrors`; the socket is never read). *inject*: frames not addressed to the")
	d.p("router's MAC, discarded by its IP layer on receipt, below every hook: the sender and the link alone, the")
	d.p("same in every configuration. All are receiver-side counts (the links carry no IPv6, so nothing else):")
	d.p("what got through, not what was sent.")
	d.p("")
	d.p("**Rules.** With N rules, rules 1..N-1 are `proto udp, dport 10001..` (evaluated, never matching: same")
	d.p("protocol, other port) and rule N accepts the flood (`dport 9000`), so every packet walks the whole list and is")
	d.p("accepted. kfw: one table (`hooks=input,forward`), loaded in one netlink transaction. nftables: `table ip`")
	d.p("with an `input` and a `forward` base chain at priority `filter`, each holding the N rules as `udp dport P")
	d.p("counter accept` (`nft -f`). iptables-nft: the same rules in `filter` INPUT and FORWARD")
	d.p("(`iptables-nft-restore`, which iptables-nft translates to native nftables expressions, with counters). All")
	d.p("three count the matching rule's packets, as kfw always does. After each configuration the counters are")
	d.p("checked: the last rule counted at least what the receivers did and the other rules nothing. No connection")
	d.p("tracking is loaded. kfw's table is global: its hooks run in every namespace, but the client sends below IP and")
	d.p("the server discards before IP, so only the router's hook walks the table, as on a real router.")
	d.p("")
	d.p("**Rounds and adjustment.** %d %s; in each, every configuration is installed once (each round starts",
		pp.Rounds, plural(pp.Rounds, "round", "rounds"))
	d.p("one configuration later) and its three paths take turns in %d bursts each, %s s per path in all (which path",
		pp.Bursts, f1(pp.TrialSeconds))
	d.p("leads rotates by round). The host is shared, and the CPU it gives the VM changes from second to second:")
	d.p("the injection bursts measure that, so every rate is also **adjusted**: the median over the slot's turns of")
	d.p("the path's rate over the injection rate of the same turn, times the run's median injection rate. Ratios are")
	d.p("of adjusted rates, taken per round (each configuration against *no filter* of the same round), then the")
	d.p("median over rounds; the raw rates (counted / time, all turns) are in the tables too.")
	d.p("")
	for _, path := range []struct {
		title string
		rs    []configResult
	}{{"Forward (router FORWARD hook)", d.forward}, {"Local input (router LOCAL_IN hook)", d.input}} {
		d.p("### %s", path.title)
		d.p("")
		d.packetTable(path.rs)
		d.p("")
		d.vsTable(path.rs, pp.RuleCounts)
		d.p("")
	}
	if c, ok := find(d.inject, "none"); ok {
		all := stats.Summarize(slices.Concat(mapValues(d.inject)...))
		fwd, _ := find(d.forward, "none")
		d.p("**Injection**: %s frames/s (median over all slots, range %s). Without a filter, forwarding runs at %s of",
			fint(all.Median), rangeOf(all, fint), pct(fwd.PPS.Median/c.PPS.Median))
		d.p("the injection rate of the same slots, so the sender and the link take about that share of each forwarded")
		d.p("packet's time; ratios of the router's own work would be correspondingly further from 1 than the ratios")
		d.p("above, which are of the whole path.")
		d.p("")
	}
	d.p("Raw pps per round (forward / input / inject):")
	d.p("")
	d.rawRounds()
	d.p("")
}

func (d *doc) packetTable(rs []configResult) {
	base, _ := find(rs, "none")
	d.p("| configuration | pps (median) | spread (min–max) | adjusted pps | vs no filter | ratio spread | added per packet (TCG) | check |")
	d.p("|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		added := "—"
		if r.Config != "none" {
			added = fmt.Sprintf("%s ns", f0(addedNanos(r.Adj.Median, base.Adj.Median)))
		}
		check := "ok"
		if len(r.Checks) > 0 {
			check = "**" + strings.Join(r.Checks, "; ") + "**"
		}
		if r.Config == "none" {
			check = "—"
		}
		d.p("| %s | %s | %s | %s | %s | %s | %s | %s |", r.Config, fint(r.PPS.Median), rangeOf(r.PPS, fint),
			fint(r.Adj.Median), f2(r.Ratio.Median), rangeOf(r.Ratio, f2), added, check)
	}
}

func (d *doc) vsTable(rs []configResult, counts []int) {
	d.p("| rules | kfw / nftables | range | kfw / iptables-nft | range | kfw cost per rule (TCG) | nftables cost per rule (TCG) |")
	d.p("|---:|---:|---:|---:|---:|---:|---:|")
	base, _ := find(rs, "none")
	perRule := func(kind string, n int) string {
		one, ok1 := find(rs, kind+"-1")
		r, ok2 := find(rs, fmt.Sprintf("%s-%d", kind, n))
		if !ok1 || !ok2 || n <= 1 {
			return "—"
		}
		a := addedNanos(r.Adj.Median, base.Adj.Median) - addedNanos(one.Adj.Median, base.Adj.Median)
		return fmt.Sprintf("%s ns", f1(a/float64(n-1)))
	}
	for _, n := range counts {
		nft := pairRatio(rs, fmt.Sprintf("kfw-%d", n), fmt.Sprintf("nft-%d", n))
		ipt := pairRatio(rs, fmt.Sprintf("kfw-%d", n), fmt.Sprintf("iptables-%d", n))
		d.p("| %d | %s | %s | %s | %s | %s | %s |", n, f2(nft.Median), rangeOf(nft, f2), f2(ipt.Median), rangeOf(ipt, f2),
			perRule("kfw", n), perRule("nft", n))
	}
	d.p("")
	d.p("kfw / nftables > 1 means kfw passes more packets per second (adjusted rates, per round). The cost per rule is")
	d.p("the slope between 1 and N rules of the time added per packet, in emulated nanoseconds: compare them with each")
	d.p("other, not with hardware.")
}

func (d *doc) rawRounds() {
	var rounds []int
	seen := map[int]bool{}
	for _, t := range d.run.Guest.Packet.Trials {
		if !seen[t.Round] {
			seen[t.Round] = true
			rounds = append(rounds, t.Round)
		}
	}
	slices.Sort(rounds)
	head := "| configuration |"
	sep := "|---|"
	for _, r := range rounds {
		head += fmt.Sprintf(" round %d |", r)
		sep += "---:|"
	}
	d.p("%s", head)
	d.p("%s", sep)
	for i, f := range d.forward {
		in := d.input[i]
		inj, _ := find(d.inject, f.Config)
		row := "| " + f.Config + " |"
		for _, r := range rounds {
			cell := fmt.Sprintf(" %s / %s", fint(f.byRnd[r]), fint(in.byRnd[r]))
			if v, ok := inj.byRnd[r]; ok {
				cell += " / " + fint(v)
			}
			row += cell + " |"
		}
		d.p("%s", row)
	}
}

func (d *doc) events() {
	ev := d.run.Guest.Events
	d.p("## 2. Event pipeline")
	d.p("")
	if ev == nil {
		d.p("Not measured in this run.")
		d.p("")
		return
	}
	d.p("**Setup.** kfw loaded with `event_rate_limit=0` (no global ceiling) and one rule without `rate`:")
	d.p("`add id=1 action=drop proto=udp dport=9001 hooks=forward`. Senders flood it through the router at a paced")
	d.p("rate for %s s per step: every packet is dropped at the FORWARD hook and generates one event, on the vCPU",
		trimFloat(ev.StepSeconds))
	d.p("that received it, where kfw's drain work then runs too. kfw_exporter consumes them with its default")
	d.p("`--netlink.read-buffer` (%s). After each step the harness waits for the pipeline to drain, then compares",
		bytesIEC(float64(ev.ReadBuffer)))
	d.p("`/proc/kfw/stats` with kfw_exporter's own counters (`kfw_events_received_total`, `kfw_events_lost_total`):")
	d.p("a step is *lossless* when nothing was lost, suppressed or refused and received + lost = generated (*exact*).")
	d.p("Steps go up until the senders top out or two steps in a row lose events, then narrow the boundary.")
	d.p("")
	d.p("Three placements of producers and consumer: **dedicated**, one sender on vCPU 0 and kfw_exporter bound to")
	d.p("vCPU 1 (`taskset`), so that the consumer's own capacity is measured, not its share of the producer's CPU;")
	d.p("**shared**, senders on both vCPUs and kfw_exporter scheduled among them, as on a router whose softirqs run on")
	d.p("every CPU; **contended**, senders on both vCPUs and kfw_exporter bound to vCPU 1: the sender on vCPU 0")
	d.p("does not slow down when the consumer needs CPU, so this is where the consumer falls behind first.")
	d.p("")
	d.p("**drop_monitor.** `dropwatch` is not installed, so kfwbench drives `drop_monitor` itself over its generic")
	d.p("netlink family `NET_DM` (`bench/internal/netdm`) and runs each placement's steps again: packet mode (one")
	d.p("alert per dropped packet, like kfw's events, but one netlink message each where kfw packs a page of events")
	d.p("into one), per-CPU queue of %d packets (the default), whole packets, a listener with the same %s receive",
		ev.DropMonitorQueueLen, bytesIEC(float64(ev.ReadBuffer)))
	d.p("buffer and placement that only counts the alerts and reads their drop reason (less work per alert than")
	d.p("kfw_exporter does per event). Same floods and drop rule; kfw has no listener then, so it generates no events.")
	d.p("NET_DM does not count what its listeners miss, so loss is computed from the rule's drop counter: drops −")
	d.p("alerts with reason `NETFILTER_DROP`; *queue* is NET_DM's own `NET_DM_ATTR_STATS_DROPPED`, *socket* the rest.")
	d.p("")
	d.p("Loss by stage: *queue* = `events_queue_overflows` (kfw's per-CPU ring full: the drain work fell behind);")
	d.p("*socket* = events in batches dropped at kfw_exporter's full socket (`kfw_events_lost_total` minus the kernel's")
	d.p("own losses; `events_nobufs` counts the multicasts that hit the full buffer); *suppressed* =")
	d.p("`events_suppressed` (rate limits, off here: must be 0). CPU per event is kfw_exporter's on-CPU time over the")
	d.p("step and its drain (sum of its threads' `schedstat`; scrapes excluded) divided by the events received.")
	d.p("")
	for _, se := range ev.Series {
		d.p("### %s: %s", se.Name, placement(se))
		d.p("")
		d.p("| offered/s | generated/s | generated | received | lost | queue | socket | nobufs | suppressed | exact | exporter CPU/event (TCG) | RSS after |")
		d.p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
		for _, st := range sortedSteps(se.Steps) {
			l := splitLoss(st)
			d.p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %v | %s µs | %s |", fint(st.Offered), fint(st.Achieved()),
				fint(float64(st.Kernel.Generated)), fint(float64(st.Exporter.Received)), fint(float64(st.Exporter.Lost)),
				fint(float64(l.Queue)), fint(float64(l.Socket)), fint(float64(st.Kernel.Nobufs)), fint(float64(st.Kernel.Suppressed)),
				st.Exact, f1(float64(st.Exporter.CPUNanos)/math.Max(1, float64(st.Exporter.Received))/1e3), bytesIEC(float64(st.RSSBytes)))
		}
		d.p("")
		if best, ok := losslessStep(se.Steps); ok {
			line := fmt.Sprintf("**Lossless rate: %s events/s** (offered %s/s)", fint(best.Achieved()), fint(best.Offered))
			if _, lossy := slowestLossy(se.Steps); !lossy {
				line += "; no step lost events: the senders topped out before the consumer did"
			}
			d.p("%s.", line)
		} else {
			d.p("No step was lossless.")
		}
		if sus := se.Sustained; sus != nil {
			st := sus.Step
			d.p("Sustained for %s s at %s events/s: received %s, lost %s, exact %v; kfw_exporter's VmRSS %s before, at most %s",
				f1(st.Seconds), fint(st.Achieved()), fint(float64(st.Exporter.Received)), fint(float64(st.Exporter.Lost)),
				st.Exact, bytesIEC(float64(sus.RSSBefore)), bytesIEC(float64(maxU64(sus.RSSSamples))))
			d.p("during the flood (%d samples), VmHWM %s; %s µs of CPU per event.", len(sus.RSSSamples),
				bytesIEC(float64(st.HWMBytes)), f1(float64(st.Exporter.CPUNanos)/math.Max(1, float64(st.Exporter.Received))/1e3))
		}
		if ov := se.Overload; ov != nil {
			st := ov.Step
			l := splitLoss(st)
			d.p("")
			d.p("**Above the consumer's capacity.** The same flood for %s s with kfw_exporter stopped (`SIGSTOP`) for %s s",
				f1(st.Seconds), trimFloat(ov.StallSeconds))
			d.p("half a second in, as a consumer that falls behind (no socket buffer absorbs that): %s events/s generated,",
				fint(st.Achieved()))
			d.p("%s received, %s lost: kernel queue %s, socket %s (%s multicasts refused with ENOBUFS, %s overruns seen",
				fint(float64(st.Exporter.Received)), fint(float64(st.Exporter.Lost)), fint(float64(l.Queue)), fint(float64(l.Socket)),
				fint(float64(st.Kernel.Nobufs)), fint(float64(st.Exporter.Overruns)))
			d.p("by kfw_exporter); received + lost = generated: %v.", st.Exact)
		}
		d.p("")
		d.dropMonitor(se)
	}
	d.cost(ev)
}

func (d *doc) dropMonitor(se results.EventSeries) {
	if len(se.DropMonitor) == 0 {
		return
	}
	d.p("drop_monitor (NET_DM, packet mode), same placement and floods:")
	d.p("")
	d.p("| offered/s | dropped/s | drops | alerts | lost | queue | socket | socket overruns (ENOBUFS) |")
	d.p("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, st := range se.DropMonitor {
		lost := sub(st.Drops, st.Matching)
		d.p("| %s | %s | %s | %s | %s | %s | %s | %s |", fint(st.Offered), fint(float64(st.Drops)/st.Seconds), fint(float64(st.Drops)),
			fint(float64(st.Matching)), fint(float64(lost)), fint(float64(st.QueueDropped)), fint(float64(sub(lost, st.QueueDropped))),
			fint(float64(st.Overruns)))
	}
	d.p("")
}

// anyLossyStep tells whether a step of any series lost events.
func anyLossyStep(series []results.EventSeries) bool {
	for _, se := range series {
		if _, lossy := slowestLossy(se.Steps); lossy {
			return true
		}
	}
	return false
}

// dropMonitorFirstLossy is the step with the lowest drop rate above rate
// that lost alerts.
func dropMonitorFirstLossy(steps []results.DropMonitorStep, rate float64) (results.DropMonitorStep, bool) {
	var w results.DropMonitorStep
	found := false
	for _, st := range steps {
		r := float64(st.Drops) / st.Seconds
		if st.Matching < st.Drops && r > rate && (!found || r < float64(w.Drops)/w.Seconds) {
			w, found = st, true
		}
	}
	return w, found
}

// dropMonitorLossless is the highest drop rate NET_DM delivered entirely,
// -1 if none.
func dropMonitorLossless(steps []results.DropMonitorStep) float64 {
	best := -1.0
	for _, st := range steps {
		if st.Drops > 0 && st.Matching >= st.Drops {
			best = math.Max(best, float64(st.Drops)/st.Seconds)
		}
	}
	return best
}

// costResults summarises the cost floods: no listener first, then kfw,
// then NET_DM.
func costResults(trials []results.Trial) []configResult {
	rs := pathResults(trials, results.PathDrop, "quiet", nil)
	rank := map[string]int{"quiet": 0, "kfw-events": 1, "drop-monitor": 2}
	slices.SortStableFunc(rs, func(a, b configResult) int { return rank[a.Config] - rank[b.Config] })
	return rs
}

func (d *doc) cost(ev *results.Events) {
	rs := costResults(ev.Cost)
	if len(rs) == 0 {
		return
	}
	d.p("### Cost of the events on the packet path")
	d.p("")
	d.p("The drop flood at the sender's top rate (one sender, vCPU 0), counted by the drop rule: with no listener")
	d.p("(kfw generates no events: one `genl_has_listeners` test per packet), with kfw_exporter subscribed (an event per")
	d.p("packet, queued and batched by kfw's work on vCPU 0), and with NET_DM in packet mode (a cloned skb per packet,")
	d.p("a netlink message per packet, sent from a work item on vCPU 0). Consumers on vCPU 1. Rotating order, per-round")
	d.p("ratios to *quiet*.")
	d.p("")
	d.p("| listener | drops/s (median) | spread | vs no listener | ratio spread |")
	d.p("|---|---:|---:|---:|---:|")
	for _, r := range rs {
		d.p("| %s | %s | %s | %s | %s |", r.Config, fint(r.PPS.Median), rangeOf(r.PPS, fint), f2(r.Ratio.Median), rangeOf(r.Ratio, f2))
	}
	d.p("")
}

func (d *doc) exporter() {
	d.p("## 3. Exporter")
	d.p("")
	d.p("### Scrape latency and allocations (host, `go test -bench`)")
	d.p("")
	d.p("`bench.BenchmarkScrape` serves `/metrics` through promhttp with kfw_exporter's default collectors on a")
	d.p("`/proc/kfw` tree of N rules (`bench/internal/procfixture`), every rule with one event series;")
	d.p("`BenchmarkGather` is the collection part alone. Medians of the runs in section 4.")
	d.p("")
	d.p("| rules | scrape | allocs/scrape | bytes allocated | response | gather | gather allocs |")
	d.p("|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range []int{10, 1000, 4096} {
		s, ok1 := findBench(d.bench, fmt.Sprintf("BenchmarkScrape/rules=%d", n))
		g, ok2 := findBench(d.bench, fmt.Sprintf("BenchmarkGather/rules=%d", n))
		if !ok1 || !ok2 {
			continue
		}
		d.p("| %d | %s | %s | %s | %s | %s | %s |", n, dur(s.Metrics["ns/op"]*1e-9), fint(s.Metrics["allocs/op"]),
			bytesIEC(s.Metrics["B/op"]), bytesIEC(s.Metrics["MB/s"]*1e6*s.Metrics["ns/op"]*1e-9), dur(g.Metrics["ns/op"]*1e-9),
			fint(g.Metrics["allocs/op"]))
	}
	d.p("")
	d.p("### CPU per event in the consumer")
	d.p("")
	dec4, _ := findBench(d.bench, "BenchmarkDecodeBatch/ipv4")
	dec6, _ := findBench(d.bench, "BenchmarkDecodeBatch/ipv6")
	cons, _ := findBench(d.bench, "BenchmarkConsumerEvent")
	d.p("Host: decoding full batches (`netlinkclient.BenchmarkDecodeBatch`) costs %s ns per IPv4 event and %s ns per",
		f1(dec4.Metrics["ns/event"]), f1(dec6.Metrics["ns/event"]))
	d.p("IPv6 event (%s allocations per event); counting it (`collector.BenchmarkConsumerEvent`) %s ns and %s",
		f1(dec4.Metrics["allocs/event"]), f1(cons.Metrics["ns/op"]), fint(cons.Metrics["allocs/op"]))
	d.p("allocations. In the VM, the whole kfw_exporter process (socket reads, decoding, counting, Go runtime) used")
	d.p("the CPU per event given in the table of section 2 (per-thread `schedstat` of the process over the step and")
	d.p("its drain, scrapes excluded), which falls as batches fill at higher rates.")
	d.p("")
	d.p("### Memory while consuming")
	d.p("")
	if sus := d.sustained(); sus != nil {
		d.p("kfw_exporter in the VM: VmRSS %s idle before the sustained flood, at most %s during %s s at %s events/s,",
			bytesIEC(float64(sus.RSSBefore)), bytesIEC(float64(maxU64(sus.RSSSamples))),
			f1(sus.Step.Seconds), fint(sus.Step.Achieved()))
		d.p("VmHWM %s (`/proc/PID/status`; samples every 0.5 s: %s).", bytesIEC(float64(sus.Step.HWMBytes)), rssList(sus.RSSSamples))
	} else {
		d.p("Not measured in this run (no lossless rate to sustain).")
	}
	d.p("")
	d.p("### A scrape of kfw_exporter vs node_exporter")
	d.p("")
	d.p("Both exporters with their default collectors and flags, scraped alternately by the same Go client after one")
	d.p("warm-up each, the way Prometheus does (gzip accepted). CPU is the exporter process's on-CPU time during the")
	d.p("scrape (sum of its threads' `schedstat`); wall is request to last byte. *Host*: native, kfw_exporter reading")
	d.p("a `/proc/kfw` fixture tree (the host kernel has no kfw; its events collector finds no module), node_exporter")
	d.p("reading the host. *VM*: TCG, kfw_exporter reading the real module with N rules loaded.")
	d.p("")
	d.p("| where | rules | scrapes | kfw samples | kfw bytes | kfw CPU | kfw wall | node samples | node bytes | node CPU | node wall | CPU ratio | wall ratio |")
	d.p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	row := func(where string, s results.ScrapeSet) {
		kc, nc := stats.Summarize(s.Kfw.CPUNanos), stats.Summarize(s.Node.CPUNanos)
		kw, nw := stats.Summarize(s.Kfw.Seconds), stats.Summarize(s.Node.Seconds)
		d.p("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", where, s.Rules, len(s.Kfw.Seconds),
			fint(float64(s.Kfw.Series)), bytesIEC(float64(s.Kfw.Bytes)), dur(kc.Median*1e-9), dur(kw.Median),
			fint(float64(s.Node.Series)), bytesIEC(float64(s.Node.Bytes)), dur(nc.Median*1e-9), dur(nw.Median),
			f2(stats.Ratios(s.Kfw.CPUNanos, s.Node.CPUNanos).Median), f2(stats.Ratios(s.Kfw.Seconds, s.Node.Seconds).Median))
	}
	if hs := d.run.HostScrape; hs != nil {
		row("host", *hs)
	}
	if ex := d.run.Guest.Exporter; ex != nil {
		for _, s := range ex.Scrapes {
			row("VM", s)
		}
	}
	d.p("")
	d.p("Ratios are medians of per-scrape ratios (kfw_exporter's scrape / the node_exporter scrape right after it).")
	d.p("")
}

// sustained is the first series' sustained flood, nil if none.
func (d *doc) sustained() *results.Sustained {
	if ev := d.run.Guest.Events; ev != nil && len(ev.Series) > 0 {
		return ev.Series[0].Sustained
	}
	return nil
}

func (d *doc) microBenchmarks(rel string) {
	d.p("## 4. Go micro-benchmarks")
	d.p("")
	d.p("On the host: `%s`. Medians over the runs; the raw output, for `benchstat`, is", d.run.GoBenchCmd)
	d.p("[`%s`](%s).", filepath.Join(rel, "go-bench.txt"), filepath.Join(rel, "go-bench.txt"))
	d.p("")
	d.p("| package | benchmark | runs | time/op | B/op | allocs/op | other |")
	d.p("|---|---|---:|---:|---:|---:|---|")
	for _, b := range d.bench {
		var other []string
		for _, u := range slices.Sorted(mapsKeys(b.Metrics)) {
			switch u {
			case "ns/op", "B/op", "allocs/op":
				continue
			}
			other = append(other, fmt.Sprintf("%s %s", trimFloat(roundSig(b.Metrics[u], 4)), u))
		}
		d.p("| %s | %s | %d | %s | %s | %s | %s |", filepath.Base(b.Pkg), strings.TrimPrefix(b.Name, "Benchmark"), b.Runs,
			dur(b.Metrics["ns/op"]*1e-9), fint(b.Metrics["B/op"]), fint(b.Metrics["allocs/op"]), strings.Join(other, ", "))
	}
	d.p("")
}

func (d *doc) notMeasured() {
	d.p("## Not measured, and why")
	d.p("")
	d.p("- **Real hardware.** Everything in the VM is TCG-emulated on a shared 2-core host: absolute rates and times")
	d.p("  are not those of any real machine; the ratios are the result. A NIC, GRO, RSS/RPS and multi-queue softirq")
	d.p("  spreading are not in the picture: one vCPU carries each flood.")
	d.p("- **IPv6, TCP, larger packets, multiple flows.** The packet path uses one small IPv4 UDP flow: the")
	d.p("  worst case for per-packet overhead and the case where rule walking dominates.")
	d.p("- **Rule sets that are not linear.** nftables sets and maps (`udp dport { ... }`) would match 1000 ports in")
	d.p("  one lookup; kfw has no equivalent, so the comparison is of equivalent *linear* rule lists, as an")
	d.p("  iptables-style ruleset translated one to one would be.")
	d.p("- **drop_monitor in summary mode**, which reports counts per drop location rather than packets, and the")
	d.p("  `dropwatch` tool itself (not installed): the comparison uses NET_DM's packet mode, the per-packet")
	d.p("  equivalent of kfw's events, driven by our own client.")
	d.p("- **Memory of a long run.** RSS is sampled over one sustained flood of seconds, not hours.")
	if ev := d.run.Guest.Events; ev != nil && !anyLossyStep(ev.Series) {
		d.p("- **A rate above kfw_exporter's capacity.** In no placement did the lab's senders generate events faster")
		d.p("  than kfw_exporter consumed them (each step was lossless up to the senders' ceiling), so the loss split")
		d.p("  above the lossless rate comes from the consumer stall instead: the same stages, forced.")
	}
	d.p("- **Timing independent of the host's load.** qemu's `-icount` would tie guest time to instructions")
	d.p("  executed and make the VM's rates deterministic; the lab does not expose qemu options, so the injection")
	d.p("  turns stand in for it (section 1).")
	d.p("")
}

func (d *doc) rawFiles(rel string) {
	d.p("## Raw results")
	d.p("")
	d.p("- [`%s`](%s): every record of this run (all trials, steps, scrapes, benchmark runs, the machine).",
		filepath.Join(rel, "run.json"), filepath.Join(rel, "run.json"))
	d.p("- [`%s`](%s): what the VM payload wrote; [`%s`](%s): its log.", filepath.Join(rel, "guest.json"),
		filepath.Join(rel, "guest.json"), filepath.Join(rel, "guest.log"), filepath.Join(rel, "guest.log"))
	d.p("- [`%s`](%s): `go test -bench` output, for", filepath.Join(rel, "go-bench.txt"), filepath.Join(rel, "go-bench.txt"))
	d.p("  `go run golang.org/x/perf/cmd/benchstat@latest %s` (or to compare with a later run).", filepath.Join(rel, "go-bench.txt"))
}
