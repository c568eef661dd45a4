package netlinkclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
)

const fakeFamilyID = 0x22

// fakeModule answers kfw commands the way docs/ABI.md says the module does,
// on an nltest socket: rules go through abi.RuleTable (the same validation
// as the kernel), refusals come back as NLMSG_ERROR with extended-ack TLVs.
type fakeModule struct {
	t        *testing.T
	registry []genetlink.Family
	table    *abi.RuleTable
	counters map[uint16]Counters
	stats    abi.ModuleStats
	requests []genetlink.Message // every kfw request, in order
	// failNext, when set, refuses the next kfw command with this errno,
	// message and attribute offset.
	failNext *CommandError
}

func newFakeModule(t *testing.T) *fakeModule {
	return &fakeModule{
		t:        t,
		registry: []genetlink.Family{{ID: fakeFamilyID, Version: abi.GenlVersion, Name: abi.GenlName}},
		table:    abi.NewRuleTable(),
		counters: map[uint16]Counters{},
		stats:    abi.ModuleStats{ABIVersion: abi.Version, Version: "0.1.0", Instance: 0x5f3a9c0d12e4b7a8, MaxRules: 4096},
	}
}

func (m *fakeModule) client() (*Client, error) {
	return newClient(genetlink.NewConn(nltest.Dial(m.serve)), abi.GenlName)
}

