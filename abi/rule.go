package abi

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Limits of the rule language (docs/ABI.md, "The rule language").
const (
	RuleIfNameMax = IfNameSize - 1
)

// Rule is one rule of the table: its match, action and options, as the rule
// language and the KFW_A_RULE attributes describe them. The zero value of a
// match field means "any": a zero Prefix, a PortRange without Set, an empty
// interface name, ProtoSet false. Hooks is a mask of 1<<Hook and is
// HookMaskAll for a rule that names no hooks.
type Rule struct {
	ID           uint16
	Action       Action
	Family       uint8 // FamilyAny, FamilyIPv4 or FamilyIPv6
	Hooks        uint8
	Proto        uint8 // meaningful only when ProtoSet
	ProtoSet     bool
	Src, Dst     netip.Prefix
	Sport, Dport PortRange
	Iif, Oif     string
	Log          bool
	Rate         uint32 // events/s; 0: no rule limit
	Burst        uint32 // bucket size; Rate when not given, 0 when Rate is 0
}

// PortRange is an inclusive range of tcp/udp ports. A PortRange with Set
// false matches any packet, with or without ports.
type PortRange struct {
	Min, Max uint16
	Set      bool
}

// String returns "N" for a single port and "N-M" for a range.
func (p PortRange) String() string {
	if p.Min == p.Max {
		return strconv.FormatUint(uint64(p.Min), 10)
	}
	return strconv.FormatUint(uint64(p.Min), 10) + "-" + strconv.FormatUint(uint64(p.Max), 10)
}

// Policy is a hook's default policy.
type Policy struct {
	Hook   Hook
	Action Action
}

// CommandOp is the verb of a rule-language command.
type CommandOp uint8

// Commands of the rule language.
const (
	CommandAdd CommandOp = iota + 1
	CommandDel
	CommandFlush
	CommandPolicy
)

// Command is one parsed line of the rule language.
type Command struct {
	Op     CommandOp
	Line   int    // 1-based line number in the parsed text
	Rule   Rule   // CommandAdd
	ID     uint16 // CommandDel
	Policy Policy // CommandPolicy
}

// FieldError is an invalid rule-language input, with the kernel's own
// words: Field is the first word of the message (a key, or "key", "line",
// "command", "rules" for what is not one key's fault), Reason a fixed
// text, so "dport: port range needs proto tcp or udp" reads the same in
// the kernel log, in a netlink extended ack and here. For the fields "key"
// and "command", Word is the offending word, which the kernel log quotes
// after the message (even when it is empty).
type FieldError struct {
	Field  string
	Reason string
	Word   string
}

func (e *FieldError) Error() string {
	if e.Field != "key" && e.Field != "command" {
		return e.Field + ": " + e.Reason
	}
	w := e.Word
	if len(w) > 32 { // the kernel logs it with %.32s
		w = w[:32]
	}
	return e.Field + ": " + e.Reason + " '" + w + "'"
}

// CommandError locates an error in a text of commands the way the kernel
// log does for a /proc/kfw/rules write: "line 3: dport: ...".
type CommandError struct {
	Line int
	Err  error
}

