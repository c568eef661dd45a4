// Package guestbench is kfwbench's in-VM payload: it builds the lab
// topology and runs the packet path, event pipeline and exporter
// measurements as root inside a lab VM (never on a host: it loads modules
// and rewrites firewalls), recording raw numbers in results.Guest.
//
// All floods come from AF_PACKET senders in the client namespace (package
// pktgen), so the client's own stack costs nothing per packet and kfw,
// whose table is global, is only evaluated at the router's hook under
// test.
package guestbench

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// Params sizes a run.
type Params struct {
	Quick bool

	// Packet path.
	Rounds        int
	Burst         time.Duration // one path's turn
	Bursts        int           // turns of each path per configuration and round
	Trial         time.Duration // the event cost floods
	RuleCounts    []int
	PacketSenders int

	// Event pipeline.
	EventRates      []float64 // offered events/s, ascending
	EventStep       time.Duration
	EventSeries     []SeriesSpec
	Refine          int           // steps narrowing the lossless rate
	Sustain         time.Duration // the first series' flood at its lossless rate
	Stall           time.Duration // then the same with the consumer stopped this long
	CostRounds      int
	ReadBuffer      int    // bytes: kfw_exporter's --netlink.read-buffer and NET_DM's listener
	DropMonitorQLen uint32 // NET_DM per-CPU queue, packets

	// Exporters.
	Scrapes     int
	ScrapeRules []int

	// Binaries.
	Exporter     string // kfw_exporter
	NodeExporter string // prometheus-node-exporter

	Phases []string // "packet", "events", "exporter"
}

// Full and Quick are the two sizes of make bench.
var (
	Full = Params{
		Rounds: 4, Burst: 400 * time.Millisecond, Bursts: 6, Trial: 3 * time.Second, RuleCounts: []int{1, 10, 100, 1000}, PacketSenders: 1,
		EventRates: []float64{5000, 10000, 20000, 40000, 60000, 80000, 120000, 160000, 240000, 320000},
		EventStep:  3 * time.Second, EventSeries: placements, Refine: 2, Sustain: 15 * time.Second, Stall: 4 * time.Second, CostRounds: 3,
		ReadBuffer: 4 << 20, DropMonitorQLen: 1000,
		Scrapes: 20, ScrapeRules: []int{1000, 4096},
	}
	Quick = Params{
		Quick:  true,
		Rounds: 1, Burst: 250 * time.Millisecond, Bursts: 4, Trial: time.Second, RuleCounts: []int{1, 10, 100, 1000}, PacketSenders: 1,
		EventRates: []float64{5000, 20000, 80000, 320000},
		EventStep:  time.Second, EventSeries: placements, Sustain: 3 * time.Second, Stall: 3 * time.Second, CostRounds: 1,
		ReadBuffer: 4 << 20, DropMonitorQLen: 1000,
		Scrapes: 3, ScrapeRules: []int{1000},
	}
)

// SeriesSpec places the event floods' producers and consumer.
type SeriesSpec struct {
	Name      string
	Producers int    // sender threads, bound to vCPUs 0, 1, ...
	Consumer  string // ConsumerLastCPU or ConsumerAnyCPU
}

// Where a series' consumers (kfw_exporter, the NET_DM listener) run.
const (
	// ConsumerLastCPU binds them to the last vCPU: with one producer
	// (on vCPU 0) the consumer's own, so its capacity is measured; with a
	// producer on every vCPU, shared with one of them.
	ConsumerLastCPU = "last"
	// ConsumerAnyCPU leaves them to the scheduler, among the producers.
	ConsumerAnyCPU = "any"
)

// placements are the event series. kfw's drain work and NET_DM's work run
// where they were queued, on the producers' vCPUs. With producers on both
// vCPUs and the consumer bound to one of them, vCPU 0's producer does not
// slow down when the consumer needs CPU: the consumer falls behind there
// first.
var placements = []SeriesSpec{
	{Name: "dedicated", Producers: 1, Consumer: ConsumerLastCPU},
	{Name: "shared", Producers: 2, Consumer: ConsumerAnyCPU},
	{Name: "contended", Producers: 2, Consumer: ConsumerLastCPU},
}

// AllPhases is every phase, in the order Run runs them.
var AllPhases = []string{"packet", "events", "exporter"}

// Run runs the phases of p and returns what they measured; on an error,
// what was measured so far comes back with it.
func Run(p Params) (*results.Guest, error) {
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s kfwbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	res := &results.Guest{
		Kernel:  guest.Kernel(),
		Release: strings.TrimSpace(string(release)),
		CPUs:    runtime.NumCPU(),
		Quick:   p.Quick,
		Started: time.Now(),
	}
	defer func() { res.Finished = time.Now() }()
	if guest.ModuleLoaded("kfw") {
		return res, errors.New("kfw is loaded already: kfwbench needs a fresh lab VM")
	}

	e, err := newEnv(logf)
	if err != nil {
		return res, err
	}
	defer e.close()
	for _, phase := range p.Phases {
		logf("phase %s", phase)
		switch phase {
		case "packet":
			res.Packet, err = e.packetPath(p)
		case "events":
			res.Events, err = e.events(p)
		case "exporter":
			res.Exporter, err = e.exporters(p)
		default:
			err = fmt.Errorf("unknown phase %q", phase)
		}
		if err != nil {
			return res, fmt.Errorf("phase %s: %w", phase, err)
		}
	}
	res.Notes = append(res.Notes, moduleNotes()...)
	return res, nil
}

// moduleNotes reports modules that would change what the packet path
// measures if a phase had loaded them (connection tracking and its
// defragmentation run before every filter).
func moduleNotes() []string {
	var notes []string
	for _, m := range []string{"nf_conntrack", "nf_defrag_ipv4"} {
		if guest.ModuleLoaded(m) {
			notes = append(notes, m+" was loaded during the run: every packet also paid for it")
		}
	}
	return notes
}
