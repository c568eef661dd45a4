// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: the "kfw" generic netlink family (docs/ABI.md, "Generic netlink").
 *
 * Requests become the same struct kfw_rule_spec and the same transactions
 * as writes to /proc/kfw/rules: kfw_spec_validate() decides what a valid
 * rule is.  This file is the netlink counterpart of the text parser: it
 * checks what only the attribute form can get wrong (address sizes, a
 * prefix length without an address, ...) and points extended ack at the
 * attribute a failure names.
 *
 * Every command validates strictly (resv_start_op is the first command):
 * reserved header bits, unknown attributes and attributes of the wrong size
 * are refused, so that a rule can never match more than its sender meant.
 *
 * The family has parallel_ops: nothing here needs genl_mutex.  Writers are
 * serialised by the transaction mutex, readers use RCU or pin a table.
 */
#include <linux/errno.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "kfw.h"

/*
 * Joining "events" needs CAP_NET_ADMIN.  Kernels before
 * GENL_MCAST_CAP_NET_ADMIN tested GENL_UNS_ADMIN_PERM on groups instead;
 * each flag means nothing to the other kind of kernel, so test for the
 * macro, not for a version (Debian's 6.1 has the backport).
 */
#ifdef GENL_MCAST_CAP_NET_ADMIN
#define KFW_MCGRP_CAP_NET_ADMIN	GENL_MCAST_CAP_NET_ADMIN
#else
#define KFW_MCGRP_CAP_NET_ADMIN	GENL_UNS_ADMIN_PERM
#endif

#define KFW_REJECT(msg)	{ .type = NLA_REJECT, .reject_message = msg }

static const struct nla_policy kfw_rule_policy[KFW_RULE_A_MAX + 1] = {
	[KFW_RULE_A_PAD]	= { .type = NLA_REJECT },
	[KFW_RULE_A_ID]		= { .type = NLA_U32 },
	[KFW_RULE_A_ACTION]	= { .type = NLA_U8 },
	[KFW_RULE_A_FAMILY]	= { .type = NLA_U8 },
	[KFW_RULE_A_HOOKS]	= { .type = NLA_U32 },
	[KFW_RULE_A_PROTO]	= { .type = NLA_U8 },
	/* 4 or 16 bytes, checked below with a message naming the field */
	[KFW_RULE_A_SRC]	= { .type = NLA_BINARY },
	[KFW_RULE_A_SRC_PLEN]	= { .type = NLA_U8 },
	[KFW_RULE_A_DST]	= { .type = NLA_BINARY },
	[KFW_RULE_A_DST_PLEN]	= { .type = NLA_U8 },
	[KFW_RULE_A_SPORT_MIN]	= { .type = NLA_U16 },
	[KFW_RULE_A_SPORT_MAX]	= { .type = NLA_U16 },
	[KFW_RULE_A_DPORT_MIN]	= { .type = NLA_U16 },
	[KFW_RULE_A_DPORT_MAX]	= { .type = NLA_U16 },
	/* the length limit is checked below, for the same reason */
	[KFW_RULE_A_IIF]	= { .type = NLA_NUL_STRING },
	[KFW_RULE_A_OIF]	= { .type = NLA_NUL_STRING },
	[KFW_RULE_A_LOG]	= { .type = NLA_U8 },
	[KFW_RULE_A_RATE]	= { .type = NLA_U32 },
	[KFW_RULE_A_BURST]	= { .type = NLA_U32 },
	[KFW_RULE_A_PACKETS]	= KFW_REJECT("packets: counters are read-only"),
	[KFW_RULE_A_BYTES]	= KFW_REJECT("bytes: counters are read-only"),
	[KFW_RULE_A_EVENTS]	= KFW_REJECT("events: counters are read-only"),
	[KFW_RULE_A_SUPPRESSED]	= KFW_REJECT("suppressed: counters are read-only"),
};

static const struct nla_policy kfw_policy_policy[KFW_POLICY_A_MAX + 1] = {
	[KFW_POLICY_A_HOOK]	= { .type = NLA_U8 },
	[KFW_POLICY_A_ACTION]	= { .type = NLA_U8 },
};

