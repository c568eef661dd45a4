package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

func (c *ctl) rulesList(ctx context.Context, cl Client) error {
	rules, err := cl.Rules(ctx)
	if err != nil {
		return err
	}
	if c.output == "json" {
		out := make([]jsonRule, len(rules))
		for i, ri := range rules {
			out[i] = newJSONRule(ri)
		}
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(c.env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKETS\tBYTES\tEVENTS\tSUPPRESSED\tRULE")
	for _, ri := range rules {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\n", ri.Counters.Packets, ri.Counters.Bytes,
			ri.Counters.Events, ri.Counters.Suppressed, ri.Rule)
	}
	return tw.Flush()
}

// jsonRule is a rule of "rules list -o json": the canonical form, its
// fields one by one (absent: any), and its counters.
type jsonRule struct {
	ID         uint16   `json:"id"`
	Action     string   `json:"action"`
	Family     string   `json:"family,omitempty"`
	Proto      string   `json:"proto,omitempty"`
	Src        string   `json:"src,omitempty"`
	Dst        string   `json:"dst,omitempty"`
	Sport      string   `json:"sport,omitempty"`
	Dport      string   `json:"dport,omitempty"`
	Iif        string   `json:"iif,omitempty"`
	Oif        string   `json:"oif,omitempty"`
	Hooks      []string `json:"hooks"`
	Log        bool     `json:"log"`
	Rate       uint32   `json:"rate"`
	Burst      uint32   `json:"burst"`
	Packets    uint64   `json:"packets"`
	Bytes      uint64   `json:"bytes"`
	Events     uint64   `json:"events"`
	Suppressed uint64   `json:"suppressed"`
	Rule       string   `json:"rule"`
}

func newJSONRule(ri netlinkclient.RuleInfo) jsonRule {
	r := ri.Rule
	j := jsonRule{
		ID: r.ID, Action: r.Action.String(), Iif: r.Iif, Oif: r.Oif, Log: r.Log, Rate: r.Rate, Burst: r.Burst,
		Packets: ri.Counters.Packets, Bytes: ri.Counters.Bytes, Events: ri.Counters.Events,
		Suppressed: ri.Counters.Suppressed, Rule: r.String(), Hooks: []string{},
	}
	if r.Family != abi.FamilyAny {
		j.Family = abi.FamilyName(r.Family)
	}
	if r.ProtoSet {
		j.Proto = abi.ProtoName(r.Proto)
	}
	if r.Src.IsValid() {
		j.Src = r.Src.String()
	}
	if r.Dst.IsValid() {
		j.Dst = r.Dst.String()
	}
	if r.Sport.Set {
		j.Sport = r.Sport.String()
	}
	if r.Dport.Set {
		j.Dport = r.Dport.String()
	}
	for _, h := range abi.Hooks() {
		if r.Hooks&(1<<h) != 0 {
			j.Hooks = append(j.Hooks, h.String())
		}
	}
	return j
}

// rulesDel takes N or id=N.
func (c *ctl) rulesDel(ctx context.Context, cl Client) error {
	text := strings.TrimPrefix(c.delID, "id=")
	id, err := strconv.ParseUint(text, 10, 16)
	if err != nil || id < abi.RuleIDMin {
		return usagef("rules del: id must be 1..65535, not %q", c.delID)
	}
	return cl.DelRule(ctx, uint16(id))
}

// table reads the kernel's policies and rules into a RuleTable.
func table(ctx context.Context, cl Client) (*abi.RuleTable, error) {
	policies, err := cl.Policies(ctx)
	if err != nil {
		return nil, err
	}
	t := abi.NewRuleTable()
	for _, p := range policies {
		if int(p.Hook) < abi.HookCount {
			t.Policies[p.Hook] = p.Action
		}
	}
	rules, err := cl.Rules(ctx)
	if err != nil {
		return nil, err
	}
	for _, ri := range rules {
		t.Rules = append(t.Rules, ri.Rule)
	}
	return t, nil
}

// rulesSave prints what a read of /proc/kfw/rules prints.
func (c *ctl) rulesSave(ctx context.Context, cl Client) error {
	t, err := table(ctx, cl)
	if err != nil {
		return err
	}
	_, err = io.WriteString(c.env.Stdout, t.String())
	return err
}

// rulesRestore runs a saved text against the current table exactly as a
// /proc/kfw/rules write would, then loads the result in one
// KFW_CMD_REPLACE, which has no page-size limit. A text that starts with
// flush and sets every policy (what save prints) does not depend on the
// current table; any other text is applied to a snapshot of it, so a
// concurrent change between the snapshot and the replace would be lost.
func (c *ctl) rulesRestore(ctx context.Context, cl Client) error {
	name := c.restore
	var text []byte
	var err error
	// kingpin hands a lone "-" over as "".
	if name == "-" || name == "" {
		name = "standard input"
		text, err = io.ReadAll(c.env.Stdin)
	} else {
		text, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("rules restore: %w", err)
	}
	if cmds, err := abi.ParseCommands(string(text)); err == nil && len(cmds) == 0 {
		return nil // like a write without commands: nothing changes
	}
	// Errors come from ApplyText, which fails where the kernel would.
	t, err := table(ctx, cl)
	if err != nil {
		return err
	}
	if err := t.ApplyText(string(text)); err != nil {
		return fmt.Errorf("rules restore: %s: %w", name, err)
	}
	policies := make([]abi.Policy, 0, abi.HookCount)
	for _, h := range abi.Hooks() {
		policies = append(policies, abi.Policy{Hook: h, Action: t.Policies[h]})
	}
	return cl.Replace(ctx, policies, t.Rules)
}

func (c *ctl) policy(ctx context.Context, cl Client) error {
	switch len(c.policyArgs) {
	case 0:
		policies, err := cl.Policies(ctx)
		if err != nil {
			return err
		}
		for _, p := range policies {
			fmt.Fprintln(c.env.Stdout, p)
		}
		return nil
	case 2:
		hook, ok := abi.ParseHook(c.policyArgs[0])
		if !ok {
			return usagef("policy: hook must be input, forward or output, not %q", c.policyArgs[0])
		}
		action, ok := abi.ParseAction(c.policyArgs[1])
		if !ok {
			return usagef("policy: action must be accept or drop, not %q", c.policyArgs[1])
		}
		return cl.SetPolicy(ctx, abi.Policy{Hook: hook, Action: action})
	}
	return usagef("policy takes no argument or HOOK ACTION")
}

// stats prints /proc/kfw/stats's lines, or one JSON object with the same
// names.
func (c *ctl) stats(ctx context.Context, cl Client) error {
	st, err := cl.Stats(ctx)
	if err != nil {
		return err
	}
	if c.output == "json" {
		enc := json.NewEncoder(c.env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(jsonStats{
			ABIVersion: st.ABIVersion, Version: st.Version, Instance: abi.FormatInstance(st.Instance),
			Generation: st.Generation, Rules: st.Rules, MaxRules: st.MaxRules,
			EventsGenerated: st.EventsGenerated, EventsSuppressed: st.EventsSuppressed,
			EventsQueueOverflows: st.EventsQueueOverflows, EventsMessagesSent: st.EventsMessagesSent,
			EventsNoListener: st.EventsNoListener, EventsAllocFailures: st.EventsAllocFailures,
			EventsNobufs: st.EventsNobufs,
		})
	}
	_, err = fmt.Fprintf(c.env.Stdout, "abi_version %d\nversion %s\ninstance %s\ngeneration %d\nrules %d\nmax_rules %d\n"+
		"events_generated %d\nevents_suppressed %d\nevents_queue_overflows %d\nevents_messages_sent %d\n"+
		"events_no_listener %d\nevents_alloc_failures %d\nevents_nobufs %d\n",
		st.ABIVersion, st.Version, abi.FormatInstance(st.Instance), st.Generation, st.Rules, st.MaxRules,
		st.EventsGenerated, st.EventsSuppressed, st.EventsQueueOverflows, st.EventsMessagesSent,
		st.EventsNoListener, st.EventsAllocFailures, st.EventsNobufs)
	return err
}

type jsonStats struct {
	ABIVersion           uint32 `json:"abi_version"`
	Version              string `json:"version"`
	Instance             string `json:"instance"`
	Generation           uint64 `json:"generation"`
	Rules                uint32 `json:"rules"`
	MaxRules             uint32 `json:"max_rules"`
	EventsGenerated      uint64 `json:"events_generated"`
	EventsSuppressed     uint64 `json:"events_suppressed"`
	EventsQueueOverflows uint64 `json:"events_queue_overflows"`
	EventsMessagesSent   uint64 `json:"events_messages_sent"`
	EventsNoListener     uint64 `json:"events_no_listener"`
	EventsAllocFailures  uint64 `json:"events_alloc_failures"`
	EventsNobufs         uint64 `json:"events_nobufs"`
}
