package guestbench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// filter is one packet path configuration: no filter, or N rules of kfw,
// nftables or iptables-nft, where rules 1..N-1 are UDP rules for other
// destination ports (each evaluated, none matching) and rule N accepts the
// flood. Every kind counts the matching rule's packets, as kfw always does
// (nftables with a counter statement; iptables rules always count).
type filter struct {
	kind  string // "none", "kfw", "nft", "iptables"
	rules int
}

func (f filter) String() string {
	if f.kind == "none" {
		return "none"
	}
	return fmt.Sprintf("%s-%d", f.kind, f.rules)
}

// filterPorts are the destination ports of rules 1..n: fillers, then the
// flood's port last.
func filterPorts(n int) []int {
	ports := make([]int, n)
	for i := range n - 1 {
		ports[i] = fillerPortBase + i + 1
	}
	ports[n-1] = benchPort
	return ports
}

// kfwRules is the kfw table: ids 1..n at the input and forward hooks.
func kfwRules(n int) ([]abi.Rule, error) {
	var rules []abi.Rule
	for i, port := range filterPorts(n) {
		r, err := abi.ParseRule(strings.Fields(fmt.Sprintf(
			"id=%d action=accept proto=udp dport=%d hooks=input,forward", i+1, port)))
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// nftRuleset is the nftables equivalent: one base chain per hook, at the
// filter priority, the same rules in the same order.
func nftRuleset(n int) string {
	var b strings.Builder
	b.WriteString("table ip kfwbench {\n")
	for _, hook := range []string{"input", "forward"} {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy accept;\n", hook, hook)
		for _, port := range filterPorts(n) {
			fmt.Fprintf(&b, "\t\tudp dport %d counter accept\n", port)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// iptablesRuleset is the same for iptables-nft-restore.
func iptablesRuleset(n int) string {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, chain := range []string{"INPUT", "FORWARD"} {
		for _, port := range filterPorts(n) {
			fmt.Fprintf(&b, "-A %s -p udp --dport %d -j ACCEPT\n", chain, port)
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// apply installs f in the router (kfw: everywhere, its table is global).
func (e *env) apply(f filter) error {
	router := e.topo.Router()
	switch f.kind {
	case "none":
		return nil
	case "kfw":
		if err := guest.LoadModule(); err != nil {
			return err
		}
		rules, err := kfwRules(f.rules)
		if err != nil {
			return err
		}
		return replaceRules(rules)
	case "nft":
		path, err := writeTemp("kfwbench.nft", nftRuleset(f.rules))
		if err != nil {
			return err
		}
		_, err = guest.RunIn(router, "nft", "-f", path)
		return err
	case "iptables":
		path, err := writeTemp("kfwbench.iptables", iptablesRuleset(f.rules))
		if err != nil {
			return err
		}
		_, err = guest.RunIn(router, "iptables-nft-restore", path)
		return err
	}
	return fmt.Errorf("unknown filter kind %q", f.kind)
}

// remove undoes apply: unloads kfw, deletes the router's nftables tables
// (iptables-nft's included, whose base chains would stay hooked if only
// flushed).
func (e *env) remove(f filter) error {
	switch f.kind {
	case "kfw":
		return guest.UnloadModule()
	case "nft", "iptables":
		_, err := guest.RunIn(e.topo.Router(), "nft", "flush", "ruleset")
		return err
	}
	return nil
}

// replaceRules loads a kfw table in one netlink transaction.
func replaceRules(rules []abi.Rule) error {
	c, err := netlinkclient.Dial(abi.GenlName)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Replace(ctx, nil, rules)
}

func writeTemp(name, content string) (string, error) {
	path := filepath.Join(os.TempDir(), name)
	return path, os.WriteFile(path, []byte(content), 0o600)
}

// ruleCounts is, per hook ("input", "forward"; kfw: "any"), the packets
// of the last rule and the sum of the others.
type ruleCounts map[string]struct{ last, others uint64 }

// counters reads f's rule counters.
func (e *env) counters(f filter) (ruleCounts, error) {
	switch f.kind {
	case "kfw":
		return kfwCounters()
	case "nft", "iptables":
		out, err := guest.RunIn(e.topo.Router(), "nft", "-j", "list", "ruleset")
		if err != nil {
			return nil, err
		}
		return nftCounters([]byte(out))
	}
	return ruleCounts{}, nil
}

func kfwCounters() (ruleCounts, error) {
	fh, err := os.Open(filepath.Join("/proc", abi.ProcDir, abi.ProcRuleStats))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var rows []abi.ProcRuleCounters
	err = abi.ParseProcRuleStats(fh, fh.Name(), func(r abi.ProcRuleCounters) error {
		rows = append(rows, r)
		return nil
	})
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("kfw rule counters: %d rows, %v", len(rows), err)
	}
	var c struct{ last, others uint64 }
	for _, r := range rows[:len(rows)-1] {
		c.others += r.Packets
	}
	c.last = rows[len(rows)-1].Packets
	return ruleCounts{"any": c}, nil
}

// nftCounters reads the counter statements of every rule of `nft -j list
// ruleset`, by chain in rule order (chain names lowercased: iptables-nft's
// FORWARD is forward).
func nftCounters(out []byte) (ruleCounts, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft -j: %w", err)
	}
	perChain := map[string][]uint64{}
	for _, obj := range doc.Nftables {
		raw, ok := obj["rule"]
		if !ok {
			continue
		}
		var rule struct {
			Chain string                       `json:"chain"`
			Expr  []map[string]json.RawMessage `json:"expr"`
		}
		if err := json.Unmarshal(raw, &rule); err != nil {
			return nil, fmt.Errorf("nft -j rule: %w", err)
		}
		var packets uint64
		for _, ex := range rule.Expr {
			if c, ok := ex["counter"]; ok {
				var ctr struct {
					Packets uint64 `json:"packets"`
				}
				if err := json.Unmarshal(c, &ctr); err != nil {
					return nil, fmt.Errorf("nft -j counter: %w", err)
				}
				packets = ctr.Packets
			}
		}
		chain := strings.ToLower(rule.Chain)
		perChain[chain] = append(perChain[chain], packets)
	}
	rc := ruleCounts{}
	for chain, pk := range perChain {
		if len(pk) == 0 {
			continue
		}
		var c struct{ last, others uint64 }
		for _, p := range pk[:len(pk)-1] {
			c.others += p
		}
		c.last = pk[len(pk)-1]
		rc[chain] = c
	}
	return rc, nil
}
