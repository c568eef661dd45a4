// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: rule validation, shared by every input path.
 *
 * The text parser and the netlink path only turn their syntax into a
 * struct kfw_rule_spec; every semantic rule of docs/ABI.md is checked here,
 * once, so both paths accept and reject exactly the same rules.
 */
#include <linux/errno.h>
#include <linux/string.h>

#include "kfw.h"

static unsigned int kfw_family_bits(u8 family)
{
	return family == KFW_FAMILY_IPV4 ? 32 : 128;
}

/* Fills mask from plen; the unused words of an IPv4 mask stay zero. */
static void kfw_prefix_make_mask(struct kfw_prefix *p)
{
	unsigned int words = p->family == KFW_FAMILY_IPV4 ? 1 : 4;
	unsigned int plen = p->plen;
	unsigned int i;

	memset(&p->mask, 0, sizeof(p->mask));
	for (i = 0; i < words; i++) {
		if (plen >= 32) {
			p->mask.ip6[i] = htonl(0xffffffff);
			plen -= 32;
		} else {
			/* plen is 0..31 here: no shift by 32 */
			p->mask.ip6[i] = plen ? htonl(~0U << (32 - plen)) : 0;
			plen = 0;
		}
	}
}

static bool kfw_prefix_host_bits(const struct kfw_prefix *p)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(p->addr.ip6); i++)
		if (p->addr.ip6[i] & ~p->mask.ip6[i])
			return true;
	return false;
}

/*
 * src and dst (iif and oif) share their checks; their messages differ only
 * by the field name, and each must be one static string.
 */
struct kfw_prefix_msgs {
	enum kfw_field field;
	const char *family;
	const char *plen;
	const char *trailing;
	const char *host_bits;
};

#define KFW_PREFIX_MSGS(fld) {						\
	.field = KFW_FIELD_##fld,					\
	.family = KFW_FIELD_NAME_##fld ": address must be IPv4 or IPv6", \
	.plen = KFW_FIELD_NAME_##fld ": prefix length beyond the address size", \
	.trailing = KFW_FIELD_NAME_##fld ": IPv4 address with trailing bytes", \
	.host_bits = KFW_FIELD_NAME_##fld ": host bits set beyond the prefix length", \
}

static const struct kfw_prefix_msgs kfw_src_msgs = KFW_PREFIX_MSGS(SRC);
static const struct kfw_prefix_msgs kfw_dst_msgs = KFW_PREFIX_MSGS(DST);

/* Checks one prefix on its own and computes its mask. */
static int kfw_prefix_validate(struct kfw_prefix *p,
			       const struct kfw_prefix_msgs *msgs,
			       struct kfw_err *e)
{
	if (p->family != KFW_FAMILY_IPV4 && p->family != KFW_FAMILY_IPV6)
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->family);
	if (p->plen > kfw_family_bits(p->family))
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->plen);
	if (p->family == KFW_FAMILY_IPV4 &&
	    (p->addr.ip6[1] || p->addr.ip6[2] || p->addr.ip6[3]))
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->trailing);
	kfw_prefix_make_mask(p);
	if (kfw_prefix_host_bits(p))
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->host_bits);
	return 0;
}

struct kfw_ifname_msgs {
	enum kfw_field field;
	const char *too_long;
	const char *dots;
	const char *character;
};

#define KFW_IFNAME_MSGS(fld) {						\
	.field = KFW_FIELD_##fld,					\
	.too_long = KFW_FIELD_NAME_##fld ": name longer than 15 bytes",	\
	.dots = KFW_FIELD_NAME_##fld ": name must not be . or ..",	\
	.character = KFW_FIELD_NAME_##fld ": invalid character in name", \
}

static const struct kfw_ifname_msgs kfw_iif_msgs = KFW_IFNAME_MSGS(IIF);
static const struct kfw_ifname_msgs kfw_oif_msgs = KFW_IFNAME_MSGS(OIF);

/*
 * An interface name as the rule language can print it back: 1..15 bytes of
 * printable ASCII without space or '/', not "." or "..".  Netlink could send
 * any byte; refusing what the text form cannot carry keeps read-back exact.
 */
static int kfw_ifname_validate(const char *name, u8 *len,
			       const struct kfw_ifname_msgs *msgs,
			       struct kfw_err *e)
{
	size_t n = strnlen(name, IFNAMSIZ);
	size_t i;