func (e *CommandError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

func (e *CommandError) Unwrap() error { return e.Err }

func ruleErr(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Messages shared by several checks; each is the kernel's text.
const (
	ruleMsgID        = "must be 1..65535"
	ruleMsgAction    = "must be accept or drop"
	ruleMsgFamily    = "must be ipv4, ipv6 or any"
	ruleMsgPorts     = "must be N or N-M with ports 0..65535"
	ruleMsgHooksList = "must list input, forward, output"
	ruleMsgRate      = "must be 0..1000000 events/s"
	ruleMsgBurst     = "must be 1..1000000"
	ruleMsgHook      = "must be input, forward or output"
)

// Value length limits of the kernel parser's fixed buffers.
const (
	rulePortsMax = len("65535-65535")
	ruleHooksMax = len("forward,output,input")
)

// ruleSpec is a rule as written, before validation, like the kernel's
// struct kfw_rule_spec: absent fields zero, presence where "absent" and
// "zero" differ. Parsing fills it; validate checks it in the kernel's
// order and turns it into a Rule.
type ruleSpec struct {
	hasID, hasHooks, hasProto, hasSport, hasDport, hasBurst bool

	id           uint32
	action       Action
	family       uint8
	hooks        uint8
	proto        uint8
	log          bool
	src, dst     rulePrefix
	sport, dport PortRange
	iif, oif     string
	rate, burst  uint32
}

// rulePrefix is an address and a prefix length not yet checked against
// each other.
type rulePrefix struct {
	addr netip.Addr // invalid: absent
	plen uint32
}

// Keys of add, in canonical order (the order Rule.String prints them).
var ruleAddKeys = [...]string{
	"id", "action", "family", "proto", "src", "dst", "sport", "dport",
	"iif", "oif", "hooks", "log", "rate", "burst",
}

// ruleKeyWords runs fn for every KEY=VALUE word as the kernel's
// kfw_parse_keys does: an unknown key first, then a missing '=', an empty
// value, a repeated key, in that order.
func ruleKeyWords(words []string, keys []string, fn func(key, value string) error) error {
	seen := make([]bool, len(keys))
	for _, w := range words {
		key, value, hasEq := strings.Cut(w, "=")
		k := slices.Index(keys, key)
		switch {
		case k < 0 && hasEq:
			return &FieldError{Field: "key", Reason: "unknown key", Word: key}
		case k < 0:
			return &FieldError{Field: "key", Reason: "expected KEY=VALUE", Word: key}
		case !hasEq:
			return ruleErr(key, "missing '='")
		case value == "":
			return ruleErr(key, "empty value")
		case seen[k]:
			return ruleErr(key, "repeated key")
		}
		seen[k] = true
		if err := fn(key, value); err != nil {
			return err
		}
	}
	return nil
}

// ParseRule parses the KEY=VALUE words of an add command (without the word
// "add") into a validated Rule with its defaults filled in, rejecting
// exactly what the kernel rejects, with the same first message.
func ParseRule(words []string) (Rule, error) {
	var s ruleSpec
	if err := ruleKeyWords(words, ruleAddKeys[:], s.set); err != nil {
		return Rule{}, err
	}
	return s.validate()
}

// set parses one value of an add command; only the value's own syntax is
// checked here, everything else waits for validate.
func (s *ruleSpec) set(key, v string) error {
	var err error
	switch key {
	case "id":
		var n uint64
		if n, err = ruleParseUint(v, RuleIDMax); err == errRuleRange {
			return ruleErr(key, ruleMsgID)
		} else if err != nil {
			return ruleErr(key, "not a decimal number")
		}
		s.id, s.hasID = uint32(n), true
	case "action":
		var ok bool
		if s.action, ok = ParseAction(v); !ok {
			return ruleErr(key, ruleMsgAction)
		}
	case "family":
		switch v {
		case "ipv4":
			s.family = FamilyIPv4
		case "ipv6":
			s.family = FamilyIPv6
		case "any":
			s.family = FamilyAny
		default:
			return ruleErr(key, ruleMsgFamily)
		}
	case "proto":
		s.proto, err = ruleParseProto(v)
		s.hasProto = true
	case "src":
		s.src, err = ruleParsePrefix(key, v)
	case "dst":
		s.dst, err = ruleParsePrefix(key, v)
	case "sport":
		s.sport, err = ruleParsePorts(key, v)
		s.hasSport = true
	case "dport":
		s.dport, err = ruleParsePorts(key, v)
		s.hasDport = true
	case "iif", "oif":
		if len(v) > RuleIfNameMax {
			return ruleErr(key, "name longer than 15 bytes")
		}
		if key == "iif" {
			s.iif = v
		} else {
			s.oif = v
		}
	case "hooks":
		s.hooks, err = ruleParseHooks(v)
		s.hasHooks = true
	case "log":
		var n uint64
		if n, err = ruleParseUint(v, 1); err != nil {
			return ruleErr(key, "must be 0 or 1")
		}
		s.log = n == 1
	case "rate":
		var n uint64
		if n, err = ruleParseUint(v, RuleRateMax); err != nil {
			return ruleErr(key, ruleMsgRate)
		}
		s.rate = uint32(n)
	case "burst":
		var n uint64
		if n, err = ruleParseUint(v, RuleBurstMax); err != nil {
			return ruleErr(key, ruleMsgBurst)
		}
		s.burst, s.hasBurst = uint32(n), true
	}
	return err
}

var (
	errRuleNotNumber = errors.New("not a decimal number")
	errRuleRange     = errors.New("out of range")
)

// ruleParseUint accepts decimal digits only, like the kernel's
// kfw_parse_uint (no sign, no base prefix; leading zeros are fine).
func ruleParseUint(s string, max uint64) (uint64, error) {
	if s == "" {
		return 0, errRuleNotNumber
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errRuleNotNumber
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > max {
		return 0, errRuleRange
	}
	return v, nil
}

func ruleParseProto(s string) (uint8, error) {
	switch s {
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmpv6":
		return 58, nil
	}
	v, err := ruleParseUint(s, 255)
	switch err {
	case errRuleRange:
		return 0, ruleErr("proto", "must be 0..255")
	case errRuleNotNumber:
		return 0, ruleErr("proto", "must be tcp, udp, icmp, icmpv6 or 0..255")
	}
	return uint8(v), nil
}

// ruleParsePrefix parses ADDR or ADDR/LEN. As in the kernel, the family
// comes from the syntax (a ':' makes it IPv6), a dotted quad may not have
// leading zeros, and the length is checked against the address later.
func ruleParsePrefix(field, s string) (rulePrefix, error) {
	addrText, lenText, hasLen := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrText)
	if err != nil || addr.Zone() != "" || addr.Is4() == strings.Contains(addrText, ":") {
		return rulePrefix{}, ruleErr(field, "unparsable address")
	}
	p := rulePrefix{addr: addr, plen: uint32(addr.BitLen())}
	if hasLen {
		n, err := ruleParseUint(lenText, 255)
		switch err {
		case errRuleRange:
			return rulePrefix{}, ruleErr(field, "prefix length beyond the address size")
		case errRuleNotNumber:
			return rulePrefix{}, ruleErr(field, "prefix length must be a decimal number")
		}
		p.plen = uint32(n)
	}
	return p, nil
}

// ruleParsePorts parses N or N-M; whether N <= M is validate's business.
func ruleParsePorts(field, s string) (PortRange, error) {
	bad := ruleErr(field, ruleMsgPorts)
	if len(s) > rulePortsMax {
		return PortRange{}, bad
	}
	lo, hi, isRange := strings.Cut(s, "-")
	minPort, err := ruleParseUint(lo, 65535)
	if err != nil {
		return PortRange{}, bad
	}
	maxPort := minPort
	if isRange {
		if maxPort, err = ruleParseUint(hi, 65535); err != nil {
			return PortRange{}, bad
		}
	}
	return PortRange{Min: uint16(minPort), Max: uint16(maxPort), Set: true}, nil
}

func ruleParseHooks(s string) (uint8, error) {
	if len(s) > ruleHooksMax {
		return 0, ruleErr("hooks", ruleMsgHooksList)
	}
	var mask uint8
	for name := range strings.SplitSeq(s, ",") {
		h, ok := ParseHook(name)
		if !ok {
			return 0, ruleErr("hooks", ruleMsgHooksList)
		}
		if mask&(1<<h) != 0 {
			return 0, ruleErr("hooks", "hook named twice")
		}
		mask |= 1 << h
	}
	return mask, nil
}

// spec returns r as a ruleSpec, for validation.
func (r Rule) spec() ruleSpec {
	s := ruleSpec{
		hasID: true, hasHooks: true, hasProto: r.ProtoSet, hasSport: r.Sport.Set, hasDport: r.Dport.Set,
		hasBurst: r.Rate != 0 || r.Burst != 0,
		id:       uint32(r.ID), action: r.Action, family: r.Family, hooks: r.Hooks, proto: r.Proto, log: r.Log,
		sport: r.Sport, dport: r.Dport, iif: r.Iif, oif: r.Oif, rate: r.Rate, burst: r.Burst,
	}
	if r.Src.IsValid() {
		s.src = rulePrefix{addr: r.Src.Addr(), plen: uint32(r.Src.Bits())}
	}
	if r.Dst.IsValid() {
		s.dst = rulePrefix{addr: r.Dst.Addr(), plen: uint32(r.Dst.Bits())}
	}
	return s
}

// Validate checks r as the kernel checks a rule it is given, with the same
// first message.
func (r Rule) Validate() error {
	_, err := r.spec().validate()
	return err
}

// validate mirrors the kernel's kfw_spec_validate, check for check and in
// the same order, and returns the normalized Rule.
func (s ruleSpec) validate() (Rule, error) {
	switch {
	case !s.hasID:
		return Rule{}, ruleErr("id", "missing")
	case s.id < RuleIDMin || s.id > RuleIDMax:
		return Rule{}, ruleErr("id", ruleMsgID)
	case s.action == ActionUnspec:
		return Rule{}, ruleErr("action", "missing")
	case s.action != ActionAccept && s.action != ActionDrop:
		return Rule{}, ruleErr("action", ruleMsgAction)
	}
	r := Rule{ID: uint16(s.id), Action: s.action, Family: s.family, Hooks: HookMaskAll,
		Proto: s.proto, ProtoSet: s.hasProto, Log: s.log, Iif: s.iif, Oif: s.oif}
	if s.hasHooks {
		if s.hooks == 0 || s.hooks&^HookMaskAll != 0 {
			return Rule{}, ruleErr("hooks", "must name input, forward or output")
		}
		r.Hooks = s.hooks
	}

	var err error
	if r.Src, err = s.src.validate("src"); err != nil {
		return Rule{}, err
	}
	if r.Dst, err = s.dst.validate("dst"); err != nil {
		return Rule{}, err
	}
	if err := s.validateFamily(); err != nil {
		return Rule{}, err
	}

	portProto := s.hasProto && (s.proto == 6 || s.proto == 17)
	for _, p := range []struct {
		field string
		set   bool
		r     PortRange
	}{{"sport", s.hasSport, s.sport}, {"dport", s.hasDport, s.dport}} {
		if !p.set {
			continue
		}
		if !portProto {
			return Rule{}, ruleErr(p.field, "port range needs proto tcp or udp")
		}
		if p.r.Min > p.r.Max {
			return Rule{}, ruleErr(p.field, "range start above range end")
		}
	}
	if s.hasSport {
		r.Sport = PortRange{Min: s.sport.Min, Max: s.sport.Max, Set: true}
	}
	if s.hasDport {
		r.Dport = PortRange{Min: s.dport.Min, Max: s.dport.Max, Set: true}
	}

	if s.iif != "" {
		if err := ruleValidateIfName("iif", s.iif); err != nil {
			return Rule{}, err
		}
		if r.Hooks == 1<<HookOutput {
			return Rule{}, ruleErr("iif", "never matches at hook output")
		}
	}
	if s.oif != "" {
		if err := ruleValidateIfName("oif", s.oif); err != nil {
			return Rule{}, err
		}
		if r.Hooks == 1<<HookInput {
			return Rule{}, ruleErr("oif", "never matches at hook input")
		}
	}

	if s.rate > RuleRateMax {
		return Rule{}, ruleErr("rate", ruleMsgRate)
	}
	r.Rate, r.Burst = s.rate, s.rate
	if s.hasBurst {
		if s.rate == 0 {
			return Rule{}, ruleErr("burst", "needs rate")
		}
		if s.burst < 1 || s.burst > RuleBurstMax {
			return Rule{}, ruleErr("burst", ruleMsgBurst)
		}
		r.Burst = s.burst
	}
	return r, nil
}

// validate checks one prefix on its own, like kfw_prefix_validate.
func (p rulePrefix) validate(field string) (netip.Prefix, error) {
	if !p.addr.IsValid() {
		return netip.Prefix{}, nil
	}
	if p.plen > uint32(p.addr.BitLen()) {
		return netip.Prefix{}, ruleErr(field, "prefix length beyond the address size")
	}
	pfx := netip.PrefixFrom(p.addr, int(p.plen))
	if pfx.Masked().Addr() != p.addr {
		return netip.Prefix{}, ruleErr(field, "host bits set beyond the prefix length")
	}
	return pfx, nil
}

func (p rulePrefix) family() uint8 {
	switch {
	case !p.addr.IsValid():
		return FamilyAny
	case p.addr.Is4():
		return FamilyIPv4
	}
	return FamilyIPv6
}

// validateFamily mirrors kfw_spec_validate_family.
func (s ruleSpec) validateFamily() error {
	srcFam, dstFam := s.src.family(), s.dst.family()
	switch {
	case s.family != FamilyAny && s.family != FamilyIPv4 && s.family != FamilyIPv6:
		return ruleErr("family", ruleMsgFamily)
	case srcFam != FamilyAny && s.family != FamilyAny && srcFam != s.family:
		return ruleErr("src", "address family differs from family")
	case dstFam != FamilyAny && s.family != FamilyAny && dstFam != s.family:
		return ruleErr("dst", "address family differs from family")
	case srcFam != FamilyAny && dstFam != FamilyAny && srcFam != dstFam:
		return ruleErr("dst", "address family differs from src")
	}
	match := s.family
	if match == FamilyAny {
		match = srcFam
	}
	if match == FamilyAny {
		match = dstFam
	}
	if s.hasProto && s.proto == 1 && match == FamilyIPv6 {
		return ruleErr("proto", "icmp needs IPv4 (use icmpv6)")
	}
	if s.hasProto && s.proto == 58 && match == FamilyIPv4 {
		return ruleErr("proto", "icmpv6 needs IPv6 (use icmp)")
	}
	return nil
}

// ruleValidateIfName mirrors kfw_ifname_validate: 1..15 bytes of printable
// ASCII without space or '/', not "." or "..".
func ruleValidateIfName(field, name string) error {
	if len(name) > RuleIfNameMax {
		return ruleErr(field, "name longer than 15 bytes")
	}
	if name == "." || name == ".." {
		return ruleErr(field, "name must not be . or ..")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == '/' {
			return ruleErr(field, "invalid character in name")
		}
	}
	return nil
}

// String returns the rule in canonical form, without the leading "add":
// keys in the order id action family proto src dst sport dport iif oif hooks
// log rate burst, defaults left out, burst printed whenever rate is.
func (r Rule) String() string {
	b := make([]byte, 0, 96)
	b = append(b, "id="...)
	b = strconv.AppendUint(b, uint64(r.ID), 10)
	b = append(b, " action="...)
	b = append(b, r.Action.String()...)
	if r.Family != FamilyAny {
		b = append(b, " family="...)
		b = append(b, FamilyName(r.Family)...)
	}
	if r.ProtoSet {
		b = append(b, " proto="...)
		b = append(b, ProtoName(r.Proto)...)
	}
	if r.Src.IsValid() {
		b = append(b, " src="...)
		b = r.Src.AppendTo(b)
	}
	if r.Dst.IsValid() {
		b = append(b, " dst="...)
		b = r.Dst.AppendTo(b)
	}
	if r.Sport.Set {
		b = append(b, " sport="...)
		b = append(b, r.Sport.String()...)
	}
	if r.Dport.Set {
		b = append(b, " dport="...)
		b = append(b, r.Dport.String()...)
	}
	if r.Iif != "" {
		b = append(b, " iif="...)
		b = append(b, r.Iif...)
	}
	if r.Oif != "" {
		b = append(b, " oif="...)
		b = append(b, r.Oif...)
	}
	if r.Hooks != HookMaskAll {
		b = append(b, " hooks="...)
		sep := ""
		for _, h := range Hooks() {
			if r.Hooks&(1<<h) != 0 {
				b = append(b, sep...)
				b = append(b, h.String()...)
				sep = ","
			}
		}
	}
	if r.Log {
		b = append(b, " log=1"...)
	}
	if r.Rate != 0 {
		b = append(b, " rate="...)
		b = strconv.AppendUint(b, uint64(r.Rate), 10)
		b = append(b, " burst="...)
		b = strconv.AppendUint(b, uint64(r.Burst), 10)
	}
	return string(b)
}

// String returns the command as a line of the rule language (without the
// newline), rules in canonical form.
func (c Command) String() string {
	switch c.Op {
	case CommandAdd:
		return "add " + c.Rule.String()
	case CommandDel:
		return "del id=" + strconv.FormatUint(uint64(c.ID), 10)
	case CommandFlush:
		return "flush"
	case CommandPolicy:
		return c.Policy.String()
	}
	return "unknown"
}

// String returns the policy as a "policy" command.
func (p Policy) String() string {
	return "policy hook=" + p.Hook.String() + " action=" + p.Action.String()
}

// ParseCommands parses a text of rule-language commands, one per line, as
// a /proc/kfw/rules write does: each line is checked in turn and the first
// failure is returned as a *CommandError naming its line; blank lines and
// comments are skipped. Whether the ids of del and add exist is a matter of
// a table: RuleTable.ApplyText runs a text against one exactly as the
// kernel does.
func ParseCommands(text string) ([]Command, error) {
	var cmds []Command
	err := ruleEachLine(text, func(cmd Command) error {
		cmds = append(cmds, cmd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cmds, nil
}

// ruleEachLine parses text line by line and calls fn for each command,
// stopping at the first error, which it locates.
func ruleEachLine(text string, fn func(Command) error) error {
	for lineNo := 1; len(text) > 0; lineNo++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		cmd, ok, err := ruleParseLine(line)
		if err == nil && ok {
			cmd.Line = lineNo
			err = fn(cmd)
		}
		if err != nil {
			return &CommandError{Line: lineNo, Err: err}
		}
	}
	return nil
}

// ruleParseLine parses one line like the kernel's kfw_text_check_line and
// kfw_text_line; ok is false for blank and comment lines.
func ruleParseLine(line string) (cmd Command, ok bool, err error) {
	if len(line) > MaxRuleLineBytes {
		return Command{}, false, ruleErr("line", "longer than 511 bytes")
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c != '\t' && (c < ' ' || c > '~') {
			return Command{}, false, ruleErr("line", "byte other than printable ASCII, space or tab")
		}
	}
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) == 0 || words[0][0] == '#' {
		return Command{}, false, nil
	}
	verb, args := words[0], words[1:]
	switch verb {
	case "add":
		r, err := ParseRule(args)
		return Command{Op: CommandAdd, Rule: r}, err == nil, err
	case "del":
		id, err := ruleParseDel(args)
		return Command{Op: CommandDel, ID: id}, err == nil, err
	case "flush":
		if len(args) > 0 {
			return Command{}, false, &FieldError{Field: "command", Reason: "flush takes no arguments", Word: args[0]}
		}
		return Command{Op: CommandFlush}, true, nil
	case "policy":
		p, err := ruleParsePolicy(args)
		return Command{Op: CommandPolicy, Policy: p}, err == nil, err
	}
	return Command{}, false, &FieldError{Field: "command", Reason: "unknown command", Word: verb}
}

var ruleDelKeys = []string{"id"}

func ruleParseDel(words []string) (uint16, error) {
	var id uint64
	seen := false
	err := ruleKeyWords(words, ruleDelKeys, func(_, v string) error {
		var err error
		if id, err = ruleParseUint(v, RuleIDMax); err == errRuleRange {
			return ruleErr("id", ruleMsgID)
		} else if err != nil {
			return ruleErr("id", "not a decimal number")
		}
		seen = true
		return nil
	})
	switch {
	case err != nil:
		return 0, err
	case !seen:
		return 0, ruleErr("id", "missing")
	case id < RuleIDMin:
		return 0, ruleErr("id", ruleMsgID)
	}
	return uint16(id), nil
}

// ruleParsePolicy mirrors kfw_cmd_policy, whose checks differ slightly from
// add's: a repeated key is caught before a missing '=', and an empty value
// is just not a hook or action.
func ruleParsePolicy(words []string) (Policy, error) {
	var p Policy
	var haveHook, haveAction bool
	for _, w := range words {
		key, value, hasEq := strings.Cut(w, "=")
		switch key {
		case "hook":
			if haveHook {
				return Policy{}, ruleErr(key, "repeated key")
			}
			if !hasEq {
				return Policy{}, ruleErr(key, "missing '='")
			}
			haveHook = true
			var ok bool
			if p.Hook, ok = ParseHook(value); !ok {
				return Policy{}, ruleErr(key, ruleMsgHook)
			}
		case "action":
			if haveAction {
				return Policy{}, ruleErr(key, "repeated key")
			}
			if !hasEq {
				return Policy{}, ruleErr(key, "missing '='")
			}
			haveAction = true
			var ok bool
			if p.Action, ok = ParseAction(value); !ok {
				return Policy{}, ruleErr(key, ruleMsgAction)
			}
		default:
			if hasEq {
				return Policy{}, &FieldError{Field: "key", Reason: "unknown key", Word: key}
			}
			return Policy{}, &FieldError{Field: "key", Reason: "expected KEY=VALUE", Word: key}
		}
	}
	if !haveHook {
		return Policy{}, ruleErr("hook", "missing")
	}
	if !haveAction {
		return Policy{}, ruleErr("action", "missing")
	}
	return p, nil
}

// RuleTable is a rule table with its policies, as /proc/kfw/rules shows it.
// Rules are kept in ascending id order.
type RuleTable struct {
	Policies [HookCount]Action
	Rules    []Rule
	// MaxRules, when not 0, is the capacity a transaction may not exceed
	// (the module's max_rules).
	MaxRules int
}

// NewRuleTable returns an empty table whose policies accept, the state of a
// freshly loaded module.
func NewRuleTable() *RuleTable {
	return &RuleTable{Policies: [HookCount]Action{ActionAccept, ActionAccept, ActionAccept}}
}

// Apply runs cmds as one transaction, as the kernel does: in order, on a
// copy; on the first failure t is left unchanged and the error names the
// command's line (if it has one).
func (t *RuleTable) Apply(cmds []Command) error {
	next := t.clone()
	for _, c := range cmds {
		if err := next.apply(c); err != nil {
			if c.Line > 0 {
				return &CommandError{Line: c.Line, Err: err}
			}
			return err
		}
	}
	return t.commit(next)
}

// ApplyText runs a text of commands as one transaction exactly as a
// /proc/kfw/rules write does: line by line, each line parsed and applied
// before the next is looked at, so the first failure is the one the kernel
// reports.
func (t *RuleTable) ApplyText(text string) error {
	next := t.clone()
	if err := ruleEachLine(text, next.apply); err != nil {
		return err
	}
	return t.commit(next)
}

func (t *RuleTable) clone() *RuleTable {
	return &RuleTable{Policies: t.Policies, Rules: slices.Clone(t.Rules), MaxRules: t.MaxRules}
}

func (t *RuleTable) commit(next *RuleTable) error {
	if t.MaxRules > 0 && len(next.Rules) > t.MaxRules {
		return ruleErr("rules", "more than max_rules rules")
	}
	*t = *next
	return nil
}

func (t *RuleTable) find(id uint16) (int, bool) {
	return slices.BinarySearchFunc(t.Rules, id, func(r Rule, id uint16) int { return int(r.ID) - int(id) })
}

// apply runs one command on t, with the kernel's kfw_txn_* checks.
func (t *RuleTable) apply(c Command) error {
	switch c.Op {
	case CommandAdd:
		r, err := c.Rule.spec().validate()
		if err != nil {
			return err
		}
		i, found := t.find(r.ID)
		if found {
			return ruleErr("id", "rule already exists")
		}
		t.Rules = slices.Insert(t.Rules, i, r)
	case CommandDel:
		if c.ID < RuleIDMin {
			return ruleErr("id", ruleMsgID)
		}
		i, found := t.find(c.ID)
		if !found {
			return ruleErr("id", "no such rule")
		}
		t.Rules = slices.Delete(t.Rules, i, i+1)
	case CommandFlush:
		t.Rules = t.Rules[:0]
	case CommandPolicy:
		if int(c.Policy.Hook) >= HookCount {
			return ruleErr("hook", ruleMsgHook)
		}
		if c.Policy.Action != ActionAccept && c.Policy.Action != ActionDrop {
			return ruleErr("action", ruleMsgAction)
		}
		t.Policies[c.Policy.Hook] = c.Policy.Action
	default:
		return fmt.Errorf("unknown command op %d", c.Op)
	}
	return nil
}

// String returns the table exactly as a read of /proc/kfw/rules prints it:
// flush, the three policies in hook order, then one add per rule.
func (t *RuleTable) String() string {
	var sb strings.Builder
	sb.WriteString("flush\n")
	for _, h := range Hooks() {
		sb.WriteString(Policy{Hook: h, Action: t.Policies[h]}.String())
		sb.WriteByte('\n')
	}
	for _, r := range t.Rules {
		sb.WriteString("add ")
		sb.WriteString(r.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}