static const struct nla_policy kfw_genl_policy[KFW_A_MAX + 1] = {
	[KFW_A_PAD]		= { .type = NLA_REJECT },
	[KFW_A_RULE]		= NLA_POLICY_NESTED(kfw_rule_policy),
	[KFW_A_POLICY]		= NLA_POLICY_NESTED(kfw_policy_policy),
	[KFW_A_STATS]		= KFW_REJECT("stats: only in replies"),
	[KFW_A_INSTANCE]	= KFW_REJECT("instance: only in events"),
	[KFW_A_CPU]		= KFW_REJECT("cpu: only in events"),
	[KFW_A_NEXT_SEQ]	= KFW_REJECT("next_seq: only in events"),
	[KFW_A_EVENT]		= KFW_REJECT("event: only in events"),
};

/*
 * Extended ack with a message chosen at run time: NL_SET_ERR_MSG_ATTR()
 * takes literals only.  Every kfw message is a static string (see struct
 * kfw_err), so keeping the pointer is as safe as the macro's own.
 */
static void kfw_genl_error(struct netlink_ext_ack *extack,
			   const struct nlattr *attr, const char *msg)
{
	if (!extack)
		return;
	extack->_msg = msg;
	NL_SET_BAD_ATTR(extack, attr);
}

/* A KFW_A_RULE nest being turned into a spec. */
struct kfw_genl_rule {
	const struct nlattr *nest;
	struct nlattr *tb[KFW_RULE_A_MAX + 1];
	struct kfw_rule_spec spec;
};

/*
 * The attribute that holds a field, and the second one for fields made of
 * two (an address and its prefix length, the ends of a port range).
 */
static const u8 kfw_field_attr[__KFW_FIELD_MAX][2] = {
	[KFW_FIELD_ID]		= { KFW_RULE_A_ID },
	[KFW_FIELD_ACTION]	= { KFW_RULE_A_ACTION },
	[KFW_FIELD_FAMILY]	= { KFW_RULE_A_FAMILY },
	[KFW_FIELD_PROTO]	= { KFW_RULE_A_PROTO },
	[KFW_FIELD_SRC]		= { KFW_RULE_A_SRC, KFW_RULE_A_SRC_PLEN },
	[KFW_FIELD_DST]		= { KFW_RULE_A_DST, KFW_RULE_A_DST_PLEN },
	[KFW_FIELD_SPORT]	= { KFW_RULE_A_SPORT_MIN, KFW_RULE_A_SPORT_MAX },
	[KFW_FIELD_DPORT]	= { KFW_RULE_A_DPORT_MIN, KFW_RULE_A_DPORT_MAX },
	[KFW_FIELD_IIF]		= { KFW_RULE_A_IIF },
	[KFW_FIELD_OIF]		= { KFW_RULE_A_OIF },
	[KFW_FIELD_HOOKS]	= { KFW_RULE_A_HOOKS },
	[KFW_FIELD_LOG]		= { KFW_RULE_A_LOG },
	[KFW_FIELD_RATE]	= { KFW_RULE_A_RATE },
	[KFW_FIELD_BURST]	= { KFW_RULE_A_BURST },
};

/*
 * Reports a failure of a rule: at the attribute of the field it names, or
 * at the nest when that attribute is absent ("id: missing"), or at nothing
 * when it is about memory.
 */
static void kfw_genl_rule_error(struct netlink_ext_ack *extack,
				const struct kfw_genl_rule *r,
				const struct kfw_err *e)
{
	const struct nlattr *attr = NULL;

	if (e->field != KFW_FIELD_NONE) {
		attr = r->tb[kfw_field_attr[e->field][0]] ?:
		       r->tb[kfw_field_attr[e->field][1]];
		if (!attr)
			attr = r->nest;
	}
	kfw_genl_error(extack, attr, e->msg);
}

/* An address: its size gives the family, the prefix defaults to all. */
static int kfw_genl_prefix(struct kfw_prefix *p, const struct nlattr *addr,
			   const struct nlattr *plen, enum kfw_field field,
			   struct kfw_err *e)
{
	static const char *const size_msg[] = {
		KFW_FIELD_NAME_SRC ": address must be 4 or 16 bytes",
		KFW_FIELD_NAME_DST ": address must be 4 or 16 bytes",
	};
	static const char *const plen_msg[] = {
		KFW_FIELD_NAME_SRC ": prefix length without address",
		KFW_FIELD_NAME_DST ": prefix length without address",
	};
	unsigned int i = field == KFW_FIELD_DST;

