// Package abi is the Go half of the contract between the kfw kernel module and
// userspace. It mirrors kmod/uapi/kfw.h value for value (header_test.go checks
// that) and holds the shared code that reads and writes the formats described
// in docs/ABI.md.
package abi

// Version is the ABI version this package speaks: /proc/kfw/stats abi_version
// and KFW_STATS_A_ABI_VERSION.
const Version = 1

// Generic netlink family.
const (
	GenlName          = "kfw"
	GenlVersion       = 1
	McastGroupEvents  = "events"
	RuleIDMin         = 1
	RuleIDMax         = 65535
	RuleIDPolicy      = 0 // rule id of events caused by a default policy
	IfNameSize        = 16
	FamilyAny         = 0
	FamilyIPv4        = 2  // AF_INET
	FamilyIPv6        = 10 // AF_INET6
	HookCount         = 3
	HookMaskAll       = 1<<HookCount - 1
	ProcDir           = "kfw"
	ProcRules         = "rules"
	ProcStats         = "stats"
	ProcHooks         = "hooks"
	ProcRuleStats     = "rule_stats"
	MaxProcWriteBytes = 4096
	MaxRuleLineBytes  = 511     // KFW_RULE_LINE_MAX
	RuleRateMax       = 1000000 // KFW_RULE_RATE_MAX, events/s
	RuleBurstMax      = 1000000 // KFW_RULE_BURST_MAX
)

// Hook is enum kfw_hook.
type Hook uint8

// Hooks, in table order.
const (
	HookInput Hook = iota
	HookForward
	HookOutput
)

// Action is enum kfw_action: a rule's action, a policy or a verdict.
type Action uint8

// Actions.
const (
	ActionUnspec Action = iota
	ActionAccept
	ActionDrop
)

// EventType is enum kfw_event_type.
type EventType uint8

// Event types.
const (
	EventUnspec EventType = iota
	EventDrop
	EventHit
)

// Commands (enum kfw_cmd).
const (
	CmdUnspec = iota
	CmdGetStats
	CmdGetRule
	CmdNewRule
	CmdDelRule
	CmdFlush
	CmdSetPolicy
	CmdGetPolicy
	CmdReplace
	CmdEvents
)

// Top-level attributes (enum kfw_attr).
const (
	AttrUnspec = iota
	AttrPad
	AttrRule
	AttrPolicy
	AttrStats
	AttrInstance
	AttrCPU
	AttrNextSeq
	AttrEvent
)

// Rule attributes (enum kfw_rule_attr).
const (
	RuleAttrUnspec = iota
	RuleAttrPad
	RuleAttrID
	RuleAttrAction
	RuleAttrFamily
	RuleAttrHooks
	RuleAttrProto
	RuleAttrSrc
	RuleAttrSrcPlen
	RuleAttrDst
	RuleAttrDstPlen
	RuleAttrSportMin
	RuleAttrSportMax
	RuleAttrDportMin
	RuleAttrDportMax
	RuleAttrIif
	RuleAttrOif
	RuleAttrLog
	RuleAttrRate
	RuleAttrBurst
	RuleAttrPackets
	RuleAttrBytes
	RuleAttrEvents
	RuleAttrSuppressed
)

// Policy attributes (enum kfw_policy_attr).
const (
	PolicyAttrUnspec = iota
	PolicyAttrHook
	PolicyAttrAction
)

// Stats attributes (enum kfw_stats_attr).
const (
	StatsAttrUnspec = iota
	StatsAttrPad
	StatsAttrABIVersion
	StatsAttrVersion
	StatsAttrInstance
	StatsAttrGeneration
	StatsAttrRules
	StatsAttrMaxRules
	StatsAttrEventsGenerated
	StatsAttrEventsSuppressed
	StatsAttrEventsQueueOverflows
	StatsAttrEventsMessagesSent
	StatsAttrEventsNoListener
	StatsAttrEventsAllocFailures
	StatsAttrEventsNobufs
)

// Event attributes (enum kfw_event_attr).
const (
	EventAttrUnspec = iota
	EventAttrPad
	EventAttrType
	EventAttrRule
	EventAttrFamily
	EventAttrHook
	EventAttrProto
	EventAttrSaddr
	EventAttrDaddr
	EventAttrSport
	EventAttrDport
	EventAttrIif
	EventAttrOif
	EventAttrLen
	EventAttrTstamp
	EventAttrSeq
	EventAttrSuppressed
)

var hookNames = [...]string{HookInput: "input", HookForward: "forward", HookOutput: "output"}

// Hooks lists every hook in table order.
func Hooks() []Hook { return []Hook{HookInput, HookForward, HookOutput} }

// String returns the hook's name in the rule language ("input", ...).
func (h Hook) String() string {
	if int(h) < len(hookNames) {
		return hookNames[h]
	}
	return "unknown"
}

// ParseHook is the inverse of Hook.String.
func ParseHook(s string) (Hook, bool) {
	for i, n := range hookNames {
		if n == s {
			return Hook(i), true
		}
	}
	return 0, false
}

// String returns "accept", "drop" or "unknown".
func (a Action) String() string {
	switch a {
	case ActionAccept:
		return "accept"
	case ActionDrop:
		return "drop"
	}
	return "unknown"
}

// ParseAction is the inverse of Action.String.
func ParseAction(s string) (Action, bool) {
	switch s {
	case "accept":
		return ActionAccept, true
	case "drop":
		return ActionDrop, true
	}
	return ActionUnspec, false
}

// String returns "drop", "hit" or "unknown".
func (t EventType) String() string {
	switch t {
	case EventDrop:
		return "drop"
	case EventHit:
		return "hit"
	}
	return "unknown"
}

// FamilyName returns "ipv4", "ipv6", "any" or "unknown" for a KFW_FAMILY_* value.
func FamilyName(f uint8) string {
	switch f {
	case FamilyAny:
		return "any"
	case FamilyIPv4:
		return "ipv4"
	case FamilyIPv6:
		return "ipv6"
	}
	return "unknown"
}

// ProtoName returns the rule-language name of an IP protocol: tcp, udp, icmp,
// icmpv6, or the decimal number.
func ProtoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	}
	return uitoa(uint64(p))
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
