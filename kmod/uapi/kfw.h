/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kfw: userspace ABI (version KFW_ABI_VERSION).
 *
 * This header is the C half of the contract between the kfw module and
 * userspace; docs/ABI.md is the prose half and the Go package
 * github.com/kfwlabs/kfw_exporter/abi mirrors every value below (a test
 * compares them).  Change all three together.
 *
 * Compatibility rules within one ABI version: values are never renumbered;
 * new attributes, commands, /proc lines and /proc columns may be appended;
 * readers ignore what they do not know.  Anything else bumps KFW_ABI_VERSION.
 */
#ifndef _UAPI_LINUX_KFW_H
#define _UAPI_LINUX_KFW_H

#include <linux/types.h>

#define KFW_ABI_VERSION		1

/* Generic netlink family. */
#define KFW_GENL_NAME		"kfw"
#define KFW_GENL_VERSION	1
#define KFW_MCGRP_EVENTS_NAME	"events"

/* Rule ids: chosen by the user, evaluated in ascending order. */
#define KFW_RULE_ID_MIN		1
#define KFW_RULE_ID_MAX		65535
/* Rule id carried by events caused by a hook's default policy. */
#define KFW_RULE_ID_POLICY	0

#define KFW_IFNAMSIZ		16	/* same as IFNAMSIZ */

/* Rule language limits (docs/ABI.md). */
#define KFW_RULE_LINE_MAX	511	/* bytes in a line, '\n' not counted */
#define KFW_RULE_RATE_MAX	1000000	/* events/s */
#define KFW_RULE_BURST_MAX	1000000

/* Address families: the AF_* values; 0 in a rule means "any". */
#define KFW_FAMILY_ANY		0
#define KFW_FAMILY_IPV4		2	/* AF_INET */
#define KFW_FAMILY_IPV6		10	/* AF_INET6 */

enum kfw_hook {
	KFW_HOOK_INPUT,		/* NF_INET_LOCAL_IN */
	KFW_HOOK_FORWARD,	/* NF_INET_FORWARD */
	KFW_HOOK_OUTPUT,	/* NF_INET_LOCAL_OUT */
	__KFW_HOOK_MAX,
};

#define KFW_HOOK_COUNT		__KFW_HOOK_MAX
#define KFW_HOOK_MASK_ALL	((1U << KFW_HOOK_COUNT) - 1)

/* A rule's action, a policy, or the verdict a packet got. */
enum kfw_action {
	KFW_ACTION_UNSPEC,
	KFW_ACTION_ACCEPT,
	KFW_ACTION_DROP,
	__KFW_ACTION_MAX,
};

#define KFW_ACTION_MAX		(__KFW_ACTION_MAX - 1)

enum kfw_event_type {
	KFW_EVENT_UNSPEC,
	KFW_EVENT_DROP,		/* a rule or a default policy dropped it */
	KFW_EVENT_HIT,		/* a rule with log=1 accepted it */
	__KFW_EVENT_MAX,
};

#define KFW_EVENT_MAX		(__KFW_EVENT_MAX - 1)

enum kfw_cmd {
	KFW_CMD_UNSPEC,
	KFW_CMD_GET_STATS,	/* doit: reply carries KFW_A_STATS */
	KFW_CMD_GET_RULE,	/* dumpit: one KFW_A_RULE per message */
	KFW_CMD_NEW_RULE,	/* admin: KFW_A_RULE */
	KFW_CMD_DEL_RULE,	/* admin: KFW_A_RULE with KFW_RULE_A_ID */
	KFW_CMD_FLUSH,		/* admin: remove every rule */
	KFW_CMD_SET_POLICY,	/* admin: one or more KFW_A_POLICY */
	KFW_CMD_GET_POLICY,	/* doit: reply carries one KFW_A_POLICY per hook */
	KFW_CMD_REPLACE,	/* admin: atomically replace rules and policies */
	KFW_CMD_EVENTS,		/* multicast on "events": a batch of events */
	__KFW_CMD_MAX,
};

#define KFW_CMD_MAX		(__KFW_CMD_MAX - 1)

/* Top-level attributes. */
enum kfw_attr {
	KFW_A_UNSPEC,
	KFW_A_PAD,
	KFW_A_RULE,		/* nest: enum kfw_rule_attr (repeated in REPLACE) */
	KFW_A_POLICY,		/* nest: enum kfw_policy_attr (repeatable) */
	KFW_A_STATS,		/* nest: enum kfw_stats_attr */
	KFW_A_INSTANCE,		/* u64: module instance that sent the batch */
	KFW_A_CPU,		/* u32: CPU whose queue the batch drains */
	KFW_A_NEXT_SEQ,		/* u64: every seq below it on this CPU is accounted */
	KFW_A_EVENT,		/* nest: enum kfw_event_attr (repeated) */
	__KFW_A_MAX,
};

#define KFW_A_MAX		(__KFW_A_MAX - 1)