	if (!addr) {
		if (plen)
			return kfw_err_set(e, -EINVAL, field, plen_msg[i]);
		return 0;
	}
	switch (nla_len(addr)) {
	case sizeof(struct in_addr):
		p->family = KFW_FAMILY_IPV4;
		p->plen = 32;
		break;
	case sizeof(struct in6_addr):
		p->family = KFW_FAMILY_IPV6;
		p->plen = 128;
		break;
	default:
		return kfw_err_set(e, -EINVAL, field, size_msg[i]);
	}
	memcpy(&p->addr, nla_data(addr), nla_len(addr));
	if (plen)
		p->plen = nla_get_u8(plen);
	return 0;
}

/* A port range: MAX defaults to MIN and needs it. */
static int kfw_genl_ports(struct kfw_rule_spec *s, struct kfw_port_range *r,
			  const struct nlattr *min, const struct nlattr *max,
			  u32 present, enum kfw_field field, struct kfw_err *e)
{
	static const char *const msg[] = {
		KFW_FIELD_NAME_SPORT ": range end without range start",
		KFW_FIELD_NAME_DPORT ": range end without range start",
	};

	if (!min) {
		if (max)
			return kfw_err_set(e, -EINVAL, field,
					   msg[field == KFW_FIELD_DPORT]);
		return 0;
	}
	r->min = nla_get_u16(min);
	r->max = max ? nla_get_u16(max) : r->min;
	s->present |= present;
	return 0;
}

/* An interface name; an empty one is refused as the text form does. */
static int kfw_genl_ifname(char *name, const struct nlattr *attr,
			   enum kfw_field field, struct kfw_err *e)
{
	static const char *const long_msg[] = {
		KFW_FIELD_NAME_IIF ": name longer than 15 bytes",
		KFW_FIELD_NAME_OIF ": name longer than 15 bytes",
	};
	static const char *const empty_msg[] = {
		KFW_FIELD_NAME_IIF ": empty name",
		KFW_FIELD_NAME_OIF ": empty name",
	};
	unsigned int i = field == KFW_FIELD_OIF;

	if (!attr)
		return 0;
	if (nla_strscpy(name, attr, IFNAMSIZ) < 0)
		return kfw_err_set(e, -EINVAL, field, long_msg[i]);
	if (!name[0])
		return kfw_err_set(e, -EINVAL, field, empty_msg[i]);
	return 0;
}

/*
 * Turns a KFW_A_RULE nest (already validated against kfw_rule_policy) into
 * r->spec the way kfw_spec_validate() takes it: absent fields zero,
 * presence bits for fields that have no "any" value of their own.
 */
static int kfw_genl_parse_rule(struct kfw_genl_rule *r,
			       const struct nlattr *nest, struct kfw_err *e,
			       struct netlink_ext_ack *extack)
{
	struct kfw_rule_spec *s = &r->spec;
	struct nlattr **tb = r->tb;
	int err;

	memset(s, 0, sizeof(*s));
	r->nest = nest;
	/* the policy set extack: no message of ours */
	err = nla_parse_nested(tb, KFW_RULE_A_MAX, nest, kfw_rule_policy,
			       extack);
	if (err)
		return kfw_err_set(e, err, KFW_FIELD_NONE, NULL);

