package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"

	"github.com/kfwlabs/kfw_exporter/bench/internal/procfixture"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/bench/internal/scrape"
)

// hostScrapeRules is the table size of the native comparison.
const hostScrapeRules = 1000

// hostScrapes compares kfw_exporter, reading a /proc fixture of
// hostScrapeRules rules (the host kernel has no kfw; its events collector
// finds no module and stays idle), with node_exporter reading the host,
// both with their default collectors, by the same client.
func hostScrapes(ctx context.Context, exporter string, quick bool) (*results.ScrapeSet, error) {
	node, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		return nil, fmt.Errorf("node_exporter (apt-get install prometheus-node-exporter): %w", err)
	}
	root, err := os.MkdirTemp("", "kfwbench-proc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)
	if err := procfixture.Write(root, hostScrapeRules); err != nil {
		return nil, err
	}
	kfwPort, err := freePort()
	if err != nil {
		return nil, err
	}
	nodePort, err := freePort()
	if err != nil {
		return nil, err
	}
	kfw, err := scrape.Start("kfw_exporter", kfwPort, exporter, "--path.procfs="+root, "--log.level=error")
	if err != nil {
		return nil, err
	}
	defer kfw.Stop()
	ne, err := scrape.Start("node_exporter", nodePort, node, "--log.level=error")
	if err != nil {
		return nil, err
	}
	defer ne.Stop()
	n := 50
	if quick {
		n = 5
	}
	set := &results.ScrapeSet{Rules: hostScrapeRules}
	set.Kfw, set.Node, err = scrape.Compare(ctx, kfw, ne, n)
	return set, err
}

// freePort returns a TCP port of the loopback that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