	if (n == IFNAMSIZ)
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->too_long);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->dots);
	for (i = 0; i < n; i++) {
		if (name[i] <= ' ' || name[i] > '~' || name[i] == '/')
			return kfw_err_set(e, -EINVAL, msgs->field,
					   msgs->character);
	}
	/* The packet path compares len + 1 bytes: the name and its NUL. */
	*len = n;
	return 0;
}

static int kfw_spec_validate_family(struct kfw_rule_spec *s, struct kfw_err *e)
{
	u8 addr_family = s->src.family ? s->src.family : s->dst.family;

	if (s->family != KFW_FAMILY_ANY && s->family != KFW_FAMILY_IPV4 &&
	    s->family != KFW_FAMILY_IPV6)
		return KFW_ERR(e, EINVAL, FAMILY, "must be ipv4, ipv6 or any");
	if (s->src.family && s->family && s->src.family != s->family)
		return KFW_ERR(e, EINVAL, SRC, "address family differs from family");
	if (s->dst.family && s->family && s->dst.family != s->family)
		return KFW_ERR(e, EINVAL, DST, "address family differs from family");
	if (s->src.family && s->dst.family && s->src.family != s->dst.family)
		return KFW_ERR(e, EINVAL, DST, "address family differs from src");

	s->match_family = s->family ? s->family : addr_family;
	if (s->present & KFW_SPEC_PROTO) {
		if (s->proto == IPPROTO_ICMP) {
			if (s->match_family == KFW_FAMILY_IPV6)
				return KFW_ERR(e, EINVAL, PROTO, "icmp needs IPv4 (use icmpv6)");
			/* "icmp" means ICMP for IPv4, never next header 1 */
			s->match_family = KFW_FAMILY_IPV4;
		} else if (s->proto == IPPROTO_ICMPV6) {
			if (s->match_family == KFW_FAMILY_IPV4)
				return KFW_ERR(e, EINVAL, PROTO, "icmpv6 needs IPv6 (use icmp)");
			s->match_family = KFW_FAMILY_IPV6;
		}
	}
	return 0;
}

static int kfw_spec_validate_ports(struct kfw_rule_spec *s, struct kfw_err *e)
{
	bool port_proto = (s->present & KFW_SPEC_PROTO) &&
			  (s->proto == IPPROTO_TCP || s->proto == IPPROTO_UDP);

	if (s->present & KFW_SPEC_SPORT) {
		if (!port_proto)
			return KFW_ERR(e, EINVAL, SPORT, "port range needs proto tcp or udp");
		if (s->sport.min > s->sport.max)
			return KFW_ERR(e, EINVAL, SPORT, "range start above range end");
	}
	if (s->present & KFW_SPEC_DPORT) {
		if (!port_proto)
			return KFW_ERR(e, EINVAL, DPORT, "port range needs proto tcp or udp");
		if (s->dport.min > s->dport.max)
			return KFW_ERR(e, EINVAL, DPORT, "range start above range end");
	}
	return 0;
}

static int kfw_spec_validate_ifaces(struct kfw_rule_spec *s, struct kfw_err *e)
{
	int err;

	s->iif_len = 0;
	s->oif_len = 0;
	if (s->iif[0]) {
		err = kfw_ifname_validate(s->iif, &s->iif_len, &kfw_iif_msgs, e);
		if (err)
			return err;
		if (s->hooks == BIT(KFW_HOOK_OUTPUT))
			return KFW_ERR(e, EINVAL, IIF, "never matches at hook output");
	}
	if (s->oif[0]) {
		err = kfw_ifname_validate(s->oif, &s->oif_len, &kfw_oif_msgs, e);
		if (err)
			return err;
		if (s->hooks == BIT(KFW_HOOK_INPUT))
			return KFW_ERR(e, EINVAL, OIF, "never matches at hook input");
	}
	return 0;
}

static int kfw_spec_validate_options(struct kfw_rule_spec *s, struct kfw_err *e)
{
	if (s->log > 1)
		return KFW_ERR(e, EINVAL, LOG, "must be 0 or 1");
	if (s->rate > KFW_RULE_RATE_MAX)
		return KFW_ERR(e, EINVAL, RATE, "must be 0..1000000 events/s");
	if (s->present & KFW_SPEC_BURST) {
		if (!s->rate)
			return KFW_ERR(e, EINVAL, BURST, "needs rate");
		if (s->burst < 1 || s->burst > KFW_RULE_BURST_MAX)
			return KFW_ERR(e, EINVAL, BURST, "must be 1..1000000");
	} else {
		s->burst = s->rate;
	}
	/* One representation per meaning: burst is there iff rate is. */
	if (s->rate)
		s->present |= KFW_SPEC_BURST;
	return 0;
}

