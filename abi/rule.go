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
	RuleRateMax   = 1000000 // largest rate and burst, events/s
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

// FieldError is an invalid rule-language input. Field names the key at
// fault (or the command word); Reason is a fixed text, the same one the
// kernel gives for the same mistake, so that
// "dport: port range needs proto tcp or udp" reads the same everywhere.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// CommandError locates an error in a text of commands, as the kernel log
// does for /proc/kfw/rules writes: "line 3: dport: ...".
type CommandError struct {
	Line int
	Err  error
}

func (e *CommandError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Err.Error() }

func (e *CommandError) Unwrap() error { return e.Err }

func ruleErr(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// Rule keys in canonical order; the order of this list is the order in
// which Rule.String prints them.
const (
	ruleKeyID = iota
	ruleKeyAction
	ruleKeyFamily
	ruleKeyProto
	ruleKeySrc
	ruleKeyDst
	ruleKeySport
	ruleKeyDport
	ruleKeyIif
	ruleKeyOif
	ruleKeyHooks
	ruleKeyLog
	ruleKeyRate
	ruleKeyBurst
	ruleKeyCount
)

var ruleKeyNames = [ruleKeyCount]string{
	"id", "action", "family", "proto", "src", "dst", "sport", "dport",
	"iif", "oif", "hooks", "log", "rate", "burst",
}

func ruleKeyIndex(key string) int {
	for i, k := range ruleKeyNames {
		if k == key {
			return i
		}
	}
	return -1
}

// ruleSplitWord splits a KEY=VALUE word, rejecting a missing '=' and an
// empty value.
func ruleSplitWord(word string) (key, value string, err error) {
	key, value, ok := strings.Cut(word, "=")
	if !ok {
		return "", "", ruleErr(word, "missing '='")
	}
	if key == "" {
		return "", "", ruleErr(word, "empty key")
	}
	if value == "" {
		return "", "", ruleErr(key, "empty value")
	}
	return key, value, nil
}

// ParseRule parses the KEY=VALUE words of an add command (without the word
// "add") into a validated Rule with every default filled in.
func ParseRule(words []string) (Rule, error) {
	r := Rule{Hooks: HookMaskAll}
	var seen [ruleKeyCount]bool
	for _, w := range words {
		key, value, err := ruleSplitWord(w)
		if err != nil {
			return Rule{}, err
		}
		k := ruleKeyIndex(key)
		if k < 0 {
			return Rule{}, ruleErr(key, "unknown key")
		}
		if seen[k] {
			return Rule{}, ruleErr(key, "repeated key")
		}
		seen[k] = true
		if err := r.setKey(k, value); err != nil {
			return Rule{}, err
		}
	}
	if !seen[ruleKeyID] {
		return Rule{}, ruleErr("id", "missing")
	}
	if !seen[ruleKeyAction] {
		return Rule{}, ruleErr("action", "missing")
	}
	if !seen[ruleKeyBurst] {
		r.Burst = r.Rate
	}
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// setKey parses one value into r; each key's value is checked on its own
// here, and the relations between keys later by Validate.
func (r *Rule) setKey(k int, value string) error {
	name := ruleKeyNames[k]
	var err error
	switch k {
	case ruleKeyID:
		var v uint64
		v, err = ruleParseUint(name, value, RuleIDMin, RuleIDMax)
		r.ID = uint16(v)
	case ruleKeyAction:
		var ok bool
		if r.Action, ok = ParseAction(value); !ok {
			err = ruleErr(name, "must be accept or drop")
		}
	case ruleKeyFamily:
		switch value {
		case "any":
			r.Family = FamilyAny
		case "ipv4":
			r.Family = FamilyIPv4
		case "ipv6":
			r.Family = FamilyIPv6
		default:
			err = ruleErr(name, "must be ipv4, ipv6 or any")
		}
	case ruleKeyProto:
		r.Proto, err = ruleParseProto(value)
		r.ProtoSet = true
	case ruleKeySrc:
		r.Src, err = ruleParsePrefix(name, value)
	case ruleKeyDst:
		r.Dst, err = ruleParsePrefix(name, value)
	case ruleKeySport:
		r.Sport, err = ruleParsePorts(name, value)
	case ruleKeyDport:
		r.Dport, err = ruleParsePorts(name, value)
	case ruleKeyIif:
		r.Iif = value
	case ruleKeyOif:
		r.Oif = value
	case ruleKeyHooks:
		r.Hooks, err = ruleParseHooks(value)
	case ruleKeyLog:
		switch value {
		case "0":
			r.Log = false
		case "1":
			r.Log = true
		default:
			err = ruleErr(name, "must be 0 or 1")
		}
	case ruleKeyRate:
		var v uint64
		v, err = ruleParseUint(name, value, 0, RuleRateMax)
		r.Rate = uint32(v)
	case ruleKeyBurst:
		var v uint64
		v, err = ruleParseUint(name, value, 1, RuleRateMax)
		r.Burst = uint32(v)
	}
	return err
}

// ruleParseUint accepts decimal digits only (no sign, no base prefix).
func ruleParseUint(field, s string, lo, hi uint64) (uint64, error) {
	if !ruleAllDigits(s) {
		return 0, ruleErr(field, "not a number")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, ruleErr(field, fmt.Sprintf("out of range %d..%d", lo, hi))
	}
	return v, nil
}

func ruleAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func ruleParseProto(s string) (uint8, error) {
	switch s {
	case "icmp":
		return 1, nil
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmpv6":
		return 58, nil
	}
	if !ruleAllDigits(s) {
		return 0, ruleErr("proto", "must be tcp, udp, icmp, icmpv6 or a number")
	}
	v, err := ruleParseUint("proto", s, 0, 255)
	return uint8(v), err
}

// ruleParsePrefix parses ADDR or ADDR/LEN; without LEN the prefix is the
// full address.
func ruleParsePrefix(field, s string) (netip.Prefix, error) {
	addrText, lenText, hasLen := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrText)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, ruleErr(field, "invalid address")
	}
	bits := addr.BitLen()
	if hasLen {
		if !ruleAllDigits(lenText) {
			return netip.Prefix{}, ruleErr(field, "invalid address")
		}
		v, err := strconv.ParseUint(lenText, 10, 64)
		if err != nil || v > uint64(addr.BitLen()) {
			return netip.Prefix{}, ruleErr(field, "prefix length beyond address size")
		}
		bits = int(v)
	}
	p := netip.PrefixFrom(addr, bits)
	if p.Masked().Addr() != addr {
		return netip.Prefix{}, ruleErr(field, "host bits set")
	}
	return p, nil
}

