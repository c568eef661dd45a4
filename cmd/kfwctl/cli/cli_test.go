package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// fakeClient keeps a table like the module and records what it is asked.
type fakeClient struct {
	table    *abi.RuleTable
	counters map[uint16]netlinkclient.Counters
	stats    abi.ModuleStats
	calls    []string
	replaced *abi.RuleTable // the last Replace
	err      error          // returned by every call when set
	closed   bool
}

func newFakeClient() *fakeClient {
	return &fakeClient{table: abi.NewRuleTable(), counters: map[uint16]netlinkclient.Counters{}}
}

func (f *fakeClient) call(name string) error {
	f.calls = append(f.calls, name)
	return f.err
}

func (f *fakeClient) Stats(context.Context) (abi.ModuleStats, error) {
	return f.stats, f.call("stats")
}

func (f *fakeClient) Rules(context.Context) ([]netlinkclient.RuleInfo, error) {
	if err := f.call("rules"); err != nil {
		return nil, err
	}
	var out []netlinkclient.RuleInfo
	for _, r := range f.table.Rules {
		out = append(out, netlinkclient.RuleInfo{Rule: r, Counters: f.counters[r.ID]})
	}
	return out, nil
}

func (f *fakeClient) AddRule(_ context.Context, r abi.Rule) error {
	if err := f.call("add " + r.String()); err != nil {
		return err
	}
	return f.table.Apply([]abi.Command{{Op: abi.CommandAdd, Rule: r}})
}

func (f *fakeClient) DelRule(_ context.Context, id uint16) error {
	if err := f.call("del " + strconv.Itoa(int(id))); err != nil {
		return err
	}
	return f.table.Apply([]abi.Command{{Op: abi.CommandDel, ID: id}})
}

func (f *fakeClient) Flush(context.Context) error {
	if err := f.call("flush"); err != nil {
		return err
	}
	return f.table.Apply([]abi.Command{{Op: abi.CommandFlush}})
}

func (f *fakeClient) SetPolicy(_ context.Context, ps ...abi.Policy) error {
	var names []string
	var cmds []abi.Command
	for _, p := range ps {
		names = append(names, p.String())
		cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: p})
	}
	if err := f.call("set " + strings.Join(names, ", ")); err != nil {
		return err
	}
	return f.table.Apply(cmds)
}

func (f *fakeClient) Policies(context.Context) ([]abi.Policy, error) {
	if err := f.call("policies"); err != nil {
		return nil, err
	}
	var ps []abi.Policy
	for _, h := range abi.Hooks() {
		ps = append(ps, abi.Policy{Hook: h, Action: f.table.Policies[h]})
	}
	return ps, nil
}

func (f *fakeClient) Replace(_ context.Context, ps []abi.Policy, rules []abi.Rule) error {
	if err := f.call("replace"); err != nil {
		return err
	}
	cmds := []abi.Command{{Op: abi.CommandFlush}}
	for _, p := range ps {
		cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: p})
	}
	for _, r := range rules {
		cmds = append(cmds, abi.Command{Op: abi.CommandAdd, Rule: r})
	}
	if err := f.table.Apply(cmds); err != nil {
		return err
	}
	f.replaced = &abi.RuleTable{Policies: f.table.Policies, Rules: slices.Clone(f.table.Rules)}
	return nil
}

func (f *fakeClient) Close() error {
	f.closed = true
	return nil
}

// scriptedSource is an EventSource that plays fn against the handler and
// then waits for ctx, like a Subscriber with nothing more to say.
type scriptedSource struct {
	cfg netlinkclient.SubscriberConfig
	fn  func(ctx context.Context, h netlinkclient.Handler)
}

func (s *scriptedSource) Run(ctx context.Context, h netlinkclient.Handler) error {
	s.fn(ctx, h)
	<-ctx.Done()
	return nil
}

type result struct {
	code           int
	stdout, stderr string
}

