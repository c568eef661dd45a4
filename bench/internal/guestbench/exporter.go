package guestbench

import (
	"context"
	"fmt"
	"strings"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
	"github.com/kfwlabs/kfw_exporter/bench/internal/scrape"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// nodeExporterPort is where node_exporter listens in the VM.
const nodeExporterPort = 9100

// exporters compares scrapes of kfw_exporter and node_exporter, both with
// their default collectors, for each table size of p.ScrapeRules.
func (e *env) exporters(p Params) (*results.ExporterInVM, error) {
	res := &results.ExporterInVM{}
	for _, n := range p.ScrapeRules {
		set, err := e.scrapeSet(p, n)
		if err != nil {
			return res, fmt.Errorf("%d rules: %w", n, err)
		}
		res.Scrapes = append(res.Scrapes, set)
	}
	return res, nil
}

// scrapeRules is a table of n rules with varied matches, half of them
// drops, as a real ruleset might look to the collectors.
func scrapeRules(n int) ([]abi.Rule, error) {
	rules := make([]abi.Rule, 0, n)
	for i := 1; i <= n; i++ {
		action := "accept"
		if i%2 == 0 {
			action = "drop"
		}
		r, err := abi.ParseRule(strings.Fields(fmt.Sprintf(
			"id=%d action=%s proto=tcp dst=10.%d.%d.0/24 dport=%d", i, action, i>>8, i&0xff, 1024+i)))
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// scrapeSet loads n rules and scrapes both exporters p.Scrapes times,
// alternating, after one warm-up scrape each.
func (e *env) scrapeSet(p Params, n int) (set results.ScrapeSet, err error) {
	set.Rules = n
	if err := guest.LoadModule(fmt.Sprintf("max_rules=%d", max(n, 4096))); err != nil {
		return set, err
	}
	defer func() {
		if uerr := guest.UnloadModule(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	rules, err := scrapeRules(n)
	if err != nil {
		return set, err
	}
	if err := replaceRules(rules); err != nil {
		return set, err
	}
	kfw, err := scrape.Start("kfw_exporter", exporterPort, p.Exporter, "--log.level=warn")
	if err != nil {
		return set, err
	}
	defer kfw.Stop()
	node, err := scrape.Start("node_exporter", nodeExporterPort, p.NodeExporter, "--log.level=error")
	if err != nil {
		return set, err
	}
	defer node.Stop()

	if set.Kfw, set.Node, err = scrape.Compare(context.Background(), kfw, node, p.Scrapes); err != nil {
		return set, err
	}
	e.logf("  scrapes with %d rules: kfw_exporter %d samples, node_exporter %d samples", n, set.Kfw.Series, set.Node.Series)
	return set, nil
}