func ruleParsePorts(field, s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	minPort, err := ruleParseUint(field, lo, 0, 65535)
	if err != nil {
		return PortRange{}, err
	}
	maxPort := minPort
	if isRange {
		if maxPort, err = ruleParseUint(field, hi, 0, 65535); err != nil {
			return PortRange{}, err
		}
	}
	if minPort > maxPort {
		return PortRange{}, ruleErr(field, "range start above end")
	}
	return PortRange{Min: uint16(minPort), Max: uint16(maxPort), Set: true}, nil
}

func ruleParseHooks(s string) (uint8, error) {
	var mask uint8
	for name := range strings.SplitSeq(s, ",") {
		h, ok := ParseHook(name)
		if !ok {
			return 0, ruleErr("hooks", "must be a list of input, forward, output")
		}
		if mask&(1<<h) != 0 {
			return 0, ruleErr("hooks", "repeated hook")
		}
		mask |= 1 << h
	}
	return mask, nil
}

// ruleValidIfName mirrors the ABI: 1..15 bytes, no '/', not "." or "..";
// the rule language itself already excludes blanks and non-printable bytes.
func ruleValidIfName(s string) bool {
	if s == "" || len(s) > RuleIfNameMax || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '/' {
			return false
		}
	}
	return true
}

func ruleAddrFamily(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return FamilyIPv4
	}
	return FamilyIPv6
}

