//go:build labvm

package netlink

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// attrs builds request attributes byte by byte (so that requests no client
// would send can be built too) and remembers where named attributes start,
// to check the offset extended ack points at.
type attrs struct {
	b     []byte
	marks map[string]int
}

func newAttrs() *attrs { return &attrs{marks: map[string]int{}} }

func (a *attrs) put(name string, typ uint16, data []byte) *attrs {
	if name != "" {
		a.marks[name] = len(a.b)
	}
	hdr := make([]byte, 4)
	binary.NativeEndian.PutUint16(hdr, uint16(4+len(data)))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	a.b = append(append(a.b, hdr...), data...)
	for len(a.b)%4 != 0 {
		a.b = append(a.b, 0)
	}
	return a
}

func (a *attrs) u8(name string, typ uint16, v uint8) *attrs { return a.put(name, typ, []byte{v}) }

func (a *attrs) u16(name string, typ uint16, v uint16) *attrs {
	return a.put(name, typ, binary.NativeEndian.AppendUint16(nil, v))
}

func (a *attrs) u32(name string, typ uint16, v uint32) *attrs {
	return a.put(name, typ, binary.NativeEndian.AppendUint32(nil, v))
}

func (a *attrs) str(name string, typ uint16, s string) *attrs {
	return a.put(name, typ, append([]byte(s), 0))
}

// nest adds in as a nested attribute; in's marks become a's.
func (a *attrs) nest(name string, typ uint16, in *attrs) *attrs {
	for k, v := range in.marks {
		a.marks[k] = len(a.b) + 4 + v
	}
	return a.put(name, typ|unix.NLA_F_NESTED, in.b)
}

// rule is a KFW_A_RULE nest; id and action first, the rest from fn.
func rule(id uint32, action abi.Action, fn func(r *attrs)) *attrs {
	r := newAttrs().u32("id", abi.RuleAttrID, id).u8("action", abi.RuleAttrAction, uint8(action))
	if fn != nil {
		fn(r)
	}
	return r
}

func ruleMsg(r *attrs) *attrs { return newAttrs().nest("rule", abi.AttrRule, r) }

// Offsets of extended ack count from the netlink header.
const genlRequestHeaders = unix.NLMSG_HDRLEN + unix.GENL_HDRLEN

type ackCase struct {
	name  string
	cmd   uint8
	msg   *attrs
	errno unix.Errno
	text  string // the whole extended ack message
	at    string // the mark extended ack points at; "" = none
}