	if (tb[KFW_RULE_A_ID]) {
		s->id = nla_get_u32(tb[KFW_RULE_A_ID]);
		s->present |= KFW_SPEC_ID;
	}
	if (tb[KFW_RULE_A_ACTION]) {
		s->action = nla_get_u8(tb[KFW_RULE_A_ACTION]);
		/* 0 given is not "missing": say what is wrong with it */
		if (s->action == KFW_ACTION_UNSPEC)
			return KFW_ERR(e, EINVAL, ACTION, "must be accept or drop");
	}
	if (tb[KFW_RULE_A_FAMILY])
		s->family = nla_get_u8(tb[KFW_RULE_A_FAMILY]);
	if (tb[KFW_RULE_A_HOOKS]) {
		u32 hooks = nla_get_u32(tb[KFW_RULE_A_HOOKS]);

		/* the spec holds 8 bits: refuse before they are cut off */
		if (hooks > U8_MAX)
			return KFW_ERR(e, EINVAL, HOOKS, "must name input, forward or output");
		s->hooks = hooks;
		s->present |= KFW_SPEC_HOOKS;
	}
	if (tb[KFW_RULE_A_PROTO]) {
		s->proto = nla_get_u8(tb[KFW_RULE_A_PROTO]);
		s->present |= KFW_SPEC_PROTO;
	}
	err = kfw_genl_prefix(&s->src, tb[KFW_RULE_A_SRC],
			      tb[KFW_RULE_A_SRC_PLEN], KFW_FIELD_SRC, e);
	if (err)
		return err;
	err = kfw_genl_prefix(&s->dst, tb[KFW_RULE_A_DST],
			      tb[KFW_RULE_A_DST_PLEN], KFW_FIELD_DST, e);
	if (err)
		return err;
	err = kfw_genl_ports(s, &s->sport, tb[KFW_RULE_A_SPORT_MIN],
			     tb[KFW_RULE_A_SPORT_MAX], KFW_SPEC_SPORT,
			     KFW_FIELD_SPORT, e);
	if (err)
		return err;
	err = kfw_genl_ports(s, &s->dport, tb[KFW_RULE_A_DPORT_MIN],
			     tb[KFW_RULE_A_DPORT_MAX], KFW_SPEC_DPORT,
			     KFW_FIELD_DPORT, e);
	if (err)
		return err;
	err = kfw_genl_ifname(s->iif, tb[KFW_RULE_A_IIF], KFW_FIELD_IIF, e);
	if (err)
		return err;
	err = kfw_genl_ifname(s->oif, tb[KFW_RULE_A_OIF], KFW_FIELD_OIF, e);
	if (err)
		return err;
	if (tb[KFW_RULE_A_LOG])
		s->log = nla_get_u8(tb[KFW_RULE_A_LOG]);
	if (tb[KFW_RULE_A_RATE])
		s->rate = nla_get_u32(tb[KFW_RULE_A_RATE]);
	if (tb[KFW_RULE_A_BURST]) {
		s->burst = nla_get_u32(tb[KFW_RULE_A_BURST]);
		s->present |= KFW_SPEC_BURST;
	}
	return 0;
}

/* Parses a rule nest and adds it to the transaction, reporting failures. */
static int kfw_genl_add(struct kfw_txn *txn, const struct nlattr *nest,
			struct netlink_ext_ack *extack)
{
	struct kfw_genl_rule r;
	struct kfw_err e;
	int err;

	err = kfw_genl_parse_rule(&r, nest, &e, extack);
	if (!err)
		err = kfw_txn_add(txn, &r.spec, &e);
	if (err && e.msg)
		kfw_genl_rule_error(extack, &r, &e);
	return err;
}

static int kfw_genl_policy_set(struct kfw_txn *txn, const struct nlattr *nest,
			       struct netlink_ext_ack *extack)
{
	struct nlattr *tb[KFW_POLICY_A_MAX + 1];
	const struct nlattr *attr;
	struct kfw_err e;
	int err;

	err = nla_parse_nested(tb, KFW_POLICY_A_MAX, nest, kfw_policy_policy,
			       extack);
	if (err)
		return err;
	if (!tb[KFW_POLICY_A_HOOK]) {
		err = KFW_ERR(&e, EINVAL, HOOK, "missing");
		attr = nest;
	} else if (!tb[KFW_POLICY_A_ACTION]) {
		err = KFW_ERR(&e, EINVAL, ACTION, "missing");
		attr = nest;
	} else {
		err = kfw_txn_policy(txn, nla_get_u8(tb[KFW_POLICY_A_HOOK]),
				     nla_get_u8(tb[KFW_POLICY_A_ACTION]), &e);
		attr = e.field == KFW_FIELD_HOOK ? tb[KFW_POLICY_A_HOOK] :
						   tb[KFW_POLICY_A_ACTION];
	}
	if (err)
		kfw_genl_error(extack, attr, e.msg);
	return err;
}

/*
 * Refuses top-level attributes a command does not take (the family policy
 * is shared by every command) and counts the others by type.
 */
static int kfw_genl_attrs(const struct genl_info *info, unsigned long allowed,
			  unsigned int count[KFW_A_MAX + 1])
{
	const struct nlattr *attr;
	int rem;

	memset(count, 0, (KFW_A_MAX + 1) * sizeof(*count));
	nla_for_each_attr(attr, genlmsg_data(info->genlhdr),
			  genlmsg_len(info->genlhdr), rem) {
		int type = nla_type(attr);

		/* types beyond KFW_A_MAX failed the policy already */
		if (type > KFW_A_MAX || !(allowed & BIT(type))) {
			NL_SET_ERR_MSG_ATTR(info->extack, attr,
					    "command: attribute not taken by this command");
			return -EINVAL;
		}
		count[type]++;
	}
	return 0;
}