// Validate checks every rule of docs/ABI.md that does not need the table:
// ranges, then the relations between keys, in the order the ABI lists them.
func (r Rule) Validate() error {
	if r.ID < RuleIDMin {
		return ruleErr("id", fmt.Sprintf("out of range %d..%d", RuleIDMin, RuleIDMax))
	}
	if r.Action != ActionAccept && r.Action != ActionDrop {
		return ruleErr("action", "must be accept or drop")
	}
	if r.Family != FamilyAny && r.Family != FamilyIPv4 && r.Family != FamilyIPv6 {
		return ruleErr("family", "must be ipv4, ipv6 or any")
	}
	if r.Hooks == 0 || r.Hooks&^HookMaskAll != 0 {
		return ruleErr("hooks", "must be a list of input, forward, output")
	}
	if r.Iif != "" && !ruleValidIfName(r.Iif) {
		return ruleErr("iif", "invalid interface name")
	}
	if r.Oif != "" && !ruleValidIfName(r.Oif) {
		return ruleErr("oif", "invalid interface name")
	}
	if r.Rate > RuleRateMax {
		return ruleErr("rate", fmt.Sprintf("out of range 0..%d", RuleRateMax))
	}
	if r.Burst > RuleRateMax {
		return ruleErr("burst", fmt.Sprintf("out of range 1..%d", RuleRateMax))
	}

	// Address families: the rule's, src's and dst's must agree.
	fam := r.Family
	for _, a := range []struct {
		field string
		p     netip.Prefix
	}{{"src", r.Src}, {"dst", r.Dst}} {
		if !a.p.IsValid() {
			continue
		}
		if a.p != a.p.Masked() {
			return ruleErr(a.field, "host bits set")
		}
		af := ruleAddrFamily(a.p)
		switch {
		case r.Family != FamilyAny && af != r.Family:
			return ruleErr(a.field, "address family differs from family")
		case fam != FamilyAny && af != fam:
			return ruleErr(a.field, "address family differs from src")
		}
		fam = af
	}
	if r.ProtoSet && r.Proto == 1 && fam == FamilyIPv6 {
		return ruleErr("proto", "icmp needs ipv4")
	}
	if r.ProtoSet && r.Proto == 58 && fam == FamilyIPv4 {
		return ruleErr("proto", "icmpv6 needs ipv6")
	}

	hasPortProto := r.ProtoSet && (r.Proto == 6 || r.Proto == 17)
	for _, p := range []struct {
		field string
		r     PortRange
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if !p.r.Set {
			continue
		}
		if !hasPortProto {
			return ruleErr(p.field, "port range needs proto tcp or udp")
		}
		if p.r.Min > p.r.Max {
			return ruleErr(p.field, "range start above end")
		}
	}

	if r.Iif != "" && r.Hooks == 1<<HookOutput {
		return ruleErr("iif", "never matches at hook output")
	}
	if r.Oif != "" && r.Hooks == 1<<HookInput {
		return ruleErr("oif", "never matches at hook input")
	}
	if r.Burst != 0 && r.Rate == 0 {
		return ruleErr("burst", "needs rate")
	}
	if r.Rate != 0 && r.Burst == 0 {
		return ruleErr("burst", fmt.Sprintf("out of range 1..%d", RuleRateMax))
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
// a /proc/kfw/rules write does: every line is checked; blank lines and
// comments are skipped. Errors are *CommandError values naming the line.
// Whether del and add ids exist is a property of a table: see
// RuleTable.Apply.
func ParseCommands(text string) ([]Command, error) {
	var cmds []Command
	lineNo := 0
	for len(text) > 0 {
		lineNo++
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		cmd, ok, err := ruleParseLine(line)
		if err != nil {
			return nil, &CommandError{Line: lineNo, Err: err}
		}
		if ok {
			cmd.Line = lineNo
			cmds = append(cmds, cmd)
		}
	}
	return cmds, nil
}

var (
	errRuleLineTooLong = fmt.Errorf("line longer than %d bytes", MaxRuleLineBytes)
	errRuleLineByte    = errors.New("invalid byte (only printable ASCII, space and tab)")
)

// ruleParseLine parses one line; ok is false for blank and comment lines.
func ruleParseLine(line string) (cmd Command, ok bool, err error) {
	if len(line) > MaxRuleLineBytes {
		return Command{}, false, errRuleLineTooLong
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c != '\t' && (c < ' ' || c > '~') {
			return Command{}, false, errRuleLineByte
		}
	}
	words := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(words) == 0 || strings.HasPrefix(words[0], "#") {
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
			return Command{}, false, ruleErr("flush", "takes no arguments")
		}
		return Command{Op: CommandFlush}, true, nil
	case "policy":
		p, err := ruleParsePolicy(args)
		return Command{Op: CommandPolicy, Policy: p}, err == nil, err
	}
	return Command{}, false, ruleErr(verb, "unknown command")
}

func ruleParseDel(words []string) (uint16, error) {
	var id uint64
	seen := false
	for _, w := range words {
		key, value, err := ruleSplitWord(w)
		if err != nil {
			return 0, err
		}
		if key != "id" {
			return 0, ruleErr(key, "unknown key")
		}
		if seen {
			return 0, ruleErr(key, "repeated key")
		}
		seen = true
		if id, err = ruleParseUint("id", value, RuleIDMin, RuleIDMax); err != nil {
			return 0, err
		}
	}
	if !seen {
		return 0, ruleErr("id", "missing")
	}
	return uint16(id), nil
}

func ruleParsePolicy(words []string) (Policy, error) {
	var p Policy
	var haveHook, haveAction bool
	for _, w := range words {
		key, value, err := ruleSplitWord(w)
		if err != nil {
			return Policy{}, err
		}
		switch key {
		case "hook":
			if haveHook {
				return Policy{}, ruleErr(key, "repeated key")
			}
			haveHook = true
			var ok bool
			if p.Hook, ok = ParseHook(value); !ok {
				return Policy{}, ruleErr(key, "must be input, forward or output")
			}
		case "action":
			if haveAction {
				return Policy{}, ruleErr(key, "repeated key")
			}
			haveAction = true
			var ok bool
			if p.Action, ok = ParseAction(value); !ok {
				return Policy{}, ruleErr(key, "must be accept or drop")
			}
		default:
			return Policy{}, ruleErr(key, "unknown key")
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
	// MaxRules, when not 0, is the capacity Apply enforces (max_rules).
	MaxRules int
}

// NewRuleTable returns an empty table whose policies accept, the state of a
// freshly loaded module.
func NewRuleTable() *RuleTable {
	return &RuleTable{Policies: [HookCount]Action{ActionAccept, ActionAccept, ActionAccept}}
}

// Apply runs cmds as one transaction, the way the kernel does: in order, on
// a copy; on the first failure t is left unchanged and the error names the
// command's line.
func (t *RuleTable) Apply(cmds []Command) error {
	next := RuleTable{Policies: t.Policies, Rules: slices.Clone(t.Rules), MaxRules: t.MaxRules}
	for _, c := range cmds {
		if err := next.apply(c); err != nil {
			if c.Line > 0 {
				return &CommandError{Line: c.Line, Err: err}
			}
			return err
		}
	}
	if t.MaxRules > 0 && len(next.Rules) > t.MaxRules {
		return fmt.Errorf("table full: %d rules, max_rules %d", len(next.Rules), t.MaxRules)
	}
	*t = next
	return nil
}

func (t *RuleTable) find(id uint16) (int, bool) {
	return slices.BinarySearchFunc(t.Rules, id, func(r Rule, id uint16) int { return int(r.ID) - int(id) })
}

func (t *RuleTable) apply(c Command) error {
	switch c.Op {
	case CommandAdd:
		if err := c.Rule.Validate(); err != nil {
			return err
		}
		i, found := t.find(c.Rule.ID)
		if found {
			return ruleErr("id", "rule exists")
		}
		t.Rules = slices.Insert(t.Rules, i, c.Rule)
	case CommandDel:
		i, found := t.find(c.ID)
		if !found {
			return ruleErr("id", "no such rule")
		}
		t.Rules = slices.Delete(t.Rules, i, i+1)
	case CommandFlush:
		t.Rules = t.Rules[:0]
	case CommandPolicy:
		if int(c.Policy.Hook) >= HookCount {
			return ruleErr("hook", "must be input, forward or output")
		}
		if c.Policy.Action != ActionAccept && c.Policy.Action != ActionDrop {
			return ruleErr("action", "must be accept or drop")
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
