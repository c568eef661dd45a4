/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kfw: internal types and interfaces shared by the module's files.
 *
 * Everything userspace relies on is in uapi/kfw.h and docs/ABI.md.
 */
#ifndef _KFW_H
#define _KFW_H

#include <linux/atomic.h>
#include <linux/bits.h>
#include <linux/if.h>
#include <linux/kref.h>
#include <linux/mutex.h>
#include <linux/netfilter.h>
#include <linux/percpu.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/u64_stats_sync.h>
#include <linux/workqueue.h>

#include "uapi/kfw.h"

/* KFW_VERSION comes from dkms.conf (see Kbuild): one definition everywhere. */
#ifndef KFW_VERSION
#error "KFW_VERSION must be defined by the build (Kbuild reads dkms.conf)"
#endif

#define KFW_MAX_RULES_DEFAULT	4096
/* docs/ABI.md: a /proc/kfw/rules write is at most one page of 4096 bytes. */
#define KFW_PROC_WRITE_MAX	4096

/* Module identity and parameters (kfw_main.c). */
extern u64 kfw_instance;
extern unsigned int kfw_max_rules;

/* Deferred work of the module: table release and event delivery. */
extern struct workqueue_struct *kfw_wq;

/*
 * Errors.  Every validation failure names the field at fault and carries a
 * static message that starts with that field's name, so the /proc path can
 * log it and the netlink path can hand it to extended ack unchanged
 * (NL_SET_ERR_MSG_ATTR keeps the pointer, it does not copy).
 */
enum kfw_field {
	KFW_FIELD_NONE,		/* not one field: out of memory */
	KFW_FIELD_LINE,		/* a line: length, bytes */
	KFW_FIELD_COMMAND,
	KFW_FIELD_KEY,		/* a KEY=VALUE token whose key is unknown */
	KFW_FIELD_ID,
	KFW_FIELD_ACTION,
	KFW_FIELD_FAMILY,
	KFW_FIELD_PROTO,
	KFW_FIELD_SRC,
	KFW_FIELD_DST,
	KFW_FIELD_SPORT,
	KFW_FIELD_DPORT,
	KFW_FIELD_IIF,
	KFW_FIELD_OIF,
	KFW_FIELD_HOOKS,
	KFW_FIELD_LOG,
	KFW_FIELD_RATE,
	KFW_FIELD_BURST,
	KFW_FIELD_HOOK,		/* policy hook=H */
	KFW_FIELD_RULES,	/* the table as a whole: max_rules */
	__KFW_FIELD_MAX,
};

struct kfw_err {
	enum kfw_field field;
	const char *msg;	/* static; starts with the field name */
};

/*
 * Sets *e and returns -errno.  The message literal is prefixed with the
 * field's name at compile time: KFW_ERR(e, EINVAL, DPORT, "bad") gives
 * "dport: bad".
 */