/* The one KFW_A_RULE of NEW_RULE and DEL_RULE. */
static const struct nlattr *kfw_genl_one_rule(const struct genl_info *info)
{
	unsigned int count[KFW_A_MAX + 1];

	if (kfw_genl_attrs(info, BIT(KFW_A_RULE), count))
		return NULL;
	if (!count[KFW_A_RULE]) {
		NL_SET_ERR_MSG(info->extack, "rule: missing");
		return NULL;
	}
	if (count[KFW_A_RULE] > 1) {
		NL_SET_ERR_MSG(info->extack,
			       "rule: one per command (KFW_CMD_REPLACE takes many)");
		return NULL;
	}
	return info->attrs[KFW_A_RULE];
}

/* Commits, reporting a failure that is about the table as a whole. */
static int kfw_genl_commit(struct kfw_txn *txn, struct netlink_ext_ack *extack)
{
	struct kfw_err e;
	int err;

	err = kfw_txn_commit(txn, &e);
	if (err)
		kfw_genl_error(extack, NULL, e.msg);
	return err;
}

static int kfw_genl_begin(struct kfw_txn *txn, struct netlink_ext_ack *extack)
{
	int err = kfw_txn_begin(txn);

	if (err)
		NL_SET_ERR_MSG(extack, "out of memory");
	return err;
}

static int kfw_genl_new_rule(struct sk_buff *skb, struct genl_info *info)
{
	const struct nlattr *nest = kfw_genl_one_rule(info);
	struct kfw_txn txn;
	int err;

	if (!nest)
		return -EINVAL;
	err = kfw_genl_begin(&txn, info->extack);
	if (err)
		return err;
	err = kfw_genl_add(&txn, nest, info->extack);
	if (err) {
		kfw_txn_abort(&txn);
		return err;
	}
	return kfw_genl_commit(&txn, info->extack);
}

static int kfw_genl_del_rule(struct sk_buff *skb, struct genl_info *info)
{
	const struct nlattr *nest = kfw_genl_one_rule(info);
	struct nlattr *tb[KFW_RULE_A_MAX + 1];
	struct kfw_txn txn;
	struct kfw_err e;
	int err, i;

	if (!nest)
		return -EINVAL;
	err = nla_parse_nested(tb, KFW_RULE_A_MAX, nest, kfw_rule_policy,
			       info->extack);
	if (err)
		return err;
	for (i = 0; i <= KFW_RULE_A_MAX; i++) {
		if (tb[i] && i != KFW_RULE_A_ID) {
			NL_SET_ERR_MSG_ATTR(info->extack, tb[i],
					    "rule: delete takes the id only");
			return -EINVAL;
		}
	}
	if (!tb[KFW_RULE_A_ID]) {
		NL_SET_ERR_MSG_ATTR(info->extack, nest, "id: missing");
		return -EINVAL;
	}
	err = kfw_genl_begin(&txn, info->extack);
	if (err)
		return err;
	err = kfw_txn_del(&txn, nla_get_u32(tb[KFW_RULE_A_ID]), &e);
	if (err) {
		kfw_txn_abort(&txn);
		kfw_genl_error(info->extack, tb[KFW_RULE_A_ID], e.msg);
		return err;
	}
	return kfw_genl_commit(&txn, info->extack);
}

static int kfw_genl_flush(struct sk_buff *skb, struct genl_info *info)
{
	unsigned int count[KFW_A_MAX + 1];
	struct kfw_txn txn;
	int err;

	err = kfw_genl_attrs(info, 0, count);
	if (err)
		return err;
	err = kfw_genl_begin(&txn, info->extack);
	if (err)
		return err;
	kfw_txn_flush(&txn);
	return kfw_genl_commit(&txn, info->extack);
}

/*
 * SET_POLICY (policies only, at least one) and REPLACE (flush, then the
 * policies, then the rules, whatever their order in the message): one
 * transaction each.
 */
