package abi

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The examples of docs/ABI.md: each input is stored and printed as want.
func TestRuleCanonicalForm(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// docs/ABI.md "Canonical form".
		{"dport=22 action=drop proto=6 id=5 src=10.0.0.0/8", "id=5 action=drop proto=tcp src=10.0.0.0/8 dport=22"},
		// docs/ABI.md "/proc/kfw/rules": already canonical, printed unchanged.
		{"id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input", ""},
		{"id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200", ""},
		{"id=30 action=drop proto=udp dport=5000-5999", ""},
		{"id=40 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 iif=veth0", ""},
		// Defaults are left out.
		{"id=1 action=accept family=any hooks=output,input,forward log=0 rate=0", "id=1 action=accept"},
		// Protocol names for 1, 6, 17, 58; numbers otherwise.
		{"id=1 action=drop proto=1", "id=1 action=drop proto=icmp"},
		{"id=1 action=drop proto=17", "id=1 action=drop proto=udp"},
		{"id=1 action=drop proto=58", "id=1 action=drop proto=icmpv6"},
		{"id=1 action=drop proto=0", "id=1 action=drop proto=0"},
		{"id=1 action=drop proto=132", "id=1 action=drop proto=132"},
		{"id=1 action=drop proto=255", "id=1 action=drop proto=255"},
		// Addresses always with /LEN; IPv6 per RFC 5952.
		{"id=1 action=drop src=192.0.2.1", "id=1 action=drop src=192.0.2.1/32"},
		{"id=1 action=drop dst=2001:DB8:0:0:0:0:0:1", "id=1 action=drop dst=2001:db8::1/128"},
		{"id=1 action=drop dst=2001:db8:0:1:0:0:0:0/64", "id=1 action=drop dst=2001:db8:0:1::/64"},
		{"id=1 action=drop src=2001:db8:0:1:1:1:1:1", "id=1 action=drop src=2001:db8:0:1:1:1:1:1/128"},
		{"id=1 action=drop src=2001:0:0:1:0:0:0:1", "id=1 action=drop src=2001:0:0:1::1/128"},
		{"id=1 action=drop src=2001:db8:0:0:1:0:0:1", "id=1 action=drop src=2001:db8::1:0:0:1/128"},
		{"id=1 action=drop src=::/0", "id=1 action=drop src=::/0"},
		{"id=1 action=drop src=0.0.0.0/0", "id=1 action=drop src=0.0.0.0/0"},
		{"id=1 action=drop src=::ffff:10.0.0.0/104", "id=1 action=drop src=::ffff:10.0.0.0/104"},
		// RFC 5952 keeps hexadecimal for ISATAP (the kernel's %pI6c would not).
		{"id=1 action=drop src=2001:db8::5efe:a00:1", "id=1 action=drop src=2001:db8::5efe:a00:1/128"},
		// Port ranges with equal ends print as one number.
		{"id=1 action=drop proto=tcp sport=80-80 dport=0-65535", "id=1 action=drop proto=tcp sport=80 dport=0-65535"},
		// Hooks in table order whatever the input order.
		{"id=1 action=drop hooks=output,input", "id=1 action=drop hooks=input,output"},
		// burst printed whenever rate is, defaulting to rate.
		{"id=1 action=drop rate=50", "id=1 action=drop rate=50 burst=50"},
		{"burst=7 rate=3 id=65535 action=accept", "id=65535 action=accept rate=3 burst=7"},
		// Every key, in scrambled order.
		{"burst=2 rate=1 log=1 hooks=forward oif=eth1 iif=eth0 dport=443 sport=1024-65535 dst=198.51.100.0/24 src=192.0.2.0/24 proto=tcp family=ipv4 action=accept id=7",
			"id=7 action=accept family=ipv4 proto=tcp src=192.0.2.0/24 dst=198.51.100.0/24 sport=1024-65535 dport=443 iif=eth0 oif=eth1 hooks=forward log=1 rate=1 burst=2"},
		// Leading zeros are accepted in numbers and dropped in print.
		{"id=007 action=drop proto=udp dport=053", "id=7 action=drop proto=udp dport=53"},
		{"id=1 action=drop log=00 src=10.0.0.0/08", "id=1 action=drop src=10.0.0.0/8"},
		// Address edge cases, checked against the kernel's in6_pton and
		// %pI6c: a single zero group is not compressed, mapped addresses
		// keep their dotted quad, others do not.
		{"id=1 action=drop src=1:2:3:4:5:6:1.2.3.4", "id=1 action=drop src=1:2:3:4:5:6:102:304/128"},
		{"id=1 action=drop src=1:2:3:4:5:6:7::", "id=1 action=drop src=1:2:3:4:5:6:7:0/128"},
		{"id=1 action=drop src=::1:2:3:4:5:6:7", "id=1 action=drop src=0:1:2:3:4:5:6:7/128"},
		{"id=1 action=drop src=::ffff:0:0/96", "id=1 action=drop src=::ffff:0.0.0.0/96"},
		{"id=1 action=drop src=::1.2.3.4", "id=1 action=drop src=::102:304/128"},
		{"id=1 action=drop src=64:ff9b::/96", ""},
	}
	for _, tt := range tests {
		want := tt.want
		if want == "" {
			want = tt.in
		}
		r, err := ParseRule(strings.Fields(tt.in))
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if got := r.String(); got != want {
			t.Errorf("ParseRule(%q).String()\n got %q\nwant %q", tt.in, got, want)
		}
		// The canonical form is a fixed point.
		again, err := ParseRule(strings.Fields(want))
		if err != nil || again != r {
			t.Errorf("reparse of %q: %+v, %v; want %+v", want, again, err, r)
		}
	}
}

