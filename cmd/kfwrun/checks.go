package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The rules of cmd/kfwrun/rules that the traffic of guest.sh exercises;
// TestRulesFile keeps them in step with the file.
var (
	acceptedRules = []string{"10", "11", "20", "21"} // UDP 5001 per family, TCP 5002 and its replies
	droppedRules  = []string{"30", "31"}             // UDP 6001 over IPv4, TCP 6002 over IPv6
	loggedRule    = "20"                             // log=1 with a rate limit
	unusedRule    = "40"                             // matches nothing
)

// metrics is one scrape of the exporter.
type metrics map[string]*dto.MetricFamily

// scrapeExporter fetches and parses the exporter's /metrics.
func scrapeExporter(ctx context.Context, client *http.Client, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing the exporter's metrics: %w", err)
	}
	return families, nil
}

// sum adds the values of the series of name whose labels include every
// pair of labels (name=value, ...); found is false when none matches.
func (m metrics) sum(name string, labels ...string) (total float64, found bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		if !hasLabels(s, labels) {
			continue
		}
		found = true
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		}
	}
	return total, found
}

func hasLabels(s *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		ok := false
		for _, l := range s.GetLabel() {
			if l.GetName() == pairs[i] && l.GetValue() == pairs[i+1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// series formats a metric name and label pairs as PromQL does.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", labels[i], labels[i+1])
	}
	return name + "{" + b.String() + "}"
}

// checkExporter checks one scrape of the lab's exporter: the module is up,
// the traffic reaches the rules it is meant for, and (withEvents) the
// event pipeline delivers drop and hit events.
func checkExporter(m metrics, withEvents bool) error {
	var errs []error
	want := func(cond bool, format string, args ...any) {
		if !cond {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	value := func(name string, labels ...string) float64 {
		v, _ := m.sum(name, labels...)
		return v
	}
	want(value("kfw_up") == 1, "kfw_up is not 1: the exporter does not see the module (see its log, exporter.log)")
	for _, id := range append(append([]string{}, acceptedRules...), droppedRules...) {
		name := series("kfw_rule_packets_total", "rule", id)
		want(value("kfw_rule_packets_total", "rule", id) > 0, "%s is 0: the traffic meant for rule %s does not reach it (see traffic-*.log)", name, id)
	}
	if v, found := m.sum("kfw_rule_packets_total", "rule", unusedRule); !found || v != 0 {
		errs = append(errs, fmt.Errorf("%s = %v (present: %v), want a series at 0", series("kfw_rule_packets_total", "rule", unusedRule), v, found))
	}
	want(value("kfw_packets_total", "hook", "forward", "verdict", "drop") > 0,
		"%s is 0: no packet was dropped in the router", series("kfw_packets_total", "hook", "forward", "verdict", "drop"))
	if withEvents {
		want(value("kfw_netlink_subscribed") == 1, "kfw_netlink_subscribed is not 1: the exporter gets no events (see exporter.log)")
		for _, rule := range append([]string{"policy"}, droppedRules...) {
			name := series("kfw_drop_events_total", "rule", rule)
			want(value("kfw_drop_events_total", "rule", rule) > 0, "%s is 0: no drop event arrived", name)
		}
		want(value("kfw_hit_events_total", "rule", loggedRule) > 0, "%s is 0: no hit event of the log=1 rule arrived",
			series("kfw_hit_events_total", "rule", loggedRule))
		want(value("kfw_rule_events_suppressed_total", "rule", loggedRule) > 0, "%s is 0: the rule's rate limit suppressed nothing",
			series("kfw_rule_events_suppressed_total", "rule", loggedRule))
	}
	return errors.Join(errs...)
}

// checkGrowth checks that the traffic goes on: every exercised rule's
// packet counter grew between two scrapes.
func checkGrowth(before, after metrics) error {
	var errs []error
	for _, id := range append(append([]string{}, acceptedRules...), droppedRules...) {
		b, _ := before.sum("kfw_rule_packets_total", "rule", id)
		a, _ := after.sum("kfw_rule_packets_total", "rule", id)
		if a <= b {
			errs = append(errs, fmt.Errorf("%s did not grow (%v, then %v): the traffic stopped", series("kfw_rule_packets_total", "rule", id), b, a))
		}
	}
	return errors.Join(errs...)
}

// checkPrometheus checks that Prometheus scrapes the exporter (up == 1 for
// job kfw) and has loaded the shipped rules without evaluation errors; with
// history, that it has seen the counters grow.
func checkPrometheus(ctx context.Context, c *promClient, history bool) error {
	var errs []error
	up, err := c.query(ctx, `up{job="kfw"}`)
	switch {
	case err != nil:
		errs = append(errs, err)
	case len(up) != 1 || up[0].Value != 1:
		errs = append(errs, fmt.Errorf(`in Prometheus, up{job="kfw"} is %v, want one series at 1`, up))
	}
	rules, err := c.rules(ctx)
	switch {
	case err != nil:
		errs = append(errs, err)
	case len(rules) == 0:
		errs = append(errs, errors.New("prometheus loaded no rules from dashboards/prometheus (see prometheus.log)"))
	}
	for _, r := range rules {
		if r.Health == "err" {
			errs = append(errs, fmt.Errorf("in Prometheus, rule %s of group %s fails: %s", r.Name, r.Group, r.LastError))
		}
	}
	if history {
		const q = `sum(rate(kfw_rule_packets_total{job="kfw"}[1m]))`
		v, err := c.query(ctx, q)
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(v) != 1 || v[0].Value <= 0:
			errs = append(errs, fmt.Errorf("in Prometheus, %s is %v, want > 0", q, v))
		}
	}
	return errors.Join(errs...)
}
