package abi

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// parseHeader extracts every #define with an integer or string value and every
// enumerator of kmod/uapi/kfw.h, so the Go constants can be compared with it.
func parseHeader(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../kmod/uapi/kfw.h")
	if err != nil {
		t.Fatalf("open UAPI header: %v", err)
	}
	defer f.Close()

	defineRE := regexp.MustCompile(`^#define\s+(KFW_\w+)\s+("[^"]*"|\d+)`)
	enumRE := regexp.MustCompile(`^\s+(_*KFW_\w+)\s*(?:=\s*(\d+))?\s*,`)
	vals := map[string]string{}
	inEnum := false
	next := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "enum "):
			inEnum, next = true, 0
		case strings.HasPrefix(line, "};"):
			inEnum = false
		case inEnum:
			if m := enumRE.FindStringSubmatch(line); m != nil {
				if m[2] != "" {
					next, _ = strconv.Atoi(m[2])
				}
				vals[m[1]] = strconv.Itoa(next)
				next++
			}
		default:
			if m := defineRE.FindStringSubmatch(line); m != nil {
				vals[m[1]] = strings.Trim(m[2], `"`)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vals
}

func TestGoConstantsMatchUAPIHeader(t *testing.T) {
	h := parseHeader(t)
	want := map[string]any{
		"KFW_ABI_VERSION": Version, "KFW_GENL_NAME": GenlName, "KFW_GENL_VERSION": GenlVersion,
		"KFW_MCGRP_EVENTS_NAME": McastGroupEvents, "KFW_RULE_ID_MIN": RuleIDMin,
		"KFW_RULE_ID_MAX": RuleIDMax, "KFW_RULE_ID_POLICY": RuleIDPolicy, "KFW_IFNAMSIZ": IfNameSize,
		"KFW_RULE_LINE_MAX": MaxRuleLineBytes, "KFW_RULE_RATE_MAX": RuleRateMax, "KFW_RULE_BURST_MAX": RuleBurstMax,
		"KFW_FAMILY_ANY": FamilyAny, "KFW_FAMILY_IPV4": FamilyIPv4, "KFW_FAMILY_IPV6": FamilyIPv6,
		"KFW_HOOK_INPUT": HookInput, "KFW_HOOK_FORWARD": HookForward, "KFW_HOOK_OUTPUT": HookOutput,
		"__KFW_HOOK_MAX":    HookCount,
		"KFW_ACTION_UNSPEC": ActionUnspec, "KFW_ACTION_ACCEPT": ActionAccept, "KFW_ACTION_DROP": ActionDrop,
		"KFW_EVENT_UNSPEC": EventUnspec, "KFW_EVENT_DROP": EventDrop, "KFW_EVENT_HIT": EventHit,

		"KFW_CMD_GET_STATS": CmdGetStats, "KFW_CMD_GET_RULE": CmdGetRule, "KFW_CMD_NEW_RULE": CmdNewRule,
		"KFW_CMD_DEL_RULE": CmdDelRule, "KFW_CMD_FLUSH": CmdFlush, "KFW_CMD_SET_POLICY": CmdSetPolicy,
		"KFW_CMD_GET_POLICY": CmdGetPolicy, "KFW_CMD_REPLACE": CmdReplace, "KFW_CMD_EVENTS": CmdEvents,

		"KFW_A_PAD": AttrPad, "KFW_A_RULE": AttrRule, "KFW_A_POLICY": AttrPolicy, "KFW_A_STATS": AttrStats,
		"KFW_A_INSTANCE": AttrInstance, "KFW_A_CPU": AttrCPU, "KFW_A_NEXT_SEQ": AttrNextSeq,
		"KFW_A_EVENT": AttrEvent,

		"KFW_RULE_A_PAD": RuleAttrPad, "KFW_RULE_A_ID": RuleAttrID, "KFW_RULE_A_ACTION": RuleAttrAction,
		"KFW_RULE_A_FAMILY": RuleAttrFamily, "KFW_RULE_A_HOOKS": RuleAttrHooks,
		"KFW_RULE_A_PROTO": RuleAttrProto, "KFW_RULE_A_SRC": RuleAttrSrc, "KFW_RULE_A_SRC_PLEN": RuleAttrSrcPlen,
		"KFW_RULE_A_DST": RuleAttrDst, "KFW_RULE_A_DST_PLEN": RuleAttrDstPlen,
		"KFW_RULE_A_SPORT_MIN": RuleAttrSportMin, "KFW_RULE_A_SPORT_MAX": RuleAttrSportMax,
		"KFW_RULE_A_DPORT_MIN": RuleAttrDportMin, "KFW_RULE_A_DPORT_MAX": RuleAttrDportMax,
		"KFW_RULE_A_IIF": RuleAttrIif, "KFW_RULE_A_OIF": RuleAttrOif, "KFW_RULE_A_LOG": RuleAttrLog,
		"KFW_RULE_A_RATE": RuleAttrRate, "KFW_RULE_A_BURST": RuleAttrBurst,
		"KFW_RULE_A_PACKETS": RuleAttrPackets, "KFW_RULE_A_BYTES": RuleAttrBytes,
		"KFW_RULE_A_EVENTS": RuleAttrEvents, "KFW_RULE_A_SUPPRESSED": RuleAttrSuppressed,

		"KFW_POLICY_A_HOOK": PolicyAttrHook, "KFW_POLICY_A_ACTION": PolicyAttrAction,

		"KFW_STATS_A_PAD": StatsAttrPad, "KFW_STATS_A_ABI_VERSION": StatsAttrABIVersion,
		"KFW_STATS_A_VERSION": StatsAttrVersion, "KFW_STATS_A_INSTANCE": StatsAttrInstance,
		"KFW_STATS_A_GENERATION": StatsAttrGeneration, "KFW_STATS_A_RULES": StatsAttrRules,
		"KFW_STATS_A_MAX_RULES": StatsAttrMaxRules, "KFW_STATS_A_EVENTS_GENERATED": StatsAttrEventsGenerated,
		"KFW_STATS_A_EVENTS_SUPPRESSED":      StatsAttrEventsSuppressed,
		"KFW_STATS_A_EVENTS_QUEUE_OVERFLOWS": StatsAttrEventsQueueOverflows,
		"KFW_STATS_A_EVENTS_MESSAGES_SENT":   StatsAttrEventsMessagesSent,
		"KFW_STATS_A_EVENTS_NO_LISTENER":     StatsAttrEventsNoListener,
		"KFW_STATS_A_EVENTS_ALLOC_FAILURES":  StatsAttrEventsAllocFailures,
		"KFW_STATS_A_EVENTS_NOBUFS":          StatsAttrEventsNobufs,

		"KFW_EVENT_A_PAD": EventAttrPad, "KFW_EVENT_A_TYPE": EventAttrType, "KFW_EVENT_A_RULE": EventAttrRule,
		"KFW_EVENT_A_FAMILY": EventAttrFamily, "KFW_EVENT_A_HOOK": EventAttrHook,
		"KFW_EVENT_A_PROTO": EventAttrProto, "KFW_EVENT_A_SADDR": EventAttrSaddr,
		"KFW_EVENT_A_DADDR": EventAttrDaddr, "KFW_EVENT_A_SPORT": EventAttrSport,
		"KFW_EVENT_A_DPORT": EventAttrDport, "KFW_EVENT_A_IIF": EventAttrIif, "KFW_EVENT_A_OIF": EventAttrOif,
		"KFW_EVENT_A_LEN": EventAttrLen, "KFW_EVENT_A_TSTAMP": EventAttrTstamp, "KFW_EVENT_A_SEQ": EventAttrSeq,
		"KFW_EVENT_A_SUPPRESSED": EventAttrSuppressed,
	}
	for name, goVal := range want {
		cVal, ok := h[name]
		if !ok {
			t.Errorf("%s: not in the UAPI header", name)
			continue
		}
		var g string
		switch v := goVal.(type) {
		case string:
			g = v
		case int:
			g = strconv.Itoa(v)
		case Hook:
			g = strconv.Itoa(int(v))
		case Action:
			g = strconv.Itoa(int(v))
		case EventType:
			g = strconv.Itoa(int(v))
		default:
			t.Fatalf("%s: unhandled Go type %T", name, goVal)
		}
		if g != cVal {
			t.Errorf("%s: Go has %s, the UAPI header %s", name, g, cVal)
		}
	}
	// Every enumerator and value define in the header must be mirrored here.
	for name := range h {
		if strings.HasPrefix(name, "__") || strings.HasSuffix(name, "_UNSPEC") {
			continue
		}
		if _, ok := want[name]; !ok {
			t.Errorf("%s: in the UAPI header but not mirrored in package abi", name)
		}
	}
}