type harness struct {
	t      *testing.T
	client *fakeClient
	dialed []string
	dialFn func(family string) (Client, error)
	source *scriptedSource
	stdin  string
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, client: newFakeClient()}
	h.dialFn = func(family string) (Client, error) {
		h.dialed = append(h.dialed, family)
		return h.client, nil
	}
	return h
}

// run runs kfwctl; the context ends with the test so "events" cannot hang
// past it.
func (h *harness) run(args ...string) result {
	var stdout, stderr bytes.Buffer
	env := Env{
		Stdin: strings.NewReader(h.stdin), Stdout: &stdout, Stderr: &stderr,
		Dial: func(family string) (Client, error) { return h.dialFn(family) },
		Subscribe: func(cfg netlinkclient.SubscriberConfig) EventSource {
			h.source.cfg = cfg
			return h.source
		},
		Location: time.UTC,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := Run(ctx, args, env)
	return result{code, stdout.String(), stderr.String()}
}

func (r result) want(t *testing.T, code int, stdout, stderr string) {
	t.Helper()
	if r.code != code || r.stdout != stdout || r.stderr != stderr {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr, code, stdout, stderr)
	}
}

func TestRulesAdd(t *testing.T) {
	h := newHarness(t)
	h.run("rules", "add", "dport=22", "action=drop", "proto=6", "id=10").want(t, 0, "", "")
	if want := []string{"add id=10 action=drop proto=tcp dport=22"}; !slices.Equal(h.client.calls, want) {
		t.Errorf("calls %q, want %q", h.client.calls, want)
	}
	if !h.client.closed || !slices.Equal(h.dialed, []string{"kfw"}) {
		t.Errorf("dialed %q, closed %v", h.dialed, h.client.closed)
	}
}

// A rule the kernel would refuse is refused before anything is sent, with
// the kernel's message.
func TestRulesAddInvalid(t *testing.T) {
	h := newHarness(t)
	h.run("rules", "add", "id=10", "action=drop", "dport=22").
		want(t, ExitUsage, "", "kfwctl: dport: port range needs proto tcp or udp\n")
	h.run("rules", "add", "id=10", "action=drop", "colour=red").
		want(t, ExitUsage, "", "kfwctl: key: unknown key 'colour'\n")
	if len(h.dialed) != 0 {
		t.Error("dialed for an invalid rule")
	}
}

func TestKernelErrorsAreShownWithTheirMessage(t *testing.T) {
	h := newHarness(t)
	h.client.err = &netlinkclient.CommandError{Family: "kfw", Op: "add rule 10", Errno: unix.EINVAL,
		Message: "dport: port range needs proto tcp or udp"}
	h.run("rules", "add", "id=10", "action=drop", "proto=tcp", "dport=22").
		want(t, ExitFailure, "", "kfwctl: kfw: add rule 10: dport: port range needs proto tcp or udp (invalid argument)\n")

	h.client.err = &netlinkclient.CommandError{Family: "kfw", Op: "flush rules", Errno: unix.EPERM}
	h.run("rules", "flush").want(t, ExitFailure, "", "kfwctl: kfw: flush rules: operation not permitted\n")
}

func TestModuleNotLoaded(t *testing.T) {
	h := newHarness(t)
	h.dialFn = func(string) (Client, error) {
		return nil, errors.New(`generic netlink family "kfw" not registered: kfw module not loaded`)
	}
	h.run("stats").want(t, ExitFailure, "", "kfwctl: generic netlink family \"kfw\" not registered: kfw module not loaded\n")
}

func TestFamilyFlag(t *testing.T) {
	h := newHarness(t)
	h.run("--family", "kfw2", "rules", "flush").want(t, 0, "", "")
	if !slices.Equal(h.dialed, []string{"kfw2"}) {
		t.Errorf("dialed %q", h.dialed)
	}
}