func (m *fakeModule) mustClient() *Client {
	m.t.Helper()
	c, err := m.client()
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

func (m *fakeModule) serve(reqs []netlink.Message) ([]netlink.Message, error) {
	req := reqs[0]
	var gm genetlink.Message
	if err := gm.UnmarshalBinary(req.Data); err != nil {
		return nil, err
	}
	switch req.Header.Type {
	case ctrlFamilyID:
		// Only the dump: GetFamily would make the kernel load the module.
		if gm.Header.Command != unix.CTRL_CMD_GETFAMILY || req.Header.Flags != netlink.Request|netlink.Dump {
			return errorReply(req, unix.EINVAL, "fake: only ListFamilies is allowed", 0), nil
		}
		var out []netlink.Message
		for _, f := range m.registry {
			out = append(out, reply(req, unix.CTRL_CMD_NEWFAMILY, encodeFamily(f)))
		}
		return nltest.Multipart(append(out, doneReply(req)))
	case fakeFamilyID:
		m.requests = append(m.requests, gm)
		if f := m.failNext; f != nil {
			m.failNext = nil
			return errorReply(req, f.Errno, f.Message, uint32(f.Offset)), nil
		}
		return m.command(req, gm)
	}
	return errorReply(req, unix.ENOENT, "", 0), nil
}

func (m *fakeModule) command(req netlink.Message, gm genetlink.Message) ([]netlink.Message, error) {
	if gm.Header.Version != abi.GenlVersion {
		return errorReply(req, unix.EINVAL, "fake: bad version", 0), nil
	}
	admin := req.Header.Flags == netlink.Request|netlink.Acknowledge
	switch gm.Header.Command {
	case abi.CmdGetStats:
		ae := netlink.NewAttributeEncoder()
		ae.Nested(abi.AttrStats, func(n *netlink.AttributeEncoder) error {
			st := m.stats
			n.Uint32(abi.StatsAttrABIVersion, st.ABIVersion)
			n.String(abi.StatsAttrVersion, st.Version)
			n.Uint64(abi.StatsAttrInstance, st.Instance)
			n.Uint64(abi.StatsAttrGeneration, st.Generation)
			n.Uint32(abi.StatsAttrRules, uint32(len(m.table.Rules)))
			n.Uint32(abi.StatsAttrMaxRules, st.MaxRules)
			for i, v := range []uint64{st.EventsGenerated, st.EventsSuppressed, st.EventsQueueOverflows,
				st.EventsMessagesSent, st.EventsNoListener, st.EventsAllocFailures, st.EventsNobufs} {
				n.Uint64(uint16(abi.StatsAttrEventsGenerated+i), v)
			}
			n.Uint64(99, 1) // a stats attribute from the future
			return nil
		})
		return []netlink.Message{reply(req, abi.CmdGetStats, mustEncode(ae))}, nil
	case abi.CmdGetRule:
		var out []netlink.Message
		for _, r := range m.table.Rules {
			ae := netlink.NewAttributeEncoder()
			encodeRule(ae, r)
			b := mustEncode(ae)
			// Counters go inside the rule nest: rebuild it with them.
			c := m.counters[r.ID]
			b = appendToNest(b, func(n *netlink.AttributeEncoder) {
				n.Uint64(abi.RuleAttrPackets, c.Packets)
				n.Uint64(abi.RuleAttrBytes, c.Bytes)
				n.Uint64(abi.RuleAttrEvents, c.Events)
				n.Uint64(abi.RuleAttrSuppressed, c.Suppressed)
			})
			out = append(out, reply(req, abi.CmdGetRule, b))
		}
		return nltest.Multipart(append(out, doneReply(req)))
	case abi.CmdGetPolicy:
		ae := netlink.NewAttributeEncoder()
		for _, h := range abi.Hooks() {
			encodePolicy(ae, abi.Policy{Hook: h, Action: m.table.Policies[h]})
		}
		return []netlink.Message{reply(req, abi.CmdGetPolicy, mustEncode(ae))}, nil
	}
	if !admin {
		return errorReply(req, unix.EINVAL, "fake: mutating command without ack flag", 0), nil
	}
	cmds, err := requestCommands(gm)
	if err != nil {
		return errorReply(req, unix.EINVAL, err.Error(), 0), nil
	}
	if err := m.table.Apply(cmds); err != nil {
		errno := unix.EINVAL
		switch {
		case strings.HasSuffix(err.Error(), "rule already exists"):
			errno = unix.EEXIST
		case strings.HasSuffix(err.Error(), "more than max_rules rules"):
			errno = unix.ENOSPC
		case strings.HasSuffix(err.Error(), "no such rule"):
			errno = unix.ENOENT
		}
		return errorReply(req, errno, err.Error(), 0), nil
	}
	m.stats.Generation++
	return ackReply(req), nil
}

// requestCommands turns a mutating request into rule-language commands.
func requestCommands(gm genetlink.Message) ([]abi.Command, error) {
	var cmds []abi.Command
	if gm.Header.Command == abi.CmdFlush || gm.Header.Command == abi.CmdReplace {
		cmds = append(cmds, abi.Command{Op: abi.CommandFlush})
	}
	policies, err := nestedOf(gm.Data, abi.AttrPolicy)
	if err != nil {
		return nil, err
	}
	for _, b := range policies {
		p, err := decodePolicy(b)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, abi.Command{Op: abi.CommandPolicy, Policy: p})
	}
	rules, err := nestedOf(gm.Data, abi.AttrRule)
	if err != nil {
		return nil, err
	}
	for _, b := range rules {
		ri, err := decodeRule(b)
		if err != nil {
			return nil, err
		}
		if gm.Header.Command == abi.CmdDelRule {
			cmds = append(cmds, abi.Command{Op: abi.CommandDel, ID: ri.Rule.ID})
		} else {
			cmds = append(cmds, abi.Command{Op: abi.CommandAdd, Rule: ri.Rule})
		}
	}
	return cmds, nil
}