static int kfw_genl_apply(struct genl_info *info, bool replace)
{
	unsigned long allowed = BIT(KFW_A_POLICY);
	unsigned int count[KFW_A_MAX + 1];
	const struct nlattr *attr;
	struct kfw_txn txn;
	int err, rem;

	if (replace)
		allowed |= BIT(KFW_A_RULE);
	err = kfw_genl_attrs(info, allowed, count);
	if (err)
		return err;
	if (!replace && !count[KFW_A_POLICY]) {
		NL_SET_ERR_MSG(info->extack, "policy: missing");
		return -EINVAL;
	}
	err = kfw_genl_begin(&txn, info->extack);
	if (err)
		return err;
	if (replace)
		kfw_txn_flush(&txn);
	nla_for_each_attr(attr, genlmsg_data(info->genlhdr),
			  genlmsg_len(info->genlhdr), rem) {
		if (nla_type(attr) != KFW_A_POLICY)
			continue;
		err = kfw_genl_policy_set(&txn, attr, info->extack);
		if (err)
			goto abort;
	}
	nla_for_each_attr(attr, genlmsg_data(info->genlhdr),
			  genlmsg_len(info->genlhdr), rem) {
		if (nla_type(attr) != KFW_A_RULE)
			continue;
		err = kfw_genl_add(&txn, attr, info->extack);
		if (err)
			goto abort;
		/* a REPLACE can hold 65535 rules: let others run */
		cond_resched();
	}
	return kfw_genl_commit(&txn, info->extack);

abort:
	kfw_txn_abort(&txn);
	return err;
}

static int kfw_genl_set_policy(struct sk_buff *skb, struct genl_info *info)
{
	return kfw_genl_apply(info, false);
}

static int kfw_genl_replace(struct sk_buff *skb, struct genl_info *info)
{
	return kfw_genl_apply(info, true);
}

static size_t kfw_genl_stats_size(void)
{
	return nla_total_size(0) +				/* KFW_A_STATS */
	       3 * nla_total_size(sizeof(u32)) +		/* abi, rules, max */
	       nla_total_size(sizeof(KFW_VERSION)) +
	       (2 + __KFW_EVSTAT_MAX) * nla_total_size_64bit(sizeof(u64));
}

static int kfw_genl_put_stats(struct sk_buff *msg)
{
	struct kfw_stats st;
	struct nlattr *nest;
	unsigned int i;

	kfw_stats_read(&st);
	nest = nla_nest_start(msg, KFW_A_STATS);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u32(msg, KFW_STATS_A_ABI_VERSION, KFW_ABI_VERSION) ||
	    nla_put_string(msg, KFW_STATS_A_VERSION, KFW_VERSION) ||
	    nla_put_u64_64bit(msg, KFW_STATS_A_INSTANCE, st.instance,
			      KFW_STATS_A_PAD) ||
	    nla_put_u64_64bit(msg, KFW_STATS_A_GENERATION, st.generation,
			      KFW_STATS_A_PAD) ||
	    nla_put_u32(msg, KFW_STATS_A_RULES, st.rules) ||
	    nla_put_u32(msg, KFW_STATS_A_MAX_RULES, st.max_rules))
		return -EMSGSIZE;
	/* kfw_stats_init() checks that the attributes follow this order */
	for (i = 0; i < __KFW_EVSTAT_MAX; i++)
		if (nla_put_u64_64bit(msg, KFW_STATS_A_EVENTS_GENERATED + i,
				      st.events[i], KFW_STATS_A_PAD))
			return -EMSGSIZE;
	nla_nest_end(msg, nest);
	return 0;
}

static int kfw_genl_put_policies(struct sk_buff *msg)
{
	u8 policy[KFW_HOOK_COUNT];
	struct nlattr *nest;
	enum kfw_hook hook;

	rcu_read_lock();
	memcpy(policy, kfw_table_rcu()->policy, sizeof(policy));
	rcu_read_unlock();

	for (hook = 0; hook < KFW_HOOK_COUNT; hook++) {
		nest = nla_nest_start(msg, KFW_A_POLICY);
		if (!nest ||
		    nla_put_u8(msg, KFW_POLICY_A_HOOK, hook) ||
		    nla_put_u8(msg, KFW_POLICY_A_ACTION, policy[hook]))
			return -EMSGSIZE;
		nla_nest_end(msg, nest);
	}
	return 0;
}

/* Replies to a GET command with what put() writes into a fresh message. */
static int kfw_genl_reply(struct genl_info *info, u8 cmd, size_t size,
			  int (*put)(struct sk_buff *msg))
{
	unsigned int count[KFW_A_MAX + 1];
	struct sk_buff *msg;
	void *hdr;
	int err;

	err = kfw_genl_attrs(info, 0, count);
	if (err)
		return err;
	msg = genlmsg_new(size, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &kfw_genl_family, 0, cmd);
	if (!hdr) {
		err = -EMSGSIZE;
		goto err_free;
	}
	err = put(msg);
	if (err)
		goto err_free;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

err_free:
	nlmsg_free(msg);
	return err;
}