func exampleTable(t *testing.T, c *fakeClient) {
	t.Helper()
	err := c.table.ApplyText("policy hook=forward action=drop\n" +
		"add id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input\n" +
		"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n" +
		"add id=30 action=drop proto=udp dport=5000-5999\n" +
		"add id=40 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 iif=veth0\n")
	if err != nil {
		t.Fatal(err)
	}
	c.counters[10] = netlinkclient.Counters{Packets: 310, Bytes: 25340}
	c.counters[20] = netlinkclient.Counters{Packets: 12, Bytes: 1008, Events: 12}
	c.counters[40] = netlinkclient.Counters{Packets: 3, Bytes: 312, Events: 3, Suppressed: 1}
}

// The /proc/kfw/rules example of docs/ABI.md, byte for byte.
const savedExample = "flush\n" +
	"policy hook=input action=accept\n" +
	"policy hook=forward action=drop\n" +
	"policy hook=output action=accept\n" +
	"add id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input\n" +
	"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n" +
	"add id=30 action=drop proto=udp dport=5000-5999\n" +
	"add id=40 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 iif=veth0\n"

func TestRulesList(t *testing.T) {
	h := newHarness(t)
	exampleTable(t, h.client)
	want := "" +
		"PACKETS  BYTES  EVENTS  SUPPRESSED  RULE\n" +
		"310      25340  0       0           id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input\n" +
		"12       1008   12      0           id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n" +
		"0        0      0       0           id=30 action=drop proto=udp dport=5000-5999\n" +
		"3        312    3       1           id=40 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 iif=veth0\n"
	h.run("rules", "list").want(t, 0, want, "")
	h.run("rules").want(t, 0, want, "") // list is the default
}

func TestRulesListJSON(t *testing.T) {
	h := newHarness(t)
	exampleTable(t, h.client)
	r := h.run("rules", "list", "-o", "json")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, r.stdout)
	}
	if len(got) != 4 {
		t.Fatalf("%d rules", len(got))
	}
	want20 := map[string]any{
		"id": 20.0, "action": "drop", "family": "ipv4", "proto": "tcp", "dport": "22",
		"hooks": []any{"input", "forward"}, "log": true, "rate": 100.0, "burst": 200.0,
		"packets": 12.0, "bytes": 1008.0, "events": 12.0, "suppressed": 0.0,
		"rule": "id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200",
	}
	if b1, b2 := mustJSON(got[1]), mustJSON(want20); b1 != b2 {
		t.Errorf("rule 20:\n got %s\nwant %s", b1, b2)
	}
	if hooks := got[2]["hooks"].([]any); len(hooks) != 3 {
		t.Errorf("rule 30 hooks %v, want all three", hooks)
	}
	if got[3]["src"] != "2001:db8::/32" || got[3]["iif"] != "veth0" {
		t.Errorf("rule 40: %v", got[3])
	}

	empty := newHarness(t)
	empty.run("rules", "list", "-o", "json").want(t, 0, "[]\n", "")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestRulesDel(t *testing.T) {
	h := newHarness(t)
	exampleTable(t, h.client)
	h.run("rules", "del", "10").want(t, 0, "", "")
	h.run("rules", "del", "id=20").want(t, 0, "", "")
	if !slices.Equal(h.client.calls, []string{"del 10", "del 20"}) {
		t.Errorf("calls %q", h.client.calls)
	}
	for _, bad := range []string{"0", "65536", "x", "id=", "port=1"} {
		r := h.run("rules", "del", bad)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "id must be 1..65535") {
			t.Errorf("del %q: exit %d, %q", bad, r.code, r.stderr)
		}
	}
}

func TestRulesSave(t *testing.T) {
	h := newHarness(t)
	exampleTable(t, h.client)
	h.run("rules", "save").want(t, 0, savedExample, "")
}