#define KFW_ERR(e, errno_, fld, text)					\
	kfw_err_set((e), -(errno_), KFW_FIELD_##fld,			\
		    KFW_FIELD_NAME_##fld ": " text)

#define KFW_FIELD_NAME_LINE	"line"
#define KFW_FIELD_NAME_COMMAND	"command"
#define KFW_FIELD_NAME_KEY	"key"
#define KFW_FIELD_NAME_ID	"id"
#define KFW_FIELD_NAME_ACTION	"action"
#define KFW_FIELD_NAME_FAMILY	"family"
#define KFW_FIELD_NAME_PROTO	"proto"
#define KFW_FIELD_NAME_SRC	"src"
#define KFW_FIELD_NAME_DST	"dst"
#define KFW_FIELD_NAME_SPORT	"sport"
#define KFW_FIELD_NAME_DPORT	"dport"
#define KFW_FIELD_NAME_IIF	"iif"
#define KFW_FIELD_NAME_OIF	"oif"
#define KFW_FIELD_NAME_HOOKS	"hooks"
#define KFW_FIELD_NAME_LOG	"log"
#define KFW_FIELD_NAME_RATE	"rate"
#define KFW_FIELD_NAME_BURST	"burst"
#define KFW_FIELD_NAME_HOOK	"hook"
#define KFW_FIELD_NAME_RULES	"rules"

static inline int kfw_err_set(struct kfw_err *e, int err, enum kfw_field field,
			      const char *msg)
{
	e->field = field;
	e->msg = msg;
	return err;
}

/* An address prefix; family KFW_FAMILY_ANY means "no prefix match". */
struct kfw_prefix {
	union nf_inet_addr addr;	/* network order; IPv4 in .ip */
	union nf_inet_addr mask;	/* derived from plen by validation */
	u8 family;			/* KFW_FAMILY_IPV4 or KFW_FAMILY_IPV6 */
	u8 plen;
};

struct kfw_port_range {
	u16 min;
	u16 max;
};

/* kfw_rule_spec.present: fields given that have no "any" value of their own. */
#define KFW_SPEC_ID		BIT(0)
#define KFW_SPEC_HOOKS		BIT(1)
#define KFW_SPEC_PROTO		BIT(2)
#define KFW_SPEC_SPORT		BIT(3)
#define KFW_SPEC_DPORT		BIT(4)
#define KFW_SPEC_BURST		BIT(5)	/* after validation: iff rate > 0 */

/*
 * A rule as the user wrote it, plus what validation derives from it for the
 * packet path.  Every input path (the /proc text parser, netlink) fills the
 * user fields, with absent fields zeroed, and passes it to
 * kfw_spec_validate(), the only place where rules are checked.
 */
struct kfw_rule_spec {
	/* user fields */
	u32 present;		/* KFW_SPEC_* */
	u32 id;
	u8 action;		/* enum kfw_action */
	u8 family;		/* KFW_FAMILY_*, as given */
	u8 hooks;		/* mask of BIT(enum kfw_hook) */
	u8 proto;
	u8 log;
	struct kfw_prefix src;
	struct kfw_prefix dst;
	struct kfw_port_range sport;
	struct kfw_port_range dport;
	char iif[IFNAMSIZ];	/* "" = any; zero padded */
	char oif[IFNAMSIZ];
	u32 rate;
	u32 burst;
	/* derived by validation */
	u8 match_family;	/* family the rule can match, 0 = both */
	u8 iif_len;
	u8 oif_len;
};

/* kfw_rule.c */
int kfw_spec_validate(struct kfw_rule_spec *spec, struct kfw_err *e);
int kfw_policy_validate(u32 hook, u32 action, struct kfw_err *e);
bool kfw_spec_equal(const struct kfw_rule_spec *a,
		    const struct kfw_rule_spec *b);

/* Per-CPU counters of one rule; events and suppressed: kfw_events.c. */
struct kfw_rule_pcpu {
	u64_stats_t packets;
	u64_stats_t bytes;
	u64_stats_t events;
	u64_stats_t suppressed;
	struct u64_stats_sync syncp;
};

struct kfw_rule_counters {
	u64 packets;
	u64 bytes;
	u64 events;
	u64 suppressed;
};

/*
 * An event token bucket: @tokens counts NSEC_PER_SEC per event, so that a
 * rate of R events/s refills R tokens per nanosecond and no division is
 * needed.  A raw spinlock: the critical section is a few instructions, it
 * runs in the packet path, and it must not sleep on PREEMPT_RT either.
 */
struct kfw_bucket {
	raw_spinlock_t lock;
	u64 tokens;
	u64 stamp;		/* ktime_get_ns() of the last refill, 0 = full */
};

/*
 * The state of a rule that outlives a table: a new table shares it with the
 * old one when a rule keeps its id and its whole spec, which is how
 * counters, the event bucket and the suppressed-since-last count survive
 * unrelated changes.
 */
struct kfw_rule_state {
	refcount_t refcnt;
	struct kfw_rule_pcpu __percpu *pcpu;
	struct kfw_bucket bucket;	/* the rule's rate/burst */
	atomic_t suppressed;		/* refused since its last event */
};

struct kfw_rule {
	struct kfw_rule_spec spec;
	struct kfw_rule_state *state;
};

/*
 * A published table is immutable.  Readers on the packet path use it under
 * RCU only; /proc readers (and netlink dumps) pin it with kfw_table_get() so
 * that one snapshot serves several read() calls.
 */
struct kfw_table {
	struct kref ref;
	struct rcu_work release_work;
	u64 generation;
	u8 policy[KFW_HOOK_COUNT];	/* enum kfw_action per hook */
	u32 count;
	struct kfw_rule rules[];	/* ascending id */
};

/* kfw_table.c */
int kfw_table_init(void);
void kfw_table_exit(void);
struct kfw_table *kfw_table_get(void);
void kfw_table_put(struct kfw_table *t);
struct kfw_table *kfw_table_rcu(void);	/* under rcu_read_lock() */
void kfw_rule_counters_read(const struct kfw_rule *r,
			    struct kfw_rule_counters *c);

/*
 * A transaction: a private copy of the table that commands edit, published
 * whole by commit or dropped by abort.  begin() takes the writers' mutex
 * and commit()/abort() release it, so keep it short and in process context.
 * Every mutating function validates and reports through *e.
 */
struct kfw_txn {
	struct kfw_table *base;		/* the table the copy was taken from */
	struct kfw_rule_spec *rules;	/* the working copy */
	u32 count;
	u32 capacity;
	bool sorted;			/* rules[] in ascending id */
	unsigned long *ids;		/* ids present in rules[] */
	u8 policy[KFW_HOOK_COUNT];
	u32 commands;			/* commands applied, failed or not */
};

int kfw_txn_begin(struct kfw_txn *txn);
int kfw_txn_add(struct kfw_txn *txn, const struct kfw_rule_spec *spec,
		struct kfw_err *e);
int kfw_txn_del(struct kfw_txn *txn, u32 id, struct kfw_err *e);
void kfw_txn_flush(struct kfw_txn *txn);
int kfw_txn_policy(struct kfw_txn *txn, u32 hook, u32 action,
		   struct kfw_err *e);
int kfw_txn_commit(struct kfw_txn *txn, struct kfw_err *e);
void kfw_txn_abort(struct kfw_txn *txn);

/* kfw_parse.c: the rule language of /proc/kfw/rules. */
struct seq_file;

/* Where a rejected text transaction failed, for the log. */
struct kfw_text_error {
	struct kfw_err err;
	unsigned int line;	/* 1-based; 0 = the write as a whole */
	const char *word;	/* offending unknown word, or NULL */
};

int kfw_text_apply(char *buf, size_t len, struct kfw_text_error *te);
void kfw_print_policy(struct seq_file *m, enum kfw_hook hook, u8 action);
void kfw_print_rule(struct seq_file *m, const struct kfw_rule_spec *spec);
const char *kfw_action_name(u8 action);
const char *kfw_hook_name(enum kfw_hook hook);

/* kfw_hooks.c: netfilter hooks and per-hook counters. */
struct kfw_hook_counters {
	u64 packets;
	u64 bytes;
};

int kfw_hooks_init(void);		/* allocate the counters */
void kfw_hooks_exit(void);		/* free them, after unregister */
int kfw_hooks_register(void);		/* hook every netns, now and later */
void kfw_hooks_unregister(void);	/* unhook everywhere, wait for users */
void kfw_hook_counters_read(u8 family, enum kfw_hook hook, u8 verdict,
			    struct kfw_hook_counters *c);

/*
 * kfw_stats.c: the numbers of /proc/kfw/stats and KFW_CMD_GET_STATS.  The
 * event counters are in the order of their KFW_STATS_A_EVENTS_* attributes,
 * which are consecutive.
 */
enum kfw_event_stat {
	KFW_EVSTAT_GENERATED,
	KFW_EVSTAT_SUPPRESSED,
	KFW_EVSTAT_QUEUE_OVERFLOWS,
	KFW_EVSTAT_MESSAGES_SENT,
	KFW_EVSTAT_NO_LISTENER,
	KFW_EVSTAT_ALLOC_FAILURES,
	KFW_EVSTAT_NOBUFS,
	__KFW_EVSTAT_MAX,
};

struct kfw_event_stats_pcpu {
	u64_stats_t v[__KFW_EVSTAT_MAX];
	struct u64_stats_sync syncp;
};

extern struct kfw_event_stats_pcpu __percpu *kfw_event_stats;

/* Counts into this CPU's event counters; callers disable BHs. */
void kfw_event_stat_add(enum kfw_event_stat stat, u64 n);

struct kfw_stats {
	u64 instance;
	u64 generation;
	u32 rules;
	u32 max_rules;
	u64 events[__KFW_EVSTAT_MAX];
};

int kfw_stats_init(void);
void kfw_stats_exit(void);
void kfw_stats_read(struct kfw_stats *st);
extern const char *const kfw_event_stat_names[__KFW_EVSTAT_MAX];

/* kfw_proc.c */
int kfw_proc_init(void);
void kfw_proc_exit(void);

/*
 * The packet the hooks classified.  Flags say which fields are known: a
 * malformed IPv6 extension chain leaves the protocol unknown, a non-first
 * fragment or a truncated transport header leaves the ports unknown.
 */
#define KFW_PKT_PROTO	BIT(0)	/* proto is valid */
#define KFW_PKT_PORTS	BIT(1)	/* sport and dport are valid */
#define KFW_PKT_ADDRS	BIT(2)	/* saddr and daddr are valid */

struct kfw_pkt {
	u8 family;
	u8 hook;		/* enum kfw_hook */
	u8 flags;		/* KFW_PKT_* */
	u8 proto;
	u16 sport;		/* host order */
	u16 dport;
	u32 len;		/* IP packet length */
	union nf_inet_addr saddr;
	union nf_inet_addr daddr;
	const struct net_device *in;	/* NULL at output */
	const struct net_device *out;	/* NULL at input */
};

/*
 * kfw_events.c: drop and hit events.  kfw_event_packet() is the one place
 * the packet path reports a verdict to the event pipeline: called for every
 * drop (rule NULL = default policy) and for every packet accepted by a rule
 * with log=1, under rcu_read_lock() with BHs disabled.
 */
void kfw_event_packet(const struct kfw_pkt *pkt, const struct kfw_rule *rule,
		      u8 verdict);
void kfw_bucket_init(struct kfw_bucket *b);
int kfw_events_init(void);	/* the per-CPU queues */
void kfw_events_stop(void);	/* no work runs or sends after this */
void kfw_events_exit(void);	/* free the queues, after stop */

/* kfw_genl.c: the generic netlink family and its "events" group. */
struct genl_family;

enum kfw_mcgrp {
	KFW_MCGRP_EVENTS,
};

extern struct genl_family kfw_genl_family;

int kfw_genl_init(void);	/* register the family */
void kfw_genl_exit(void);	/* unregister it, wait for commands */

#endif /* _KFW_H */