static int kfw_genl_get_stats(struct sk_buff *skb, struct genl_info *info)
{
	return kfw_genl_reply(info, KFW_CMD_GET_STATS, kfw_genl_stats_size(),
			      kfw_genl_put_stats);
}

static int kfw_genl_get_policy(struct sk_buff *skb, struct genl_info *info)
{
	return kfw_genl_reply(info, KFW_CMD_GET_POLICY,
			      KFW_HOOK_COUNT * nla_total_size(2 * nla_total_size(sizeof(u8))),
			      kfw_genl_put_policies);
}

static int kfw_genl_put_prefix(struct sk_buff *msg, int addr_type,
			       int plen_type, const struct kfw_prefix *p)
{
	int len = p->family == KFW_FAMILY_IPV4 ? sizeof(struct in_addr) :
						 sizeof(struct in6_addr);

	if (!p->family)
		return 0;
	if (nla_put(msg, addr_type, len, &p->addr) ||
	    nla_put_u8(msg, plen_type, p->plen))
		return -EMSGSIZE;
	return 0;
}

static int kfw_genl_put_ports(struct sk_buff *msg, int min_type, int max_type,
			      const struct kfw_port_range *r)
{
	if (nla_put_u16(msg, min_type, r->min) ||
	    nla_put_u16(msg, max_type, r->max))
		return -EMSGSIZE;
	return 0;
}

/* A rule as the user gave it, normalised, and its counters. */
static int kfw_genl_put_rule(struct sk_buff *msg, const struct kfw_rule *rule)
{
	const struct kfw_rule_spec *s = &rule->spec;
	struct kfw_rule_counters c;
	struct nlattr *nest;

	nest = nla_nest_start(msg, KFW_A_RULE);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u32(msg, KFW_RULE_A_ID, s->id) ||
	    nla_put_u8(msg, KFW_RULE_A_ACTION, s->action) ||
	    (s->family && nla_put_u8(msg, KFW_RULE_A_FAMILY, s->family)) ||
	    nla_put_u32(msg, KFW_RULE_A_HOOKS, s->hooks) ||
	    ((s->present & KFW_SPEC_PROTO) &&
	     nla_put_u8(msg, KFW_RULE_A_PROTO, s->proto)) ||
	    kfw_genl_put_prefix(msg, KFW_RULE_A_SRC, KFW_RULE_A_SRC_PLEN,
				&s->src) ||
	    kfw_genl_put_prefix(msg, KFW_RULE_A_DST, KFW_RULE_A_DST_PLEN,
				&s->dst) ||
	    ((s->present & KFW_SPEC_SPORT) &&
	     kfw_genl_put_ports(msg, KFW_RULE_A_SPORT_MIN,
				KFW_RULE_A_SPORT_MAX, &s->sport)) ||
	    ((s->present & KFW_SPEC_DPORT) &&
	     kfw_genl_put_ports(msg, KFW_RULE_A_DPORT_MIN,
				KFW_RULE_A_DPORT_MAX, &s->dport)) ||
	    (s->iif[0] && nla_put_string(msg, KFW_RULE_A_IIF, s->iif)) ||
	    (s->oif[0] && nla_put_string(msg, KFW_RULE_A_OIF, s->oif)) ||
	    (s->log && nla_put_u8(msg, KFW_RULE_A_LOG, s->log)) ||
	    (s->rate && (nla_put_u32(msg, KFW_RULE_A_RATE, s->rate) ||
			 nla_put_u32(msg, KFW_RULE_A_BURST, s->burst))))
		goto cancel;

	kfw_rule_counters_read(rule, &c);
	if (nla_put_u64_64bit(msg, KFW_RULE_A_PACKETS, c.packets,
			      KFW_RULE_A_PAD) ||
	    nla_put_u64_64bit(msg, KFW_RULE_A_BYTES, c.bytes, KFW_RULE_A_PAD) ||
	    nla_put_u64_64bit(msg, KFW_RULE_A_EVENTS, c.events,
			      KFW_RULE_A_PAD) ||
	    nla_put_u64_64bit(msg, KFW_RULE_A_SUPPRESSED, c.suppressed,
			      KFW_RULE_A_PAD))
		goto cancel;
	nla_nest_end(msg, nest);
	return 0;