func TestRulesRestore(t *testing.T) {
	// What save prints, restore loads: the same table, in one Replace.
	h := newHarness(t)
	h.client.table.Policies[abi.HookOutput] = abi.ActionDrop // to be overwritten
	h.stdin = savedExample
	h.run("rules", "restore").want(t, 0, "", "")
	if h.client.replaced == nil || h.client.replaced.String() != savedExample {
		t.Fatalf("replaced with:\n%v", h.client.replaced)
	}
	if got := h.client.calls[len(h.client.calls)-1]; got != "replace" {
		t.Errorf("last call %q", got)
	}

	// From a file, with "-" meaning standard input being the default.
	f := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(f, []byte("flush\nadd id=7 action=drop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.run("rules", "restore", f).want(t, 0, "", "")
	if got := h.client.table.String(); !strings.HasSuffix(got, "policy hook=output action=accept\nadd id=7 action=drop\n") {
		t.Errorf("after file restore:\n%s", got)
	}

	// A text without flush applies to the current table.
	h.stdin = "del id=7\nadd id=8 action=accept\npolicy hook=input action=drop\n"
	h.run("rules", "restore", "-").want(t, 0, "", "")
	if got := h.client.table.String(); got != "flush\npolicy hook=input action=drop\npolicy hook=forward action=drop\n"+
		"policy hook=output action=accept\nadd id=8 action=accept\n" {
		t.Errorf("after incremental restore:\n%s", got)
	}

	// Nothing to do: nothing sent.
	calls := len(h.client.calls)
	h.stdin = "# nothing\n\n"
	h.run("rules", "restore").want(t, 0, "", "")
	if len(h.client.calls) != calls {
		t.Errorf("calls for an empty restore: %q", h.client.calls[calls:])
	}
}

func TestRulesRestoreErrors(t *testing.T) {
	h := newHarness(t)
	before := h.client.table.String()
	// The first failure is the kernel's: line 2 fails as applied before
	// line 3 is parsed.
	h.stdin = "flush\nadd id=1 action=drop\nadd id=1 action=drop\nbogus\n"
	h.run("rules", "restore").want(t, ExitFailure, "", "kfwctl: rules restore: standard input: line 3: id: rule already exists\n")
	h.stdin = "flush\nadd id=1 action=drop dport=22\n"
	h.run("rules", "restore").want(t, ExitFailure, "", "kfwctl: rules restore: standard input: line 2: dport: port range needs proto tcp or udp\n")
	if h.client.table.String() != before || slices.Contains(h.client.calls, "replace") {
		t.Error("a failed restore changed the table")
	}
	r := h.run("rules", "restore", filepath.Join(t.TempDir(), "missing"))
	if r.code != ExitFailure || !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("missing file: %d %q", r.code, r.stderr)
	}
}

func TestPolicy(t *testing.T) {
	h := newHarness(t)
	h.run("policy", "forward", "drop").want(t, 0, "", "")
	h.run("policy").want(t, 0, "policy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n", "")
	h.run("policy", "prerouting", "drop").want(t, ExitUsage, "", "kfwctl: policy: hook must be input, forward or output, not \"prerouting\"\n")
	h.run("policy", "input", "reject").want(t, ExitUsage, "", "kfwctl: policy: action must be accept or drop, not \"reject\"\n")
	h.run("policy", "input").want(t, ExitUsage, "", "kfwctl: policy takes no argument or HOOK ACTION\n")
}

func exampleStats() abi.ModuleStats {
	return abi.ModuleStats{
		ABIVersion: 1, Version: "0.1.0", Instance: 0x5f3a9c0d12e4b7a8, Generation: 7, Rules: 4, MaxRules: 4096,
		EventsGenerated: 1200, EventsSuppressed: 35,
		EventsMessagesSent: 58,
	}
}

// The /proc/kfw/stats example of docs/ABI.md, byte for byte.
func TestStats(t *testing.T) {
	h := newHarness(t)
	h.client.stats = exampleStats()
	h.run("stats").want(t, 0, "abi_version 1\nversion 0.1.0\ninstance 5f3a9c0d12e4b7a8\ngeneration 7\nrules 4\nmax_rules 4096\n"+
		"events_generated 1200\nevents_suppressed 35\nevents_queue_overflows 0\nevents_messages_sent 58\n"+
		"events_no_listener 0\nevents_alloc_failures 0\nevents_nobufs 0\n", "")

	r := h.run("stats", "-o", "json")
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("%v, exit %d: %s", err, r.code, r.stdout)
	}
	if got["instance"] != "5f3a9c0d12e4b7a8" || got["events_generated"] != 1200.0 || len(got) != 13 {
		t.Errorf("json stats %v", got)
	}
}