/* A rule.  Absent match attributes mean "any". */
enum kfw_rule_attr {
	KFW_RULE_A_UNSPEC,
	KFW_RULE_A_PAD,
	KFW_RULE_A_ID,		/* u32: 1..65535 */
	KFW_RULE_A_ACTION,	/* u8: enum kfw_action */
	KFW_RULE_A_FAMILY,	/* u8: KFW_FAMILY_* */
	KFW_RULE_A_HOOKS,	/* u32: bit mask of 1 << enum kfw_hook */
	KFW_RULE_A_PROTO,	/* u8: IP protocol number */
	KFW_RULE_A_SRC,		/* binary: 4 or 16 bytes, network order */
	KFW_RULE_A_SRC_PLEN,	/* u8: prefix length (default: full) */
	KFW_RULE_A_DST,		/* binary: 4 or 16 bytes, network order */
	KFW_RULE_A_DST_PLEN,	/* u8 */
	KFW_RULE_A_SPORT_MIN,	/* u16, host order */
	KFW_RULE_A_SPORT_MAX,	/* u16 (default: SPORT_MIN) */
	KFW_RULE_A_DPORT_MIN,	/* u16 */
	KFW_RULE_A_DPORT_MAX,	/* u16 (default: DPORT_MIN) */
	KFW_RULE_A_IIF,		/* string: input interface name */
	KFW_RULE_A_OIF,		/* string: output interface name */
	KFW_RULE_A_LOG,		/* u8: 1 = emit hit events */
	KFW_RULE_A_RATE,	/* u32: events per second, 0 = no rule limit */
	KFW_RULE_A_BURST,	/* u32: bucket size (default: RATE) */
	/* Counters, in dump replies only. */
	KFW_RULE_A_PACKETS,	/* u64 */
	KFW_RULE_A_BYTES,	/* u64 */
	KFW_RULE_A_EVENTS,	/* u64: events generated for this rule */
	KFW_RULE_A_SUPPRESSED,	/* u64: events this rule's limits suppressed */
	__KFW_RULE_A_MAX,
};

#define KFW_RULE_A_MAX		(__KFW_RULE_A_MAX - 1)

enum kfw_policy_attr {
	KFW_POLICY_A_UNSPEC,
	KFW_POLICY_A_HOOK,	/* u8: enum kfw_hook */
	KFW_POLICY_A_ACTION,	/* u8: enum kfw_action */
	__KFW_POLICY_A_MAX,
};

#define KFW_POLICY_A_MAX	(__KFW_POLICY_A_MAX - 1)

/* The numbers of /proc/kfw/stats, under the same names. */
enum kfw_stats_attr {
	KFW_STATS_A_UNSPEC,
	KFW_STATS_A_PAD,
	KFW_STATS_A_ABI_VERSION,		/* u32 */
	KFW_STATS_A_VERSION,			/* string: module version */
	KFW_STATS_A_INSTANCE,			/* u64 */
	KFW_STATS_A_GENERATION,			/* u64 */
	KFW_STATS_A_RULES,			/* u32 */
	KFW_STATS_A_MAX_RULES,			/* u32 */
	KFW_STATS_A_EVENTS_GENERATED,		/* u64 */
	KFW_STATS_A_EVENTS_SUPPRESSED,		/* u64 */
	KFW_STATS_A_EVENTS_QUEUE_OVERFLOWS,	/* u64 */
	KFW_STATS_A_EVENTS_MESSAGES_SENT,	/* u64 */
	KFW_STATS_A_EVENTS_NO_LISTENER,		/* u64 */
	KFW_STATS_A_EVENTS_ALLOC_FAILURES,	/* u64 */
	KFW_STATS_A_EVENTS_NOBUFS,		/* u64 */
	__KFW_STATS_A_MAX,
};

#define KFW_STATS_A_MAX		(__KFW_STATS_A_MAX - 1)

/* One event inside a KFW_CMD_EVENTS batch. */
enum kfw_event_attr {
	KFW_EVENT_A_UNSPEC,
	KFW_EVENT_A_PAD,
	KFW_EVENT_A_TYPE,	/* u8: enum kfw_event_type */
	KFW_EVENT_A_RULE,	/* u32: rule id, 0 = default policy */
	KFW_EVENT_A_FAMILY,	/* u8: KFW_FAMILY_IPV4 or KFW_FAMILY_IPV6 */
	KFW_EVENT_A_HOOK,	/* u8: enum kfw_hook */
	KFW_EVENT_A_PROTO,	/* u8: transport protocol (after v6 ext headers) */
	KFW_EVENT_A_SADDR,	/* binary: 4 or 16 bytes, network order */
	KFW_EVENT_A_DADDR,	/* binary: 4 or 16 bytes, network order */
	KFW_EVENT_A_SPORT,	/* u16, host order; tcp/udp first fragment only */
	KFW_EVENT_A_DPORT,	/* u16 */
	KFW_EVENT_A_IIF,	/* u32: input ifindex, absent if none */
	KFW_EVENT_A_OIF,	/* u32: output ifindex, absent if none */
	KFW_EVENT_A_LEN,	/* u32: packet length (IP header included) */
	KFW_EVENT_A_TSTAMP,	/* u64: CLOCK_REALTIME, ns */
	KFW_EVENT_A_SEQ,	/* u64: per-CPU sequence number */
	KFW_EVENT_A_SUPPRESSED,	/* u32: suppressed for this rule since its last event */
	__KFW_EVENT_A_MAX,
};

#define KFW_EVENT_A_MAX		(__KFW_EVENT_A_MAX - 1)

#endif /* _UAPI_LINUX_KFW_H */
