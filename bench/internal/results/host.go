package results

import "time"

// Run is everything one kfwbench run measured, host and guest, as
// bench/results/run.json keeps it.
type Run struct {
	Quick    bool
	Machine  Machine
	Commands []string // how to reproduce, in order

	Started  time.Time
	Elapsed  time.Duration
	GuestRun time.Duration // the VM, boot to power-off

	GoBench    []Benchmark // host micro-benchmarks, every run of every benchmark
	GoBenchCmd string
	HostScrape *ScrapeSet `json:",omitempty"` // native: kfw_exporter on a fixture tree vs node_exporter
	Guest      *Guest
}

// Machine describes the host and the lab VM.
type Machine struct {
	CPUs           int
	CPUModel       string
	MemoryBytes    uint64
	OS             string
	HostKernel     string
	GoVersion      string
	Qemu           string
	Tools          map[string]string // tool → version line (nft, iptables-nft, node_exporter)
	LabKernel      string            // release booted in the VM
	VMCPUs         int
	VMMemoryMB     int
	LoadStart      [3]float64 // /proc/loadavg before the run
	LoadEnd        [3]float64
	QuietWaited    time.Duration // how long the run waited for a quiet machine
	QuietReached   bool          // the 1-minute load average fell below the threshold
	QuietThreshold float64
}

// Benchmark is one line of go test -bench output: one run of one
// benchmark.
type Benchmark struct {
	Pkg     string
	Name    string // as printed, GOMAXPROCS suffix included
	N       int64
	Metrics map[string]float64 // unit → value: "ns/op", "B/op", "allocs/op", "ns/event", ...
}