func TestUsage(t *testing.T) {
	h := newHarness(t)
	if r := h.run(); r.code != ExitUsage || !strings.Contains(r.stderr, "usage: kfwctl") {
		t.Errorf("no arguments: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := h.run("--help"); r.code != 0 || !strings.Contains(r.stdout, "rules restore") {
		t.Errorf("--help: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, args := range [][]string{
		{"bogus"},
		{"rules", "bogus"},
		{"rules", "add"},
		{"rules", "del"},
		{"rules", "del", "1", "2"},
		{"stats", "-o", "yaml"},
		{"events", "--count", "many"},
		{"--no-such-flag", "stats"},
	} {
		if r := h.run(args...); r.code != ExitUsage || !strings.HasPrefix(r.stderr, "kfwctl: ") {
			t.Errorf("%q: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if len(h.dialed) != 0 {
		t.Errorf("usage errors dialed %q", h.dialed)
	}
}

func TestEvents(t *testing.T) {
	ts := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC).UnixNano()
	drop := netlinkclient.Event{
		Type: abi.EventDrop, Rule: 20, Family: abi.FamilyIPv4, Hook: abi.HookInput, Proto: 6,
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Sport: 40000, Dport: 22,
		Iif: 2, Len: 60, Timestamp: ts, CPU: 1, Seq: 5, Instance: 0x5f3a9c0d12e4b7a8,
	}
	hit := netlinkclient.Event{
		Type: abi.EventHit, Rule: 10, Family: abi.FamilyIPv6, Hook: abi.HookForward, Proto: 17,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), Sport: 53, Dport: 5353,
		Iif: 3, Oif: 4, Len: 80, Timestamp: ts, Suppressed: 9, Instance: 0x5f3a9c0d12e4b7a8,
	}
	policy := netlinkclient.Event{
		Type: abi.EventDrop, Rule: 0, Family: abi.FamilyIPv4, Hook: abi.HookOutput, Proto: 1,
		Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("10.0.0.1"), Oif: 2, Len: 84,
		Timestamp: ts, Instance: 0x5f3a9c0d12e4b7a8,
	}
	script := func(ctx context.Context, h netlinkclient.Handler) {
		h.HandleState(netlinkclient.State{Err: errors.New("kfw module not loaded")})
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 30})
		h.HandleEvent(&drop)
		h.HandleLoss(0x5f3a9c0d12e4b7a8, 1, 8)
		h.HandleEvent(&hit)
		h.HandleOverrun()
		h.HandleDecodeError(errors.New("batch: truncated attribute"))
		h.HandleEvent(&policy)
		h.HandleState(netlinkclient.State{Subscribed: true, FamilyID: 31, Resubscribed: true})
	}

	h := newHarness(t)
	h.source = &scriptedSource{fn: func(ctx context.Context, hd netlinkclient.Handler) {
		script(ctx, hd)
		// Let the command end as if interrupted.
		hd.(*eventPrinter).stop()
	}}
	h.run("events", "--read-buffer", "1048576").want(t, 0,
		"2026-05-01T12:00:00.123456Z drop rule=20 ipv4 input tcp 10.0.0.1:40000 -> 10.0.0.2:22 iif=2 len=60\n"+
			"lost 8 events on cpu 1 (instance 5f3a9c0d12e4b7a8)\n"+
			"2026-05-01T12:00:00.123456Z hit rule=10 ipv6 forward udp [2001:db8::1]:53 -> [2001:db8::2]:5353 iif=3 oif=4 len=80 suppressed=9\n"+
			"overrun: receive buffer full, the kernel dropped events (count follows)\n"+
			"2026-05-01T12:00:00.123456Z drop policy ipv4 output icmp 10.0.0.2 -> 10.0.0.1 oif=2 len=84\n",
		"kfwctl: not subscribed: kfw module not loaded\n"+
			"kfwctl: subscribed to kfw events (family id 30)\n"+
			"kfwctl: skipped a message: batch: truncated attribute\n"+
			"kfwctl: resubscribed to kfw events (family id 31)\n")
	if h.source.cfg.Family != "kfw" || h.source.cfg.ReadBuffer != 1048576 || h.source.cfg.Logger == nil {
		t.Errorf("subscriber config %+v", h.source.cfg)
	}

	// JSON: one object per line, losses and overruns included.
	h.run("events", "-o", "json", "--count", "3").want(t, 0,
		`{"time":"2026-05-01T12:00:00.123456789Z","type":"drop","rule":20,"family":"ipv4","hook":"input","proto":"tcp","src":"10.0.0.1","sport":40000,"dst":"10.0.0.2","dport":22,"iif":2,"len":60,"suppressed":0,"cpu":1,"seq":5,"instance":"5f3a9c0d12e4b7a8"}`+"\n"+
			`{"type":"loss","lost":8,"cpu":1,"instance":"5f3a9c0d12e4b7a8"}`+"\n"+
			`{"time":"2026-05-01T12:00:00.123456789Z","type":"hit","rule":10,"family":"ipv6","hook":"forward","proto":"udp","src":"2001:db8::1","sport":53,"dst":"2001:db8::2","dport":5353,"iif":3,"oif":4,"len":80,"suppressed":9,"cpu":0,"seq":0,"instance":"5f3a9c0d12e4b7a8"}`+"\n"+
			`{"type":"overrun"}`+"\n"+
			`{"time":"2026-05-01T12:00:00.123456789Z","type":"drop","rule":0,"family":"ipv4","hook":"output","proto":"icmp","src":"10.0.0.2","dst":"10.0.0.1","oif":2,"len":84,"suppressed":0,"cpu":0,"seq":0,"instance":"5f3a9c0d12e4b7a8"}`+"\n",
		"kfwctl: not subscribed: kfw module not loaded\n"+
			"kfwctl: subscribed to kfw events (family id 30)\n"+
			"kfwctl: skipped a message: batch: truncated attribute\n"+
			"kfwctl: resubscribed to kfw events (family id 31)\n")
}