func TestParseRuleFields(t *testing.T) {
	r, err := ParseRule(strings.Fields("id=20 action=drop family=ipv4 proto=tcp src=10.1.0.0/16 " +
		"dst=10.2.3.4 sport=1000-2000 dport=22 iif=veth0 oif=veth1 hooks=forward log=1 rate=100 burst=200"))
	if err != nil {
		t.Fatal(err)
	}
	want := Rule{
		ID: 20, Action: ActionDrop, Family: FamilyIPv4, Hooks: 1 << HookForward,
		Proto: 6, ProtoSet: true,
		Src:   netip.MustParsePrefix("10.1.0.0/16"),
		Dst:   netip.MustParsePrefix("10.2.3.4/32"),
		Sport: PortRange{Min: 1000, Max: 2000, Set: true},
		Dport: PortRange{Min: 22, Max: 22, Set: true},
		Iif:   "veth0", Oif: "veth1", Log: true, Rate: 100, Burst: 200,
	}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}

	r, err = ParseRule([]string{"id=1", "action=accept"})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Rule{ID: 1, Action: ActionAccept, Hooks: HookMaskAll}); r != want {
		t.Errorf("defaults: got %+v, want %+v", r, want)
	}
}

// Every validation of docs/ABI.md, with the message the kernel gives
// (kmod/kfw_parse.c, kmod/kfw_rule.c) for the same input. Each case was
// also written to /proc/kfw/rules of the module in a lab VM and the kernel
// logged the same message.
func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// Unknown key, repeated key, missing '=', empty value.
		{"id=1 action=drop colour=red", "key: unknown key 'colour'"},
		{"id=1 action=drop colour", "key: expected KEY=VALUE 'colour'"},
		{"id=1 action=drop =5", "key: unknown key ''"},

		{"id=1 action=drop id=2", "id: repeated key"},
		{"id=1 action=drop dport", "dport: missing '='"},
		{"id=1 action=drop dport=", "dport: empty value"},
		{"id=1 dport= dport=", "dport: empty value"},
		// A syntax error anywhere comes before any validation.
		{"id=0 action=drop colour=red", "key: unknown key 'colour'"},
		{"src=10.0.0.0/33 colour=red", "key: unknown key 'colour'"},
		// id and action required; id range and syntax.
		{"action=drop", "id: missing"},
		{"id=1", "action: missing"},
		{"id=0", "id: must be 1..65535"},
		{"id=0 action=drop", "id: must be 1..65535"},
		{"id=65536 action=drop", "id: must be 1..65535"},
		{"id=99999999999999999999999 action=drop", "id: must be 1..65535"},
		{"id=+1 action=drop", "id: not a decimal number"},
		{"id=0x10 action=drop", "id: not a decimal number"},
		{"id=-1 action=drop", "id: not a decimal number"},
		{"id=1 action=reject", "action: must be accept or drop"},
		{"id=1 action=drop family=inet", "family: must be ipv4, ipv6 or any"},
		{"id=1 action=drop proto=sctp", "proto: must be tcp, udp, icmp, icmpv6 or 0..255"},
		{"id=1 action=drop proto=256", "proto: must be 0..255"},
		{"id=1 action=drop proto=-1", "proto: must be tcp, udp, icmp, icmpv6 or 0..255"},
		{"id=1 action=drop log=2", "log: must be 0 or 1"},
		{"id=1 action=drop log=yes", "log: must be 0 or 1"},
		{"id=1 action=drop rate=1000001", "rate: must be 0..1000000 events/s"},
		{"id=1 action=drop rate=1 burst=0", "burst: must be 1..1000000"},
		{"id=1 action=drop rate=1 burst=1000001", "burst: must be 1..1000000"},
		// Hooks: names, no repeats, no empty items.
		{"id=1 action=drop hooks=prerouting", "hooks: must list input, forward, output"},
		{"id=1 action=drop hooks=input,,output", "hooks: must list input, forward, output"},
		{"id=1 action=drop hooks=input,forward,output,", "hooks: must list input, forward, output"},
		{"id=1 action=drop hooks=input,input", "hooks: hook named twice"},
		// Address families.
		{"id=1 action=drop family=ipv4 src=2001:db8::/32", "src: address family differs from family"},
		{"id=1 action=drop family=ipv6 dst=10.0.0.0/8", "dst: address family differs from family"},
		{"id=1 action=drop src=10.0.0.0/8 dst=2001:db8::/32", "dst: address family differs from src"},
		{"id=1 action=drop proto=icmp family=ipv6", "proto: icmp needs IPv4 (use icmpv6)"},
		{"id=1 action=drop proto=icmp src=2001:db8::1", "proto: icmp needs IPv4 (use icmpv6)"},
		{"id=1 action=drop proto=1 dst=::1", "proto: icmp needs IPv4 (use icmpv6)"},
		{"id=1 action=drop proto=icmpv6 family=ipv4", "proto: icmpv6 needs IPv6 (use icmp)"},
		{"id=1 action=drop proto=icmpv6 dst=192.0.2.1", "proto: icmpv6 needs IPv6 (use icmp)"},
		// Prefixes: syntax at parse time, length and host bits at validation.
		{"id=1 action=drop src=10.0.0.0/33", "src: prefix length beyond the address size"},
		{"id=1 action=drop src=10.0.0.0/256", "src: prefix length beyond the address size"},
		{"id=1 action=drop dst=2001:db8::/129", "dst: prefix length beyond the address size"},
		{"id=1 action=drop src=10.0.0.1/8", "src: host bits set beyond the prefix length"},
		{"id=1 action=drop dst=2001:db8::1/32", "dst: host bits set beyond the prefix length"},
		{"id=1 action=drop src=10.0.0", "src: unparsable address"},
		{"id=1 action=drop src=/8", "src: unparsable address"},
		{"id=1 action=drop src=10.0.0.0/", "src: prefix length must be a decimal number"},
		{"id=1 action=drop src=10.0.0.0/x", "src: prefix length must be a decimal number"},
		{"id=1 action=drop src=10.0.0.0/+8", "src: prefix length must be a decimal number"},
		{"id=1 action=drop src=host.example", "src: unparsable address"},
		{"id=1 action=drop src=fe80::1%eth0", "src: unparsable address"},
		{"id=1 action=drop src=010.0.0.1", "src: unparsable address"},
		{"id=1 action=drop src=::ffff:1.2.3.04", "src: unparsable address"},
		{"id=1 action=drop src=1:2:3:4:5:6:7:8:9", "src: unparsable address"},
		{"id=1 action=drop src=1::2::3", "src: unparsable address"},
		{"id=1 action=drop src=12345::", "src: unparsable address"},
		{"id=1 action=drop src=1.2.3.4.5", "src: unparsable address"},
		{"id=1 action=drop src=256.0.0.0", "src: unparsable address"},
		{"id=1 action=drop src=1.2.3.4:", "src: unparsable address"},
		{"id=1 action=drop src=1:2:3:4:5:6:7:1.2.3.4", "src: unparsable address"},
		{"id=1 action=drop src=:1::", "src: unparsable address"},
		{"id=1 action=drop src=1:::2", "src: unparsable address"},
		{"id=1 action=drop src=1:2:3:4:5:6:7:8::", "src: unparsable address"},
		{"id=1 action=drop src=1.2.3.4/32/1", "src: prefix length must be a decimal number"},
		{"id=1 action=drop src=1.2.3.4 src=1.2.3.5", "src: repeated key"},
		{"id=1 action=drop hooks=input,forward,output,input", "hooks: must list input, forward, output"},
		// Ports.
		{"id=1 action=drop dport=22", "dport: port range needs proto tcp or udp"},
		{"id=1 action=drop proto=icmp sport=1", "sport: port range needs proto tcp or udp"},
		{"id=1 action=drop proto=132 dport=1", "dport: port range needs proto tcp or udp"},
		{"id=1 action=drop proto=tcp dport=2-1", "dport: range start above range end"},
		{"id=1 action=drop proto=tcp dport=65536", "dport: must be N or N-M with ports 0..65535"},
		{"id=1 action=drop proto=tcp sport=1-", "sport: must be N or N-M with ports 0..65535"},
		{"id=1 action=drop proto=tcp sport=-1", "sport: must be N or N-M with ports 0..65535"},
		{"id=1 action=drop proto=tcp sport=1-2-3", "sport: must be N or N-M with ports 0..65535"},
		{"id=1 action=drop proto=tcp sport=000000000022", "sport: must be N or N-M with ports 0..65535"},
		// Interfaces.
		{"id=1 action=drop iif=0123456789abcdef", "iif: name longer than 15 bytes"},
		{"id=1 action=drop oif=a/b", "oif: invalid character in name"},
		{"id=1 action=drop iif=.", "iif: name must not be . or .."},
		{"id=1 action=drop oif=..", "oif: name must not be . or .."},
		{"id=1 action=drop iif=eth0 hooks=output", "iif: never matches at hook output"},
		{"id=1 action=drop oif=eth0 hooks=input", "oif: never matches at hook input"},
		// burst needs rate.
		{"id=1 action=drop burst=5", "burst: needs rate"},
		{"id=1 action=drop rate=0 burst=5", "burst: needs rate"},
		{"id=1 action=drop burst=0", "burst: needs rate"},
	}
	for _, tt := range tests {
		_, err := ParseRule(strings.Fields(tt.in))
		if err == nil {
			t.Errorf("ParseRule(%q) succeeded, want %q", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("ParseRule(%q)\n got %q\nwant %q", tt.in, err, tt.want)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.HasPrefix(tt.want, fe.Field+": ") {
			t.Errorf("ParseRule(%q): error %#v does not name its field", tt.in, err)
		}
	}
}

// Boundaries that must be accepted.
func TestParseRuleLimits(t *testing.T) {
	for _, in := range []string{
		"id=1 action=drop",
		"id=65535 action=drop",
		"id=1 action=drop rate=1000000 burst=1000000",
		"id=1 action=drop rate=1 burst=1",
		"id=1 action=drop proto=tcp dport=0 sport=65535",
		"id=1 action=drop iif=012345678901234",
		"id=1 action=drop iif=eth0:1 oif=a.b-c_d@e",
		"id=1 action=drop iif=eth0 hooks=input,output",
		"id=1 action=drop oif=eth0 hooks=forward",
		"id=1 action=drop src=10.0.0.0/32 dst=0.0.0.0/0 family=ipv4 proto=icmp",
		"id=1 action=drop src=2001:db8::/128 dst=::/0 family=ipv6 proto=icmpv6",
		"id=1 action=drop proto=udp src=::ffff:1.2.3.4",
	} {
		if _, err := ParseRule(strings.Fields(in)); err != nil {
			t.Errorf("ParseRule(%q): %v", in, err)
		}
	}
}

// Validate gives the netlink path's messages for rules built in Go.
func TestRuleValidate(t *testing.T) {
	ok := Rule{ID: 1, Action: ActionDrop, Hooks: HookMaskAll}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid rule: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Rule)
		want string
	}{
		{"zero id", func(r *Rule) { r.ID = 0 }, "id: must be 1..65535"},
		{"no action", func(r *Rule) { r.Action = ActionUnspec }, "action: missing"},
		{"unknown action", func(r *Rule) { r.Action = 3 }, "action: must be accept or drop"},
		{"bad family", func(r *Rule) { r.Family = 7 }, "family: must be ipv4, ipv6 or any"},
		{"no hooks", func(r *Rule) { r.Hooks = 0 }, "hooks: must name input, forward or output"},
		{"unknown hook bit", func(r *Rule) { r.Hooks = 8 }, "hooks: must name input, forward or output"},
		{"host bits", func(r *Rule) { r.Src = netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 8) }, "src: host bits set beyond the prefix length"},
		{"reversed range", func(r *Rule) { r.ProtoSet, r.Proto, r.Dport = true, 6, PortRange{Min: 9, Max: 8, Set: true} }, "dport: range start above range end"},
		{"rate without burst", func(r *Rule) { r.Rate = 5 }, "burst: must be 1..1000000"},
		{"burst without rate", func(r *Rule) { r.Burst = 5 }, "burst: needs rate"},
		{"rate too high", func(r *Rule) { r.Rate, r.Burst = RuleRateMax+1, 1 }, "rate: must be 0..1000000 events/s"},
		{"burst too high", func(r *Rule) { r.Rate, r.Burst = 1, RuleBurstMax+1 }, "burst: must be 1..1000000"},
		{"blank in a name", func(r *Rule) { r.Iif = "a b" }, "iif: invalid character in name"},
		{"long name", func(r *Rule) { r.Oif = "0123456789abcdef" }, "oif: name longer than 15 bytes"},
		{"non-ASCII name", func(r *Rule) { r.Oif = "caf\xc3\xa9" }, "oif: invalid character in name"},
	}
	for _, tt := range tests {
		r := ok
		tt.edit(&r)
		if err := r.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestParseCommands(t *testing.T) {
	// docs/ABI.md's /proc/kfw/rules example, plus comments, blank lines,
	// tabs, runs of blanks and a last line without '\n'.
	text := "# saved table\n" +
		"flush\n" +
		"\n" +
		"policy hook=input action=accept\n" +
		"  policy\taction=drop   hook=forward\n" +
		"policy hook=output action=accept\n" +
		"\t# indented comment\n" +
		"add id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input\n" +
		"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200\n" +
		"del id=10\n" +
		"add id=30 action=drop proto=udp dport=5000-5999"
	cmds, err := ParseCommands(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2 flush",
		"4 policy hook=input action=accept",
		"5 policy hook=forward action=drop",
		"6 policy hook=output action=accept",
		"8 add id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input",
		"9 add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200",
		"10 del id=10",
		"11 add id=30 action=drop proto=udp dport=5000-5999",
	}
	if len(cmds) != len(want) {
		t.Fatalf("got %d commands, want %d: %v", len(cmds), len(want), cmds)
	}
	for i, c := range cmds {
		if got := strings.Join([]string{itoa(c.Line), c.String()}, " "); got != want[i] {
			t.Errorf("command %d: got %q, want %q", i, got, want[i])
		}
	}

	// A text with no command is fine and empty.
	for _, empty := range []string{"", "\n", "# only a comment", "  \t \n\n# x\n"} {
		if cmds, err := ParseCommands(empty); err != nil || len(cmds) != 0 {
			t.Errorf("ParseCommands(%q) = %v, %v; want nothing", empty, cmds, err)
		}
	}
}

func itoa(i int) string { return uitoa(uint64(i)) }

func TestParseCommandsErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"flush\nreset\n", "line 2: command: unknown command 'reset'"},
		{"flush all", "line 1: command: flush takes no arguments 'all'"},
		{"del", "line 1: id: missing"},
		{"del id=1 id=2", "line 1: id: repeated key"},
		{"del id=1 action=drop", "line 1: key: unknown key 'action'"},
		{"del id=0", "line 1: id: must be 1..65535"},
		{"del id=x", "line 1: id: not a decimal number"},
		{"del 10", "line 1: key: expected KEY=VALUE '10'"},
		{"del id", "line 1: id: missing '='"},
		{"policy hook=input", "line 1: action: missing"},
		{"policy action=drop", "line 1: hook: missing"},
		{"policy hook=prerouting action=drop", "line 1: hook: must be input, forward or output"},
		{"policy hook= action=drop", "line 1: hook: must be input, forward or output"},
		{"policy hook action=drop", "line 1: hook: missing '='"},
		{"policy hook=input action=reject", "line 1: action: must be accept or drop"},
		{"policy hook=input action", "line 1: action: missing '='"},
		{"policy hook=input hook=output action=drop", "line 1: hook: repeated key"},
		{"policy hook=input hook action=drop", "line 1: hook: repeated key"},
		{"policy hook=input action=drop action=accept", "line 1: action: repeated key"},
		{"policy hook=input action=drop id=1", "line 1: key: unknown key 'id'"},
		{"policy hook=input action=drop x", "line 1: key: expected KEY=VALUE 'x'"},
		{"\n\nadd id=1 action=drop dport=22\n", "line 3: dport: port range needs proto tcp or udp"},
		// Only printable ASCII, space and tab; even in comments.
		{"flush\r\n", "line 1: line: byte other than printable ASCII, space or tab"},
		{"# caf\xc3\xa9\n", "line 1: line: byte other than printable ASCII, space or tab"},
		{"flush\x00", "line 1: line: byte other than printable ASCII, space or tab"},
		{"flush\n\x7f", "line 2: line: byte other than printable ASCII, space or tab"},
		// At most 511 bytes a line, the newline not counted.
		{"# " + strings.Repeat("x", 510) + "\n", "line 1: line: longer than 511 bytes"},
		// The kernel logs at most 32 bytes of the word.
		{"add id=1 action=drop " + strings.Repeat("k", 40) + "=1", "line 1: key: unknown key '" + strings.Repeat("k", 32) + "'"},
	}
	for _, tt := range tests {
		_, err := ParseCommands(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseCommands(%q)\n got %v\nwant %q", tt.in, err, tt.want)
			continue
		}
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Errorf("ParseCommands(%q): %T is not a *CommandError", tt.in, err)
		}
	}
	// Exactly 511 bytes is fine.
	if _, err := ParseCommands("# " + strings.Repeat("x", 509) + "\n"); err != nil {
		t.Errorf("511-byte line: %v", err)
	}
}

