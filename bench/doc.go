// Package bench measures kfw against the alternatives: the packet path
// against no filter, nftables and iptables-nft, the event pipeline against
// the kernel's drop monitor, and kfw_exporter against node_exporter. `make
// bench` (cmd/kfwbench) runs everything and writes BENCHMARKS.md;
// BENCH_QUICK=1 is a smoke run.
//
// This package holds the Go benchmarks that complement the packages' own
// (scrapes at several table sizes, the /proc and rule language parsers)
// and TestQuick, which runs the smoke mode as a host test: it boots a lab
// VM, so go test -short skips it. Benchmarks are measurements, never
// assertions: TestQuick checks that the harness works and its numbers are
// sane, not that anything is fast.
package bench