// --count ends the command after that many events, the rest unprinted.
func TestEventsCount(t *testing.T) {
	ev := netlinkclient.Event{Type: abi.EventDrop, Rule: 1, Family: abi.FamilyIPv4, Src: netip.MustParseAddr("10.0.0.1"),
		Dst: netip.MustParseAddr("10.0.0.2"), Proto: 6, Sport: 1, Dport: 2, Len: 40}
	h := newHarness(t)
	h.source = &scriptedSource{fn: func(ctx context.Context, hd netlinkclient.Handler) {
		for i := 0; i < 5; i++ {
			ev.Seq = uint64(i)
			hd.HandleEvent(&ev)
		}
		if ctx.Err() == nil {
			t.Error("context not cancelled after --count events")
		}
	}}
	r := h.run("events", "-n", "2")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestEventsWriteError(t *testing.T) {
	var stderr bytes.Buffer
	src := &scriptedSource{fn: func(_ context.Context, hd netlinkclient.Handler) {
		hd.HandleEvent(&netlinkclient.Event{Type: abi.EventDrop})
	}}
	code := Run(context.Background(), []string{"events"}, Env{
		Stdout: failingWriter{}, Stderr: &stderr,
		Subscribe: func(netlinkclient.SubscriberConfig) EventSource { return src },
	})
	if code != ExitFailure || stderr.String() != "kfwctl: write events: broken pipe\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