func TestRuleTableApply(t *testing.T) {
	mustParse := func(text string) []Command {
		t.Helper()
		cmds, err := ParseCommands(text)
		if err != nil {
			t.Fatal(err)
		}
		return cmds
	}
	tbl := NewRuleTable()
	if err := tbl.Apply(mustParse("add id=30 action=drop\nadd id=10 action=accept\npolicy hook=forward action=drop\nadd id=20 action=drop")); err != nil {
		t.Fatal(err)
	}
	want := "flush\n" +
		"policy hook=input action=accept\n" +
		"policy hook=forward action=drop\n" +
		"policy hook=output action=accept\n" +
		"add id=10 action=accept\n" +
		"add id=20 action=drop\n" +
		"add id=30 action=drop\n"
	if got := tbl.String(); got != want {
		t.Fatalf("table:\n%s\nwant:\n%s", got, want)
	}

	// Reading what was printed restores the same table.
	again := NewRuleTable()
	if err := again.Apply(mustParse(want)); err != nil || again.String() != want {
		t.Fatalf("restore: %v\n%s", err, again.String())
	}

	// del then add of the same id in one transaction is fine.
	if err := tbl.Apply(mustParse("del id=10\nadd id=10 action=drop log=1")); err != nil {
		t.Fatal(err)
	}

	// Failures name the line and change nothing.
	before := tbl.String()
	for _, tt := range []struct{ text, want string }{
		{"flush\nadd id=1 action=drop\nadd id=1 action=accept", "line 3: id: rule already exists"},
		{"add id=20 action=drop", "line 1: id: rule already exists"},
		{"del id=99", "line 1: id: no such rule"},
		{"flush\ndel id=10", "line 2: id: no such rule"},
	} {
		if err := tbl.Apply(mustParse(tt.text)); err == nil || err.Error() != tt.want {
			t.Errorf("Apply(%q) = %v, want %q", tt.text, err, tt.want)
		}
		if tbl.String() != before {
			t.Errorf("Apply(%q) changed the table", tt.text)
		}
	}

	// Capacity.
	small := NewRuleTable()
	small.MaxRules = 2
	if err := small.Apply(mustParse("add id=1 action=drop\nadd id=2 action=drop\nadd id=3 action=drop")); err == nil {
		t.Error("Apply beyond MaxRules succeeded")
	}
	if len(small.Rules) != 0 {
		t.Error("failed Apply changed the table")
	}
	if err := small.Apply(mustParse("add id=1 action=drop\nadd id=2 action=drop\nadd id=3 action=drop\ndel id=2")); err != nil {
		t.Errorf("transaction ending within MaxRules: %v", err)
	}

	// ApplyText fails where the kernel does: at the first line that fails
	// once applied, before later lines are even parsed.
	text := "add id=1 action=drop\nadd id=1 action=drop\nbogus\n"
	if _, err := ParseCommands(text); err == nil || err.Error() != "line 3: command: unknown command 'bogus'" {
		t.Errorf("ParseCommands: %v", err)
	}
	if err := NewRuleTable().ApplyText(text); err == nil || err.Error() != "line 2: id: rule already exists" {
		t.Errorf("ApplyText: %v", err)
	}
	if err := small.ApplyText("flush\nadd id=1 action=drop\nadd id=2 action=drop\nadd id=3 action=drop"); err == nil ||
		err.Error() != "rules: more than max_rules rules" {
		t.Errorf("ApplyText beyond MaxRules: %v", err)
	}
	applied := NewRuleTable()
	if err := applied.ApplyText(want); err != nil || applied.String() != want {
		t.Errorf("ApplyText of a saved table: %v\n%s", err, applied)
	}

	// Flush keeps policies.
	if err := tbl.Apply(mustParse("flush")); err != nil || len(tbl.Rules) != 0 || tbl.Policies[HookForward] != ActionDrop {
		t.Errorf("flush: %v, %+v", err, tbl)
	}
}
