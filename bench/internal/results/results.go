// Package results holds what kfwbench measures, as the in-VM payload writes
// it (JSON in the lab's run directory) and as the host reads it back to
// write BENCHMARKS.md. The guest records raw measurements only; summaries
// and ratios are computed on the host, from these records.
package results

import "time"

// Guest is everything the in-VM payload measured in one VM boot.
type Guest struct {
	Kernel  string // lab kernel name: generic, rt, debug
	Release string // uname -r
	CPUs    int
	Quick   bool

	Started, Finished time.Time

	Packet   *PacketPath   `json:",omitempty"`
	Events   *Events       `json:",omitempty"`
	Exporter *ExporterInVM `json:",omitempty"`

	// Notes are observations worth a line in BENCHMARKS.md (a module that
	// should not have been loaded, a sender that topped out).
	Notes []string `json:",omitempty"`
}

// PacketPath is the packet path comparison: every configuration in every
// round, interleaved.
type PacketPath struct {
	Rounds       int
	TrialSeconds float64 // per path and configuration in a round: Bursts bursts
	Bursts       int
	Senders      int // sending threads, one per CPU from CPU 0
	FrameBytes   int // Ethernet frame without FCS
	RuleCounts   []int
	Trials       []Trial // in measurement order
}

// Trial is one timed flood.
type Trial struct {
	Round   int
	Config  string // "none", "kfw-N", "nft-N", "iptables-N"; the events phase uses its own names
	Path    string // PathForward, PathInput or PathInject
	Sent    uint64 // frames the sender handed to the kernel
	Counted uint64 // packets counted where Path says
	Seconds float64
	// Check is the sanity check of the configuration after the trial,
	// empty when it passed: the matching (last) rule counted the packets.
	Check string `json:",omitempty"`
	// Bursts are the trial's turns when paths took turns (Counted and
	// Seconds are their sums).
	Bursts []Burst `json:",omitempty"`
}

// Burst is one turn of a path.
type Burst struct {
	Counted uint64
	Seconds float64
}

// PPS is the burst's counted packets per second.
func (b Burst) PPS() float64 {
	if b.Seconds <= 0 {
		return 0
	}
	return float64(b.Counted) / b.Seconds
}

// PPS is the trial's counted packets per second.
func (t Trial) PPS() float64 {
	if t.Seconds <= 0 {
		return 0
	}
	return float64(t.Counted) / t.Seconds
}

// Paths of a trial.
const (
	// PathForward: client → router (FORWARD hook) → server; counted as
	// frames the router sent to the server.
	PathForward = "forward"
	// PathInput: client → router's own address (LOCAL_IN hook) → a UDP
	// socket; counted as datagrams that reached the socket.
	PathInput = "input"
	// PathInject: frames the router discards on receipt (not addressed
	// to its MAC): the sender's and the link's own ceiling.
	PathInject = "inject"
	// PathDrop: frames dropped by a rule at the router's FORWARD hook;
	// counted by the rule's counter.
	PathDrop = "drop"
)

// Events is the event pipeline: stepped floods of a drop rule with rate
// limits off, consumed by kfw_exporter and, separately, observed by the
// kernel's drop monitor, in one or more producer/consumer placements; and
// the packet path cost of both kinds of listener.
type Events struct {
	StepSeconds         float64
	ReadBuffer          int    // bytes, both listeners
	DropMonitorQueueLen uint32 // NET_DM's per-CPU queue, packets
	Series              []EventSeries

	// Cost: floods of the drop rule at the sender's top rate, with no
	// listener, with kfw_exporter subscribed, with NET_DM in packet mode.
	Cost []Trial
}

// EventSeries is one placement of producers and consumer.
type EventSeries struct {
	Name        string // "dedicated", "shared"
	Producers   int    // sender threads, bound to vCPUs 0, 1, ...
	ConsumerCPU int    // the vCPU kfw_exporter and the NET_DM listener are bound to; -1: not bound
	Steps       []EventStep
	Sustained   *Sustained `json:",omitempty"`
	Overload    *Overload  `json:",omitempty"`
	DropMonitor []DropMonitorStep
}

// Overload is a flood at the sustained rate during which the consumer was
// stopped (SIGSTOP) for StallSeconds: what happens above its capacity.
type Overload struct {
	Step         EventStep
	StallSeconds float64
}

// KernelDelta is the change of /proc/kfw/stats over a step.
type KernelDelta struct {
	Generated, Suppressed, QueueOverflows, MessagesSent, NoListener, AllocFailures, Nobufs uint64
}

// ExporterDelta is the change of kfw_exporter's own counters over a step.
type ExporterDelta struct {
	Received, Lost, Overruns, DecodeErrors uint64
	CPUNanos                               uint64 // on-CPU time of the process (/proc/PID/schedstat)
}

// EventStep is one offered rate.
type EventStep struct {
	Offered  float64 // events/s asked of the senders
	Seconds  float64
	Sent     uint64 // frames sent
	Drops    uint64 // packets the drop rule counted
	Kernel   KernelDelta
	Exporter ExporterDelta
	RSSBytes uint64 // VmRSS of kfw_exporter after the step
	HWMBytes uint64 // VmHWM
	// Exact is true when received + lost == generated after the
	// pipeline drained: the exporter accounted for every event.
	Exact bool
}

// Achieved is the event rate the kernel generated.
func (s EventStep) Achieved() float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return float64(s.Kernel.Generated) / s.Seconds
}

// Sustained is a longer flood at the highest lossless rate, sampling the
// exporter's memory.
type Sustained struct {
	Step       EventStep
	RSSSamples []uint64 // VmRSS every half second
	RSSBefore  uint64   // VmRSS before the flood
}

// DropMonitorStep is one offered rate observed by NET_DM in packet mode.
type DropMonitorStep struct {
	Offered      float64
	Seconds      float64
	Sent         uint64
	Drops        uint64 // packets the drop rule counted
	Alerts       uint64 // every packet alert received
	Matching     uint64 // alerts with reason NETFILTER_DROP
	QueueDropped uint64 // refused by NET_DM's per-CPU queues
	Overruns     uint64 // ENOBUFS on the listener's socket
}

// ExporterInVM compares the cost of a scrape of kfw_exporter with one of
// node_exporter, in the same VM, by the same client.
type ExporterInVM struct {
	Scrapes []ScrapeSet
}

// ScrapeSet is N interleaved scrapes of both exporters with Rules rules
// loaded.
type ScrapeSet struct {
	Rules int
	Kfw   ScrapeSample
	Node  ScrapeSample
}

// ScrapeSample is what N scrapes of one exporter took.
type ScrapeSample struct {
	Seconds  []float64 // wall time of each scrape, request to last byte
	CPUNanos []float64 // the exporter's on-CPU time during each scrape
	Bytes    int       // size of the last response
	Series   int       // samples in the last response
}