func mustEncode(ae *netlink.AttributeEncoder) []byte {
	b, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// appendToNest adds attributes at the end of the single nest in b.
func appendToNest(b []byte, add func(*netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	add(ae)
	extra := mustEncode(ae)
	out := append(slices.Clone(b), extra...)
	binary.NativeEndian.PutUint16(out, uint16(len(out)))
	return out
}

func reply(req netlink.Message, cmd uint8, data []byte) netlink.Message {
	b, _ := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: abi.GenlVersion}, Data: data}.MarshalBinary()
	return netlink.Message{Header: netlink.Header{Type: req.Header.Type, Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: b}
}

func doneReply(req netlink.Message) netlink.Message {
	return netlink.Message{Header: netlink.Header{Type: netlink.Done, Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: make([]byte, 4)}
}

func ackReply(req netlink.Message) []netlink.Message {
	return errorReply(req, 0, "", 0)
}

// errorReply builds NLMSG_ERROR as netlink_ack does without NETLINK_CAP_ACK:
// errno, the request echoed, then the extended-ack TLVs.
func errorReply(req netlink.Message, errno unix.Errno, msg string, offset uint32) []netlink.Message {
	data := binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))
	echo, err := req.MarshalBinary()
	if err != nil {
		panic(err)
	}
	if errno == 0 {
		echo = echo[:16] // a success ack is always capped
	}
	data = append(data, echo...)
	flags := netlink.HeaderFlags(0)
	if msg != "" || offset != 0 {
		ae := netlink.NewAttributeEncoder()
		if msg != "" {
			ae.String(unix.NLMSGERR_ATTR_MSG, msg)
		}
		if offset != 0 {
			ae.Uint32(unix.NLMSGERR_ATTR_OFFS, offset)
		}
		data = append(data, mustEncode(ae)...)
		flags |= netlink.AcknowledgeTLVs
	}
	return []netlink.Message{{
		Header: netlink.Header{Type: netlink.Error, Flags: flags, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   data,
	}}
}

func TestDialUsesListFamilies(t *testing.T) {
	m := newFakeModule(t)
	m.registry = append([]genetlink.Family{{ID: 0x10, Version: 2, Name: "nlctrl"}, {ID: 0x15, Version: 1, Name: "acpi_event"}}, m.registry...)
	c := m.mustClient()
	if c.FamilyID() != fakeFamilyID {
		t.Errorf("family id %#x, want %#x", c.FamilyID(), fakeFamilyID)
	}
}

func TestDialModuleNotLoaded(t *testing.T) {
	m := newFakeModule(t)
	m.registry = []genetlink.Family{{ID: 0x10, Version: 2, Name: "nlctrl"}}
	_, err := m.client()
	if !errors.Is(err, ErrModuleNotLoaded) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrModuleNotLoaded", err)
	}
	if want := `generic netlink family "kfw" not registered: kfw module not loaded`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestDialUnknownVersion(t *testing.T) {
	m := newFakeModule(t)
	m.registry[0].Version = 2
	if _, err := m.client(); !errors.Is(err, abi.ErrUnsupportedVersion) {
		t.Fatalf("got %v, want ErrUnsupportedVersion", err)
	}
}

func TestClientStats(t *testing.T) {
	m := newFakeModule(t)
	m.stats = abi.ModuleStats{
		ABIVersion: 1, Version: "0.1.0", Instance: 0x5f3a9c0d12e4b7a8, Generation: 7, MaxRules: 4096,
		EventsGenerated: 1200, EventsSuppressed: 35, EventsQueueOverflows: 1, EventsMessagesSent: 58,
		EventsNoListener: 2, EventsAllocFailures: 3, EventsNobufs: 4,
	}
	c := m.mustClient()
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := m.stats; st != want {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}

	m.stats.ABIVersion = 2
	if _, err := c.Stats(context.Background()); !errors.Is(err, abi.ErrUnsupportedVersion) {
		t.Errorf("ABI version 2: got %v, want ErrUnsupportedVersion", err)
	}
}

func fullRule() abi.Rule {
	return abi.Rule{
		ID: 20, Action: abi.ActionDrop, Family: abi.FamilyIPv6, Hooks: 1<<abi.HookInput | 1<<abi.HookForward,
		Proto: 6, ProtoSet: true,
		Src: netip.MustParsePrefix("2001:db8::/32"), Dst: netip.MustParsePrefix("2001:db8:1::1/128"),
		Sport: abi.PortRange{Min: 1024, Max: 65535, Set: true}, Dport: abi.PortRange{Min: 22, Max: 22, Set: true},
		Iif: "veth0", Oif: "veth1", Log: true, Rate: 100, Burst: 200,
	}
}

// The wire format of a rule, checked attribute by attribute against the
// numbers of docs/ABI.md rather than against our own decoder.
func TestAddRuleWireFormat(t *testing.T) {
	m := newFakeModule(t)
	c := m.mustClient()
	if err := c.AddRule(context.Background(), fullRule()); err != nil {
		t.Fatal(err)
	}
	req := m.requests[0]
	if req.Header.Command != 3 || req.Header.Version != 1 {
		t.Errorf("command %d version %d, want 3 and 1", req.Header.Command, req.Header.Version)
	}
	ad, err := netlink.NewAttributeDecoder(req.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !ad.Next() || ad.Type() != 2 || ad.TypeFlags()&netlink.Nested == 0 {
		t.Fatalf("first attribute %d (flags %#x), want nested KFW_A_RULE (2)", ad.Type(), ad.TypeFlags())
	}
	got := map[uint16][]byte{}
	ad.Nested(func(n *netlink.AttributeDecoder) error {
		for n.Next() {
			got[n.Type()] = n.Bytes()
		}
		return nil
	})
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	want := map[uint16][]byte{
		2:  ne.AppendUint32(nil, 20),
		3:  {2},
		4:  {10},
		5:  ne.AppendUint32(nil, 3),
		6:  {6},
		7:  netip.MustParseAddr("2001:db8::").AsSlice(),
		8:  {32},
		9:  netip.MustParseAddr("2001:db8:1::1").AsSlice(),
		10: {128},
		11: ne.AppendUint16(nil, 1024),
		12: ne.AppendUint16(nil, 65535),
		13: ne.AppendUint16(nil, 22),
		14: ne.AppendUint16(nil, 22),
		15: []byte("veth0\x00"),
		16: []byte("veth1\x00"),
		17: {1},
		18: ne.AppendUint32(nil, 100),
		19: ne.AppendUint32(nil, 200),
	}
	for typ, w := range want {
		if !slices.Equal(got[typ], w) {
			t.Errorf("attribute %d: % x, want % x", typ, got[typ], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d attributes, want %d", len(got), len(want))
	}

	// A rule of defaults sends only id and action.
	if err := c.AddRule(context.Background(), abi.Rule{ID: 1, Action: abi.ActionAccept, Hooks: abi.HookMaskAll}); err != nil {
		t.Fatal(err)
	}
	rules, _ := nestedOf(m.requests[1].Data, abi.AttrRule)
	ad, _ = netlink.NewAttributeDecoder(rules[0])
	var types []uint16
	for ad.Next() {
		types = append(types, ad.Type())
	}
	if !slices.Equal(types, []uint16{abi.RuleAttrID, abi.RuleAttrAction}) {
		t.Errorf("default rule sends attributes %v", types)
	}
}

func TestRuleRoundTrip(t *testing.T) {
	for _, text := range []string{
		"id=1 action=accept",
		"id=65535 action=drop family=ipv4 proto=udp src=10.0.0.0/8 dst=0.0.0.0/0 sport=53 dport=1-2 hooks=output oif=x rate=5 burst=5",
		"id=3 action=drop proto=0",
		"id=4 action=drop src=::ffff:10.0.0.0/104 iif=eth0 hooks=input,forward log=1",
	} {
		r, err := abi.ParseRule(strings.Fields(text))
		if err != nil {
			t.Fatal(err)
		}
		ae := netlink.NewAttributeEncoder()
		encodeRule(ae, r)
		nests, err := nestedOf(mustEncode(ae), abi.AttrRule)
		if err != nil || len(nests) != 1 {
			t.Fatalf("%q: %v", text, err)
		}
		ri, err := decodeRule(nests[0])
		if err != nil || ri.Rule != r {
			t.Errorf("%q: decoded %+v, %v", text, ri.Rule, err)
		}
	}
	roundTrip := fullRule()
	ae := netlink.NewAttributeEncoder()
	encodeRule(ae, roundTrip)
	nests, _ := nestedOf(mustEncode(ae), abi.AttrRule)
	if ri, err := decodeRule(nests[0]); err != nil || ri.Rule != roundTrip {
		t.Errorf("full rule: decoded %+v, %v", ri.Rule, err)
	}
}

// The kernel may leave out the MAX, BURST and PLEN attributes: their
// defaults apply.
func TestDecodeRuleDefaults(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(abi.RuleAttrID, 9)
	ae.Uint8(abi.RuleAttrAction, uint8(abi.ActionDrop))
	ae.Uint8(abi.RuleAttrProto, 17)
	ae.Bytes(abi.RuleAttrSrc, []byte{192, 0, 2, 1})
	ae.Uint16(abi.RuleAttrDportMin, 53)
	ae.Uint32(abi.RuleAttrRate, 10)
	ae.Uint64(abi.RuleAttrPackets, 5)
	ae.Uint32(200, 1) // unknown
	ri, err := decodeRule(mustEncode(ae))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ri.Rule.String(), "id=9 action=drop proto=udp src=192.0.2.1/32 dport=53 rate=10 burst=10"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if ri.Counters.Packets != 5 {
		t.Errorf("counters %+v", ri.Counters)
	}
}

func TestDecodeRuleMalformed(t *testing.T) {
	base := func(ae *netlink.AttributeEncoder) {
		ae.Uint32(abi.RuleAttrID, 9)
		ae.Uint8(abi.RuleAttrAction, 2)
	}
	tests := []struct {
		name string
		add  func(*netlink.AttributeEncoder)
	}{
		{"no id", func(ae *netlink.AttributeEncoder) { ae.Uint8(abi.RuleAttrAction, 2) }},
		{"id 0", func(ae *netlink.AttributeEncoder) { ae.Uint32(abi.RuleAttrID, 0) }},
		{"id beyond 65535", func(ae *netlink.AttributeEncoder) { ae.Uint32(abi.RuleAttrID, 70000) }},
		{"id of 2 bytes", func(ae *netlink.AttributeEncoder) { ae.Uint16(abi.RuleAttrID, 1) }},
		{"action of 4 bytes", func(ae *netlink.AttributeEncoder) { base(ae); ae.Uint32(abi.RuleAttrAction, 2) }},
		{"address of 5 bytes", func(ae *netlink.AttributeEncoder) { base(ae); ae.Bytes(abi.RuleAttrSrc, make([]byte, 5)) }},
		{"plen beyond 32", func(ae *netlink.AttributeEncoder) {
			base(ae)
			ae.Bytes(abi.RuleAttrDst, make([]byte, 4))
			ae.Uint8(abi.RuleAttrDstPlen, 33)
		}},
		{"plen without address", func(ae *netlink.AttributeEncoder) { base(ae); ae.Uint8(abi.RuleAttrSrcPlen, 8) }},
		{"counter of 4 bytes", func(ae *netlink.AttributeEncoder) { base(ae); ae.Uint32(abi.RuleAttrBytes, 1) }},
	}
	for _, tt := range tests {
		ae := netlink.NewAttributeEncoder()
		tt.add(ae)
		if _, err := decodeRule(mustEncode(ae)); err == nil {
			t.Errorf("%s: decoded", tt.name)
		}
	}
	if _, err := decodeRule([]byte{9, 0, 2}); err == nil {
		t.Error("truncated attribute decoded")
	}
}

func TestClientRulesDumpAcrossMessages(t *testing.T) {
	m := newFakeModule(t)
	c := m.mustClient()
	ctx := context.Background()
	// 300 rules: the fake returns the dump over several Receive calls, as
	// the kernel does when a dump outgrows one skb.
	var rules []abi.Rule
	for id := 300; id >= 1; id-- {
		r := abi.Rule{ID: uint16(id), Action: abi.ActionDrop, Hooks: abi.HookMaskAll, ProtoSet: true, Proto: 17,
			Dport: abi.PortRange{Min: uint16(id), Max: uint16(id + 10), Set: true}}
		rules = append(rules, r)
		m.counters[r.ID] = Counters{Packets: uint64(id), Bytes: uint64(id) * 100, Events: 1, Suppressed: 2}
	}
	if err := c.Replace(ctx, nil, rules); err != nil {
		t.Fatal(err)
	}
	got, err := c.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 {
		t.Fatalf("dumped %d rules, want 300", len(got))
	}
	for i, ri := range got {
		id := uint16(i + 1)
		want := rules[len(rules)-1-i]
		if ri.Rule != want || ri.Counters != (Counters{Packets: uint64(id), Bytes: uint64(id) * 100, Events: 1, Suppressed: 2}) {
			t.Fatalf("rule %d: %+v", i, ri)
		}
	}

	// An empty table dumps nothing.
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Rules(ctx); err != nil || len(got) != 0 {
		t.Errorf("empty dump: %v, %v", got, err)
	}
}

func TestClientCommands(t *testing.T) {
	m := newFakeModule(t)
	c := m.mustClient()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddRule(ctx, fullRule()))
	must(c.AddRule(ctx, abi.Rule{ID: 5, Action: abi.ActionAccept, Hooks: abi.HookMaskAll}))
	must(c.SetPolicy(ctx, abi.Policy{Hook: abi.HookForward, Action: abi.ActionDrop}, abi.Policy{Hook: abi.HookOutput, Action: abi.ActionDrop}))
	must(c.DelRule(ctx, 5))

	pols, err := c.Policies(ctx)
	must(err)
	want := []abi.Policy{{Hook: abi.HookInput, Action: abi.ActionAccept}, {Hook: abi.HookForward, Action: abi.ActionDrop}, {Hook: abi.HookOutput, Action: abi.ActionDrop}}
	if !slices.Equal(pols, want) {
		t.Errorf("policies %v, want %v", pols, want)
	}
	if got := m.table.String(); got != "flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=drop\n"+
		"add "+fullRule().String()+"\n" {
		t.Errorf("table after commands:\n%s", got)
	}

	// Replace: hooks not named keep their policy.
	must(c.Replace(ctx, []abi.Policy{{Hook: abi.HookOutput, Action: abi.ActionAccept}}, []abi.Rule{{ID: 7, Action: abi.ActionDrop, Hooks: abi.HookMaskAll}}))
	if got := m.table.String(); got != "flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\nadd id=7 action=drop\n" {
		t.Errorf("table after replace:\n%s", got)
	}
	must(c.Flush(ctx))
	if len(m.table.Rules) != 0 {
		t.Error("flush left rules")
	}

	cmds := make([]uint8, len(m.requests))
	for i, r := range m.requests {
		cmds[i] = r.Header.Command
	}
	if want := []uint8{3, 3, 6, 4, 7, 8, 5}; !slices.Equal(cmds, want) {
		t.Errorf("commands sent %v, want %v", cmds, want)
	}
}

func TestClientErrors(t *testing.T) {
	m := newFakeModule(t)
	c := m.mustClient()
	ctx := context.Background()
	dport := abi.Rule{ID: 10, Action: abi.ActionDrop, Hooks: abi.HookMaskAll, Dport: abi.PortRange{Min: 22, Max: 22, Set: true}}

	// The kernel's extended ack message and errno, typed.
	m.failNext = &CommandError{Errno: unix.EINVAL, Message: "dport: port range needs proto tcp or udp", Offset: 60}
	err := c.AddRule(ctx, dport)
	if want := "kfw: add rule 10: dport: port range needs proto tcp or udp (invalid argument)"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Errno != unix.EINVAL || ce.Offset != 60 || ce.Op != "add rule 10" {
		t.Errorf("CommandError %+v", ce)
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Error("errors.Is(err, EINVAL) is false")
	}

	// Through the fake's validation (no injected failure).
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddRule(ctx, abi.Rule{ID: 10, Action: abi.ActionDrop, Hooks: abi.HookMaskAll}))
	err = c.AddRule(ctx, abi.Rule{ID: 10, Action: abi.ActionAccept, Hooks: abi.HookMaskAll})
	if !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "id: rule already exists") {
		t.Errorf("duplicate add: %v", err)
	}
	err = c.DelRule(ctx, 11)
	if want := "kfw: delete rule 11: id: no such rule (no such file or directory)"; err == nil || err.Error() != want || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("delete of a missing rule: %v", err)
	}

	// No extended ack: the errno alone.
	m.failNext = &CommandError{Errno: unix.EPERM}
	err = c.Flush(ctx)
	if want := "kfw: flush rules: operation not permitted"; err == nil || err.Error() != want || !errors.Is(err, os.ErrPermission) {
		t.Errorf("got %v, want %q", err, want)
	}
	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"stats", func() error { _, err := c.Stats(ctx); return err }},
		{"rules", func() error { _, err := c.Rules(ctx); return err }},
		{"policies", func() error { _, err := c.Policies(ctx); return err }},
		{"set policy", func() error { return c.SetPolicy(ctx, abi.Policy{Hook: abi.HookInput, Action: abi.ActionDrop}) }},
		{"replace", func() error { return c.Replace(ctx, nil, nil) }},
	} {
		m.failNext = &CommandError{Errno: unix.ENOSPC, Message: "table full"}
		if err := op.run(); !errors.Is(err, unix.ENOSPC) || !strings.HasSuffix(err.Error(), ": table full (no space left on device)") {
			t.Errorf("%s: %v", op.name, err)
		}
	}
}

func TestClientContext(t *testing.T) {
	m := newFakeModule(t)
	c := m.mustClient()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Flush(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if len(m.requests) != 0 {
		t.Error("a cancelled command was sent")
	}
}

func TestCommandErrorNonErrno(t *testing.T) {
	err := commandError("kfw", "get stats", fmt.Errorf("boom"))
	if err.Error() != "kfw: get stats: boom" {
		t.Errorf("got %q", err)
	}
}