cancel:
	nla_nest_cancel(msg, nest);
	return -EMSGSIZE;
}

/*
 * The rule dump walks one table from start to done, however many messages
 * it takes: cb->args[0] pins it, cb->args[1] is the next rule.
 */
static int kfw_genl_rules_start(struct netlink_callback *cb)
{
	const struct genl_dumpit_info *info = genl_dumpit_info(cb);
	int i;

	for (i = 0; info->attrs && i <= KFW_A_MAX; i++) {
		if (info->attrs[i]) {
			NL_SET_ERR_MSG_ATTR(cb->extack, info->attrs[i],
					    "command: attribute not taken by this command");
			return -EINVAL;
		}
	}
	cb->args[0] = (unsigned long)kfw_table_get();
	cb->args[1] = 0;
	return 0;
}

static int kfw_genl_rules_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct kfw_table *t = (const struct kfw_table *)cb->args[0];
	unsigned long i;
	void *hdr;

	for (i = cb->args[1]; i < t->count; i++) {
		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &kfw_genl_family,
				  NLM_F_MULTI, KFW_CMD_GET_RULE);
		if (!hdr)
			break;
		if (kfw_genl_put_rule(skb, &t->rules[i])) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
	}
	cb->args[1] = i;
	return skb->len;
}

static int kfw_genl_rules_done(struct netlink_callback *cb)
{
	kfw_table_put((struct kfw_table *)cb->args[0]);
	return 0;
}

/*
 * The dump needs start and done to pin its table, which 6.1's
 * genl_small_ops lack: it is the one full genl_ops.
 */
static const struct genl_ops kfw_genl_ops[] = {
	{
		.cmd	= KFW_CMD_GET_RULE,
		.start	= kfw_genl_rules_start,
		.dumpit	= kfw_genl_rules_dump,
		.done	= kfw_genl_rules_done,
	},
};

static const struct genl_small_ops kfw_genl_small_ops[] = {
	{
		.cmd	= KFW_CMD_GET_STATS,
		.doit	= kfw_genl_get_stats,
	},
	{
		.cmd	= KFW_CMD_NEW_RULE,
		.flags	= GENL_ADMIN_PERM,
		.doit	= kfw_genl_new_rule,
	},
	{
		.cmd	= KFW_CMD_DEL_RULE,
		.flags	= GENL_ADMIN_PERM,
		.doit	= kfw_genl_del_rule,
	},
	{
		.cmd	= KFW_CMD_FLUSH,
		.flags	= GENL_ADMIN_PERM,
		.doit	= kfw_genl_flush,
	},
	{
		.cmd	= KFW_CMD_SET_POLICY,
		.flags	= GENL_ADMIN_PERM,
		.doit	= kfw_genl_set_policy,
	},
	{
		.cmd	= KFW_CMD_GET_POLICY,
		.doit	= kfw_genl_get_policy,
	},
	{
		.cmd	= KFW_CMD_REPLACE,
		.flags	= GENL_ADMIN_PERM,
		.doit	= kfw_genl_replace,
	},
};

static const struct genl_multicast_group kfw_genl_mcgrps[] = {
	[KFW_MCGRP_EVENTS] = {
		.name	= KFW_MCGRP_EVENTS_NAME,
		.flags	= KFW_MCGRP_CAP_NET_ADMIN,
	},
};

struct genl_family kfw_genl_family __ro_after_init = {
	.name		= KFW_GENL_NAME,
	.version	= KFW_GENL_VERSION,
	.hdrsize	= 0,
	.maxattr	= KFW_A_MAX,
	.policy		= kfw_genl_policy,
	.netnsok	= true,
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.ops		= kfw_genl_ops,
	.n_ops		= ARRAY_SIZE(kfw_genl_ops),
	.small_ops	= kfw_genl_small_ops,
	.n_small_ops	= ARRAY_SIZE(kfw_genl_small_ops),
	/* every command validates strictly */
	.resv_start_op	= KFW_CMD_GET_STATS,
	.mcgrps		= kfw_genl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(kfw_genl_mcgrps),
};

int kfw_genl_init(void)
{
	return genl_register_family(&kfw_genl_family);
}

/* Returns once no command runs; dumps in progress hold the module. */
void kfw_genl_exit(void)
{
	genl_unregister_family(&kfw_genl_family);
}

/* A request for the family by name loads the module. */
MODULE_ALIAS_GENL_FAMILY(KFW_GENL_NAME);