// TestCommandErrors sends every mutating command bad input and checks the
// errno, the extended ack message (which names the field), the attribute
// it points at, and that neither the table nor the generation changed.
func TestCommandErrors(t *testing.T) {
	labtest.LoadModule(t, "max_rules=8")
	writeRules(t, "add id=1 action=drop proto=udp dport=9 hooks=output", "policy hook=forward action=drop")
	cl := labtest.DialNetlink(t)
	conn, err := genetlink.Dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
		t.Fatal(err)
	}

	v4 := []byte{10, 0, 0, 1}
	v6 := make([]byte, 16)
	v6[0], v6[1] = 0x20, 0x01
	with := func(fn func(r *attrs)) *attrs { return ruleMsg(rule(50, abi.ActionDrop, fn)) }
	policy := func(hook, action int) *attrs {
		p := newAttrs()
		if hook >= 0 {
			p.u8("hook", abi.PolicyAttrHook, uint8(hook))
		}
		if action >= 0 {
			p.u8("action", abi.PolicyAttrAction, uint8(action))
		}
		return p
	}
	udp := func(r *attrs) { r.u8("proto", abi.RuleAttrProto, unix.IPPROTO_UDP) }

	cases := []ackCase{
		{"id missing", abi.CmdNewRule, ruleMsg(newAttrs().u8("action", abi.RuleAttrAction, 2)),
			unix.EINVAL, "id: missing", "rule"},
		{"id 0", abi.CmdNewRule, ruleMsg(rule(0, abi.ActionDrop, nil)), unix.EINVAL, "id: must be 1..65535", "id"},
		{"id beyond 65535", abi.CmdNewRule, ruleMsg(rule(70000, abi.ActionDrop, nil)), unix.EINVAL, "id: must be 1..65535", "id"},
		{"id exists", abi.CmdNewRule, ruleMsg(rule(1, abi.ActionAccept, nil)), unix.EEXIST, "id: rule already exists", "id"},
		{"action missing", abi.CmdNewRule, ruleMsg(newAttrs().u32("id", abi.RuleAttrID, 50)),
			unix.EINVAL, "action: missing", "rule"},
		{"action 0", abi.CmdNewRule, ruleMsg(rule(50, 0, nil)), unix.EINVAL, "action: must be accept or drop", "action"},
		{"action 3", abi.CmdNewRule, ruleMsg(rule(50, 3, nil)), unix.EINVAL, "action: must be accept or drop", "action"},
		{"family 7", abi.CmdNewRule, with(func(r *attrs) { r.u8("family", abi.RuleAttrFamily, 7) }),
			unix.EINVAL, "family: must be ipv4, ipv6 or any", "family"},
		{"hooks 0", abi.CmdNewRule, with(func(r *attrs) { r.u32("hooks", abi.RuleAttrHooks, 0) }),
			unix.EINVAL, "hooks: must name input, forward or output", "hooks"},
		{"hooks bit 3", abi.CmdNewRule, with(func(r *attrs) { r.u32("hooks", abi.RuleAttrHooks, 8) }),
			unix.EINVAL, "hooks: must name input, forward or output", "hooks"},
		{"hooks beyond 8 bits", abi.CmdNewRule, with(func(r *attrs) { r.u32("hooks", abi.RuleAttrHooks, 0x101) }),
			unix.EINVAL, "hooks: must name input, forward or output", "hooks"},
		{"src of 5 bytes", abi.CmdNewRule, with(func(r *attrs) { r.put("src", abi.RuleAttrSrc, make([]byte, 5)) }),
			unix.EINVAL, "src: address must be 4 or 16 bytes", "src"},
		{"src prefix length without address", abi.CmdNewRule,
			with(func(r *attrs) { r.u8("plen", abi.RuleAttrSrcPlen, 8) }),
			unix.EINVAL, "src: prefix length without address", "plen"},
		{"src host bits", abi.CmdNewRule, with(func(r *attrs) {
			r.put("src", abi.RuleAttrSrc, v4).u8("plen", abi.RuleAttrSrcPlen, 8)
		}), unix.EINVAL, "src: host bits set beyond the prefix length", "src"},
		{"dst prefix beyond 32", abi.CmdNewRule, with(func(r *attrs) {
			r.put("dst", abi.RuleAttrDst, v4).u8("plen", abi.RuleAttrDstPlen, 33)
		}), unix.EINVAL, "dst: prefix length beyond the address size", "dst"},
		{"family ipv4, dst ipv6", abi.CmdNewRule, with(func(r *attrs) {
			r.u8("family", abi.RuleAttrFamily, abi.FamilyIPv4).put("dst", abi.RuleAttrDst, v6)
		}), unix.EINVAL, "dst: address family differs from family", "dst"},
		{"src ipv4, dst ipv6", abi.CmdNewRule, with(func(r *attrs) {
			r.put("src", abi.RuleAttrSrc, v4).put("dst", abi.RuleAttrDst, v6)
		}), unix.EINVAL, "dst: address family differs from src", "dst"},
		{"icmp with ipv6", abi.CmdNewRule, with(func(r *attrs) {
			r.u8("family", abi.RuleAttrFamily, abi.FamilyIPv6).u8("proto", abi.RuleAttrProto, unix.IPPROTO_ICMP)
		}), unix.EINVAL, "proto: icmp needs IPv4 (use icmpv6)", "proto"},
		{"dport without proto", abi.CmdNewRule, with(func(r *attrs) { r.u16("dport", abi.RuleAttrDportMin, 22) }),
			unix.EINVAL, "dport: port range needs proto tcp or udp", "dport"},
		{"sport range upside down", abi.CmdNewRule, with(func(r *attrs) {
			udp(r)
			r.u16("min", abi.RuleAttrSportMin, 10).u16("max", abi.RuleAttrSportMax, 5)
		}), unix.EINVAL, "sport: range start above range end", "min"},
		{"sport end without start", abi.CmdNewRule, with(func(r *attrs) {
			udp(r)
			r.u16("max", abi.RuleAttrSportMax, 5)
		}), unix.EINVAL, "sport: range end without range start", "max"},
		{"iif at output only", abi.CmdNewRule, with(func(r *attrs) {
			r.u32("hooks", abi.RuleAttrHooks, 1<<abi.HookOutput).str("iif", abi.RuleAttrIif, "eth0")
		}), unix.EINVAL, "iif: never matches at hook output", "iif"},
		{"iif too long", abi.CmdNewRule, with(func(r *attrs) { r.str("iif", abi.RuleAttrIif, strings.Repeat("e", 16)) }),
			unix.EINVAL, "iif: name longer than 15 bytes", "iif"},
		{"iif with slash", abi.CmdNewRule, with(func(r *attrs) { r.str("iif", abi.RuleAttrIif, "a/b") }),
			unix.EINVAL, "iif: invalid character in name", "iif"},
		{"iif empty", abi.CmdNewRule, with(func(r *attrs) { r.str("iif", abi.RuleAttrIif, "") }),
			unix.EINVAL, "iif: empty name", "iif"},
		{"oif dot", abi.CmdNewRule, with(func(r *attrs) { r.str("oif", abi.RuleAttrOif, ".") }),
			unix.EINVAL, "oif: name must not be . or ..", "oif"},
		{"log 2", abi.CmdNewRule, with(func(r *attrs) { r.u8("log", abi.RuleAttrLog, 2) }),
			unix.EINVAL, "log: must be 0 or 1", "log"},
		{"rate too high", abi.CmdNewRule, with(func(r *attrs) { r.u32("rate", abi.RuleAttrRate, 1000001) }),
			unix.EINVAL, "rate: must be 0..1000000 events/s", "rate"},
		{"burst without rate", abi.CmdNewRule, with(func(r *attrs) { r.u32("burst", abi.RuleAttrBurst, 5) }),
			unix.EINVAL, "burst: needs rate", "burst"},
		{"burst 0", abi.CmdNewRule, with(func(r *attrs) {
			r.u32("rate", abi.RuleAttrRate, 5).u32("burst", abi.RuleAttrBurst, 0)
		}), unix.EINVAL, "burst: must be 1..1000000", "burst"},
		{"counters in a request", abi.CmdNewRule, with(func(r *attrs) {
			r.put("packets", abi.RuleAttrPackets, make([]byte, 8))
		}), unix.EINVAL, "packets: counters are read-only", "packets"},
		{"unknown rule attribute", abi.CmdNewRule, with(func(r *attrs) { r.u32("unknown", 99, 1) }),
			unix.EINVAL, "Unknown attribute type", "unknown"},
		{"event attribute in a request", abi.CmdNewRule,
			ruleMsg(rule(50, abi.ActionDrop, nil)).u32("cpu", abi.AttrCPU, 0),
			unix.EINVAL, "cpu: only in events", "cpu"},
		{"rule nest without NLA_F_NESTED", abi.CmdNewRule,
			newAttrs().put("rule", abi.AttrRule, rule(50, abi.ActionDrop, nil).b),
			unix.EINVAL, "NLA_F_NESTED is missing", "rule"},
		{"no rule", abi.CmdNewRule, newAttrs(), unix.EINVAL, "rule: missing", ""},
		{"two rules", abi.CmdNewRule, ruleMsg(rule(50, abi.ActionDrop, nil)).nest("", abi.AttrRule, rule(51, abi.ActionDrop, nil)),
			unix.EINVAL, "rule: one per command (KFW_CMD_REPLACE takes many)", ""},
		{"policy in new rule", abi.CmdNewRule,
			ruleMsg(rule(50, abi.ActionDrop, nil)).nest("policy", abi.AttrPolicy, policy(0, 2)),
			unix.EINVAL, "command: attribute not taken by this command", "policy"},

		{"delete without id", abi.CmdDelRule, ruleMsg(newAttrs()), unix.EINVAL, "id: missing", "rule"},
		{"delete a missing rule", abi.CmdDelRule, ruleMsg(newAttrs().u32("id", abi.RuleAttrID, 999)),
			unix.ENOENT, "id: no such rule", "id"},
		{"delete id 0", abi.CmdDelRule, ruleMsg(newAttrs().u32("id", abi.RuleAttrID, 0)),
			unix.EINVAL, "id: must be 1..65535", "id"},
		{"delete with more than the id", abi.CmdDelRule, ruleMsg(rule(1, abi.ActionDrop, nil)),
			unix.EINVAL, "rule: delete takes the id only", "action"},

		{"flush with an attribute", abi.CmdFlush, ruleMsg(rule(50, abi.ActionDrop, nil)),
			unix.EINVAL, "command: attribute not taken by this command", "rule"},

		{"no policy", abi.CmdSetPolicy, newAttrs(), unix.EINVAL, "policy: missing", ""},
		{"policy hook 3", abi.CmdSetPolicy, newAttrs().nest("p", abi.AttrPolicy, policy(3, 2)),
			unix.EINVAL, "hook: must be input, forward or output", "hook"},
		{"policy action 0", abi.CmdSetPolicy, newAttrs().nest("p", abi.AttrPolicy, policy(0, 0)),
			unix.EINVAL, "action: must be accept or drop", "action"},
		{"policy without action", abi.CmdSetPolicy, newAttrs().nest("p", abi.AttrPolicy, policy(0, -1)),
			unix.EINVAL, "action: missing", "p"},
		{"second policy bad", abi.CmdSetPolicy,
			newAttrs().nest("", abi.AttrPolicy, policy(0, 2)).nest("p", abi.AttrPolicy, policy(-1, 2)),
			unix.EINVAL, "hook: missing", "p"},

		{"replace with a bad rule", abi.CmdReplace, newAttrs().
			nest("", abi.AttrPolicy, policy(0, 2)).
			nest("", abi.AttrRule, rule(2, abi.ActionDrop, nil)).
			nest("", abi.AttrRule, rule(3, abi.ActionDrop, func(r *attrs) { r.u16("dport", abi.RuleAttrDportMin, 22) })).
			nest("", abi.AttrRule, rule(4, abi.ActionDrop, nil)),
			unix.EINVAL, "dport: port range needs proto tcp or udp", "dport"},
		// Marks of later nests win: "id" is the second rule's.
		{"replace with a duplicate id", abi.CmdReplace, newAttrs().
			nest("", abi.AttrRule, rule(2, abi.ActionDrop, nil)).
			nest("", abi.AttrRule, rule(2, abi.ActionAccept, nil)),
			unix.EEXIST, "id: rule already exists", "id"},
		{"replace beyond max_rules", abi.CmdReplace, func() *attrs {
			a := newAttrs()
			for id := uint32(1); id <= 9; id++ {
				a.nest("", abi.AttrRule, rule(id, abi.ActionDrop, nil))
			}
			return a
		}(), unix.ENOSPC, "rules: more than max_rules rules", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t)
			_, err := conn.Execute(genetlink.Message{
				Header: genetlink.Header{Command: c.cmd, Version: abi.GenlVersion},
				Data:   c.msg.b,
			}, cl.FamilyID(), netlink.Request|netlink.Acknowledge)
			var oe *netlink.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if !errors.Is(oe.Err, c.errno) {
				t.Errorf("errno %v, want %v", oe.Err, c.errno)
			}
			if oe.Message != c.text {
				t.Errorf("message %q, want %q", oe.Message, c.text)
			}
			want := 0
			if c.at != "" {
				want = genlRequestHeaders + c.msg.marks[c.at]
			}
			if oe.Offset != want {
				t.Errorf("offset %d, want %d (%q)", oe.Offset, want, c.at)
			}
			if after := snapshot(t); after != before {
				t.Errorf("the table changed:\n%+v\n->\n%+v", before, after)
			}
		})
	}
}

// TestCommandErrorsThroughClient checks that netlinkclient turns the
// kernel's refusals into errors that carry the kernel's message and errno.
func TestCommandErrorsThroughClient(t *testing.T) {
	labtest.LoadModule(t)
	cl := labtest.DialNetlink(t)
	before := snapshot(t)
	bad := abi.Rule{ID: 5, Action: abi.ActionDrop, Hooks: abi.HookMaskAll, Dport: abi.PortRange{Min: 22, Max: 22, Set: true}}
	err := cl.AddRule(ctx(t), bad)
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "dport: port range needs proto tcp or udp") {
		t.Errorf("AddRule: %v", err)
	}
	if err := cl.DelRule(ctx(t), 5); !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "id: no such rule") {
		t.Errorf("DelRule: %v", err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("the table changed:\n%+v\n->\n%+v", before, after)
	}
}