/**
 * kfw_spec_validate - check a rule and derive its packet-path fields
 * @spec: the rule; absent fields zero, presence in @spec->present
 * @e: where the failure is described
 *
 * On success @spec is normalized: defaults filled in, masks and name
 * lengths computed, so that two specs meaning the same rule compare equal.
 *
 * Return: 0, or -EINVAL with @e set.
 */
int kfw_spec_validate(struct kfw_rule_spec *spec, struct kfw_err *e)
{
	int err;

	if (!(spec->present & KFW_SPEC_ID))
		return KFW_ERR(e, EINVAL, ID, "missing");
	if (spec->id < KFW_RULE_ID_MIN || spec->id > KFW_RULE_ID_MAX)
		return KFW_ERR(e, EINVAL, ID, "must be 1..65535");
	if (spec->action == KFW_ACTION_UNSPEC)
		return KFW_ERR(e, EINVAL, ACTION, "missing");
	if (spec->action > KFW_ACTION_MAX)
		return KFW_ERR(e, EINVAL, ACTION, "must be accept or drop");

	if (spec->present & KFW_SPEC_HOOKS) {
		if (!spec->hooks || (spec->hooks & ~KFW_HOOK_MASK_ALL))
			return KFW_ERR(e, EINVAL, HOOKS, "must name input, forward or output");
	} else {
		spec->hooks = KFW_HOOK_MASK_ALL;
	}
	/* "hooks" given as all three is the default: one form for both. */
	spec->present |= KFW_SPEC_HOOKS;

	if (spec->src.family) {
		err = kfw_prefix_validate(&spec->src, &kfw_src_msgs, e);
		if (err)
			return err;
	}
	if (spec->dst.family) {
		err = kfw_prefix_validate(&spec->dst, &kfw_dst_msgs, e);
		if (err)
			return err;
	}
	err = kfw_spec_validate_family(spec, e);
	if (err)
		return err;
	err = kfw_spec_validate_ports(spec, e);
	if (err)
		return err;
	err = kfw_spec_validate_ifaces(spec, e);
	if (err)
		return err;
	return kfw_spec_validate_options(spec, e);
}

int kfw_policy_validate(u32 hook, u32 action, struct kfw_err *e)
{
	if (hook >= KFW_HOOK_COUNT)
		return KFW_ERR(e, EINVAL, HOOK, "must be input, forward or output");
	if (action != KFW_ACTION_ACCEPT && action != KFW_ACTION_DROP)
		return KFW_ERR(e, EINVAL, ACTION, "must be accept or drop");
	return 0;
}

static bool kfw_prefix_equal(const struct kfw_prefix *a,
			     const struct kfw_prefix *b)
{
	return a->family == b->family && a->plen == b->plen &&
	       !memcmp(&a->addr, &b->addr, sizeof(a->addr));
}

/**
 * kfw_spec_equal - do two validated specs describe the same rule?
 * @a: a validated spec
 * @b: another
 *
 * Compares every user field (derived fields follow from them).  This is
 * the test for keeping a rule's counters across a transaction.
 */
bool kfw_spec_equal(const struct kfw_rule_spec *a,
		    const struct kfw_rule_spec *b)
{
	return a->present == b->present && a->id == b->id &&
	       a->action == b->action && a->family == b->family &&
	       a->hooks == b->hooks && a->log == b->log &&
	       (!(a->present & KFW_SPEC_PROTO) || a->proto == b->proto) &&
	       kfw_prefix_equal(&a->src, &b->src) &&
	       kfw_prefix_equal(&a->dst, &b->dst) &&
	       (!(a->present & KFW_SPEC_SPORT) ||
		(a->sport.min == b->sport.min && a->sport.max == b->sport.max)) &&
	       (!(a->present & KFW_SPEC_DPORT) ||
		(a->dport.min == b->dport.min && a->dport.max == b->dport.max)) &&
	       !memcmp(a->iif, b->iif, sizeof(a->iif)) &&
	       !memcmp(a->oif, b->oif, sizeof(a->oif)) &&
	       a->rate == b->rate && a->burst == b->burst;
}
