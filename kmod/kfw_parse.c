// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: the rule language of /proc/kfw/rules (docs/ABI.md).
 *
 * The parser is strict and bounded: it works on one NUL-terminated kernel
 * copy of the write, checks every byte and line length before looking at a
 * line, cuts words in place and never reads past a word's terminating NUL.
 * It only turns text into a struct kfw_rule_spec; what a valid rule is, is
 * decided by kfw_spec_validate() through the transaction.
 *
 * The printers write the canonical form, which the parser reads back into
 * the same rule.
 */
#include <linux/ctype.h>
#include <linux/errno.h>
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <net/ipv6.h>

#include "kfw.h"

static const char *const kfw_hook_names[KFW_HOOK_COUNT] = {
	[KFW_HOOK_INPUT]	= "input",
	[KFW_HOOK_FORWARD]	= "forward",
	[KFW_HOOK_OUTPUT]	= "output",
};

const char *kfw_hook_name(enum kfw_hook hook)
{
	return hook < KFW_HOOK_COUNT ? kfw_hook_names[hook] : "?";
}

const char *kfw_action_name(u8 action)
{
	switch (action) {
	case KFW_ACTION_ACCEPT:
		return "accept";
	case KFW_ACTION_DROP:
		return "drop";
	}
	return "?";
}

static int kfw_lookup_hook(const char *s)
{
	int i;

	for (i = 0; i < KFW_HOOK_COUNT; i++)
		if (!strcmp(s, kfw_hook_names[i]))
			return i;
	return -1;
}

static u8 kfw_lookup_action(const char *s)
{
	if (!strcmp(s, "accept"))
		return KFW_ACTION_ACCEPT;
	if (!strcmp(s, "drop"))
		return KFW_ACTION_DROP;
	return KFW_ACTION_UNSPEC;
}

/* Protocols printed by name; everything else is printed as a number. */
static const struct {
	const char *name;
	u8 proto;
} kfw_proto_names[] = {
	{ "tcp", IPPROTO_TCP },
	{ "udp", IPPROTO_UDP },
	{ "icmp", IPPROTO_ICMP },
	{ "icmpv6", IPPROTO_ICMPV6 },
};

/*
 * Parses a plain decimal number: digits only (kstrtouint alone would take a
 * sign and a trailing newline).
 *
 * Return: 0, -EINVAL (not a number) or -ERANGE (above max).
 */
static int kfw_parse_uint(const char *s, u32 max, u32 *out)
{
	const char *p;
	unsigned int v;
	int err;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++)
		if (!isdigit(*p))
			return -EINVAL;
	err = kstrtouint(s, 10, &v);
	if (err)
		return err;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Cuts the next blank-separated word out of *cursor, or returns NULL. */
static char *kfw_next_word(char **cursor)
{
	char *s = *cursor;
	char *word;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s) {
		*cursor = s;
		return NULL;
	}
	word = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	*cursor = s;
	return word;
}

/*
 * One KEY=VALUE key of a command.  The generic syntax messages are spelled
 * out per key so that each is a static string starting with the field name.
 */
struct kfw_key {
	const char *name;
	enum kfw_field field;
	int (*parse)(struct kfw_rule_spec *s, const char *v, struct kfw_err *e);
	const char *msg_noeq;
	const char *msg_empty;
	const char *msg_repeat;
};

#define KFW_KEY(fld, fn) {						\
	.name = KFW_FIELD_NAME_##fld,					\
	.field = KFW_FIELD_##fld,					\
	.parse = fn,							\
	.msg_noeq = KFW_FIELD_NAME_##fld ": missing '='",		\
	.msg_empty = KFW_FIELD_NAME_##fld ": empty value",		\
	.msg_repeat = KFW_FIELD_NAME_##fld ": repeated key",		\
}

static int kfw_parse_id(struct kfw_rule_spec *s, const char *v,
			struct kfw_err *e)
{
	int err = kfw_parse_uint(v, KFW_RULE_ID_MAX, &s->id);

	if (err == -ERANGE)
		return KFW_ERR(e, EINVAL, ID, "must be 1..65535");
	if (err)
		return KFW_ERR(e, EINVAL, ID, "not a decimal number");
	s->present |= KFW_SPEC_ID;
	return 0;
}

static int kfw_parse_action(struct kfw_rule_spec *s, const char *v,
			    struct kfw_err *e)
{
	s->action = kfw_lookup_action(v);
	if (s->action == KFW_ACTION_UNSPEC)
		return KFW_ERR(e, EINVAL, ACTION, "must be accept or drop");
	return 0;
}

static int kfw_parse_family(struct kfw_rule_spec *s, const char *v,
			    struct kfw_err *e)
{
	if (!strcmp(v, "ipv4"))
		s->family = KFW_FAMILY_IPV4;
	else if (!strcmp(v, "ipv6"))
		s->family = KFW_FAMILY_IPV6;
	else if (!strcmp(v, "any"))
		s->family = KFW_FAMILY_ANY;
	else
		return KFW_ERR(e, EINVAL, FAMILY, "must be ipv4, ipv6 or any");
	return 0;
}

static int kfw_parse_proto(struct kfw_rule_spec *s, const char *v,
			   struct kfw_err *e)
{
	unsigned int i;
	u32 proto;
	int err;

	for (i = 0; i < ARRAY_SIZE(kfw_proto_names); i++) {
		if (!strcmp(v, kfw_proto_names[i].name)) {
			s->proto = kfw_proto_names[i].proto;
			s->present |= KFW_SPEC_PROTO;
			return 0;
		}
	}
	err = kfw_parse_uint(v, U8_MAX, &proto);
	if (err == -ERANGE)
		return KFW_ERR(e, EINVAL, PROTO, "must be 0..255");
	if (err)
		return KFW_ERR(e, EINVAL, PROTO, "must be tcp, udp, icmp, icmpv6 or 0..255");
	s->proto = proto;
	s->present |= KFW_SPEC_PROTO;
	return 0;
}

struct kfw_prefix_syntax_msgs {
	enum kfw_field field;
	const char *address;
	const char *plen_range;
	const char *plen_number;
};

#define KFW_PREFIX_SYNTAX_MSGS(fld) {					\
	.field = KFW_FIELD_##fld,					\
	.address = KFW_FIELD_NAME_##fld ": unparsable address",		\
	.plen_range = KFW_FIELD_NAME_##fld ": prefix length beyond the address size", \
	.plen_number = KFW_FIELD_NAME_##fld ": prefix length must be a decimal number", \
}

static const struct kfw_prefix_syntax_msgs kfw_src_syntax =
	KFW_PREFIX_SYNTAX_MSGS(SRC);
static const struct kfw_prefix_syntax_msgs kfw_dst_syntax =
	KFW_PREFIX_SYNTAX_MSGS(DST);

/*
 * in4_pton() takes "010.0.0.1" as 10.0.0.1 where inet_aton(3) reads octal:
 * refuse leading zeros in a dotted quad, alone or at the end of IPv6.
 */
static bool kfw_dotted_quad_strict(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i++)
		if (s[i] == '0' && (i == 0 || s[i - 1] == '.') &&
		    isdigit(s[i + 1]))
			return false;
	return true;
}

/* ADDR or ADDR/LEN; the family comes from the address's syntax. */
static int kfw_parse_prefix(struct kfw_prefix *p, const char *v,
			    const struct kfw_prefix_syntax_msgs *msgs,
			    struct kfw_err *e)
{
	const char *slash = strchr(v, '/');
	size_t alen = slash ? slash - v : strlen(v);
	const char *quad = v;
	const char *end;
	u32 plen;
	int ok;

	if (memchr(v, ':', alen)) {
		p->family = KFW_FAMILY_IPV6;
		ok = in6_pton(v, alen, (u8 *)&p->addr.in6, -1, &end);
		/* an IPv6 address may end in a dotted quad */
		for (quad = v + alen; quad[-1] != ':'; quad--)
			;
	} else {
		p->family = KFW_FAMILY_IPV4;
		ok = in4_pton(v, alen, (u8 *)&p->addr.ip, -1, &end);
	}
	/* in[46]_pton stop at the first byte they do not understand */
	if (!alen || !ok || end != v + alen)
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->address);
	if (memchr(quad, '.', v + alen - quad) &&
	    !kfw_dotted_quad_strict(quad, v + alen - quad))
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->address);
	if (!slash) {
		p->plen = p->family == KFW_FAMILY_IPV4 ? 32 : 128;
		return 0;
	}
	ok = kfw_parse_uint(slash + 1, U8_MAX, &plen);
	if (ok == -ERANGE)
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->plen_range);
	if (ok)
		return kfw_err_set(e, -EINVAL, msgs->field, msgs->plen_number);
	p->plen = plen;
	return 0;
}

static int kfw_parse_src(struct kfw_rule_spec *s, const char *v,
			 struct kfw_err *e)
{
	return kfw_parse_prefix(&s->src, v, &kfw_src_syntax, e);
}

static int kfw_parse_dst(struct kfw_rule_spec *s, const char *v,
			 struct kfw_err *e)
{
	return kfw_parse_prefix(&s->dst, v, &kfw_dst_syntax, e);
}

/* N or N-M; N <= M is the validator's business. */
static int kfw_parse_ports(struct kfw_port_range *r, const char *v)
{
	char buf[sizeof("65535-65535")];
	char *dash;
	u32 min, max;
	int err;

	if (strscpy(buf, v, sizeof(buf)) < 0)
		return -EINVAL;
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	err = kfw_parse_uint(buf, U16_MAX, &min);
	if (err)
		return err;
	max = min;
	if (dash) {
		err = kfw_parse_uint(dash + 1, U16_MAX, &max);
		if (err)
			return err;
	}
	r->min = min;
	r->max = max;
	return 0;
}

static int kfw_parse_sport(struct kfw_rule_spec *s, const char *v,
			   struct kfw_err *e)
{
	if (kfw_parse_ports(&s->sport, v))
		return KFW_ERR(e, EINVAL, SPORT, "must be N or N-M with ports 0..65535");
	s->present |= KFW_SPEC_SPORT;
	return 0;
}

static int kfw_parse_dport(struct kfw_rule_spec *s, const char *v,
			   struct kfw_err *e)
{
	if (kfw_parse_ports(&s->dport, v))
		return KFW_ERR(e, EINVAL, DPORT, "must be N or N-M with ports 0..65535");
	s->present |= KFW_SPEC_DPORT;
	return 0;
}

/* Copies the name zero padded; its content is the validator's business. */
static int kfw_parse_iif(struct kfw_rule_spec *s, const char *v,
			 struct kfw_err *e)
{
	if (strscpy_pad(s->iif, v, sizeof(s->iif)) < 0)
		return KFW_ERR(e, EINVAL, IIF, "name longer than 15 bytes");
	return 0;
}

static int kfw_parse_oif(struct kfw_rule_spec *s, const char *v,
			 struct kfw_err *e)
{
	if (strscpy_pad(s->oif, v, sizeof(s->oif)) < 0)
		return KFW_ERR(e, EINVAL, OIF, "name longer than 15 bytes");
	return 0;
}

/* A comma list of hook names, each at most once, no empty element. */
static int kfw_parse_hooks(struct kfw_rule_spec *s, const char *v,
			   struct kfw_err *e)
{
	char buf[sizeof("forward,output,input")];
	char *cursor = buf;
	char *name;
	int hook;

	if (strscpy(buf, v, sizeof(buf)) < 0)
		return KFW_ERR(e, EINVAL, HOOKS, "must list input, forward, output");
	s->hooks = 0;
	while ((name = strsep(&cursor, ","))) {
		hook = kfw_lookup_hook(name);
		if (hook < 0)
			return KFW_ERR(e, EINVAL, HOOKS, "must list input, forward, output");
		if (s->hooks & BIT(hook))
			return KFW_ERR(e, EINVAL, HOOKS, "hook named twice");
		s->hooks |= BIT(hook);
	}
	s->present |= KFW_SPEC_HOOKS;
	return 0;
}

static int kfw_parse_log(struct kfw_rule_spec *s, const char *v,
			 struct kfw_err *e)
{
	u32 log;

	if (kfw_parse_uint(v, 1, &log))
		return KFW_ERR(e, EINVAL, LOG, "must be 0 or 1");
	s->log = log;
	return 0;
}

static int kfw_parse_rate(struct kfw_rule_spec *s, const char *v,
			  struct kfw_err *e)
{
	if (kfw_parse_uint(v, KFW_RULE_RATE_MAX, &s->rate))
		return KFW_ERR(e, EINVAL, RATE, "must be 0..1000000 events/s");
	return 0;
}

static int kfw_parse_burst(struct kfw_rule_spec *s, const char *v,
			   struct kfw_err *e)
{
	if (kfw_parse_uint(v, KFW_RULE_BURST_MAX, &s->burst))
		return KFW_ERR(e, EINVAL, BURST, "must be 1..1000000");
	s->present |= KFW_SPEC_BURST;
	return 0;
}

static const struct kfw_key kfw_add_keys[] = {
	KFW_KEY(ID, kfw_parse_id),
	KFW_KEY(ACTION, kfw_parse_action),
	KFW_KEY(FAMILY, kfw_parse_family),
	KFW_KEY(PROTO, kfw_parse_proto),
	KFW_KEY(SRC, kfw_parse_src),
	KFW_KEY(DST, kfw_parse_dst),
	KFW_KEY(SPORT, kfw_parse_sport),
	KFW_KEY(DPORT, kfw_parse_dport),
	KFW_KEY(IIF, kfw_parse_iif),
	KFW_KEY(OIF, kfw_parse_oif),
	KFW_KEY(HOOKS, kfw_parse_hooks),
	KFW_KEY(LOG, kfw_parse_log),
	KFW_KEY(RATE, kfw_parse_rate),
	KFW_KEY(BURST, kfw_parse_burst),
};

/* del takes the id only; policy's own keys are parsed below. */
static const struct kfw_key kfw_del_keys[] = {
	KFW_KEY(ID, kfw_parse_id),
};

/*
 * Parses the KEY=VALUE words left in *cursor into s, each key at most once.
 */
static int kfw_parse_keys(char **cursor, const struct kfw_key *keys,
			  unsigned int nkeys, struct kfw_rule_spec *s,
			  struct kfw_text_error *te)
{
	unsigned long seen = 0;
	char *word, *value;
	unsigned int i;

	BUILD_BUG_ON(__KFW_FIELD_MAX > BITS_PER_LONG);
	while ((word = kfw_next_word(cursor))) {
		value = strchr(word, '=');
		if (value)
			*value++ = '\0';
		for (i = 0; i < nkeys; i++)
			if (!strcmp(word, keys[i].name))
				break;
		if (i == nkeys) {
			te->word = word;
			return value ? KFW_ERR(&te->err, EINVAL, KEY, "unknown key") :
				       KFW_ERR(&te->err, EINVAL, KEY, "expected KEY=VALUE");
		}
		if (!value)
			return kfw_err_set(&te->err, -EINVAL, keys[i].field,
					   keys[i].msg_noeq);
		if (!*value)
			return kfw_err_set(&te->err, -EINVAL, keys[i].field,
					   keys[i].msg_empty);
		if (seen & BIT(keys[i].field))
			return kfw_err_set(&te->err, -EINVAL, keys[i].field,
					   keys[i].msg_repeat);
		seen |= BIT(keys[i].field);
		if (keys[i].parse(s, value, &te->err))
			return -EINVAL;
	}
	return 0;
}

static int kfw_cmd_add(struct kfw_txn *txn, char **cursor,
		       struct kfw_text_error *te)
{
	struct kfw_rule_spec spec;
	int err;

	memset(&spec, 0, sizeof(spec));
	err = kfw_parse_keys(cursor, kfw_add_keys, ARRAY_SIZE(kfw_add_keys),
			     &spec, te);
	if (err)
		return err;
	return kfw_txn_add(txn, &spec, &te->err);
}

static int kfw_cmd_del(struct kfw_txn *txn, char **cursor,
		       struct kfw_text_error *te)
{
	struct kfw_rule_spec spec;
	int err;

	memset(&spec, 0, sizeof(spec));
	err = kfw_parse_keys(cursor, kfw_del_keys, ARRAY_SIZE(kfw_del_keys),
			     &spec, te);
	if (err)
		return err;
	if (!(spec.present & KFW_SPEC_ID))
		return KFW_ERR(&te->err, EINVAL, ID, "missing");
	return kfw_txn_del(txn, spec.id, &te->err);
}

static int kfw_cmd_flush(struct kfw_txn *txn, char **cursor,
			 struct kfw_text_error *te)
{
	char *word = kfw_next_word(cursor);

	if (word) {
		te->word = word;
		return KFW_ERR(&te->err, EINVAL, COMMAND, "flush takes no arguments");
	}
	kfw_txn_flush(txn);
	return 0;
}

/* policy hook=H action=A: both keys, once each, nothing else. */
static int kfw_cmd_policy(struct kfw_txn *txn, char **cursor,
			  struct kfw_text_error *te)
{
	int hook = -1;
	u8 action = KFW_ACTION_UNSPEC;
	bool have_hook = false, have_action = false;
	char *word, *value;

	while ((word = kfw_next_word(cursor))) {
		value = strchr(word, '=');
		if (value)
			*value++ = '\0';
		if (!strcmp(word, "hook")) {
			if (have_hook)
				return KFW_ERR(&te->err, EINVAL, HOOK, "repeated key");
			if (!value)
				return KFW_ERR(&te->err, EINVAL, HOOK, "missing '='");
			have_hook = true;
			hook = kfw_lookup_hook(value);
			if (hook < 0)
				return KFW_ERR(&te->err, EINVAL, HOOK,
					       "must be input, forward or output");
		} else if (!strcmp(word, "action")) {
			if (have_action)
				return KFW_ERR(&te->err, EINVAL, ACTION, "repeated key");
			if (!value)
				return KFW_ERR(&te->err, EINVAL, ACTION, "missing '='");
			have_action = true;
			action = kfw_lookup_action(value);
			if (action == KFW_ACTION_UNSPEC)
				return KFW_ERR(&te->err, EINVAL, ACTION,
					       "must be accept or drop");
		} else {
			te->word = word;
			return value ? KFW_ERR(&te->err, EINVAL, KEY, "unknown key") :
				       KFW_ERR(&te->err, EINVAL, KEY, "expected KEY=VALUE");
		}
	}
	if (!have_hook)
		return KFW_ERR(&te->err, EINVAL, HOOK, "missing");
	if (!have_action)
		return KFW_ERR(&te->err, EINVAL, ACTION, "missing");
	return kfw_txn_policy(txn, hook, action, &te->err);
}

static const struct {
	const char *name;
	int (*run)(struct kfw_txn *txn, char **cursor,
		   struct kfw_text_error *te);
} kfw_commands[] = {
	{ "add", kfw_cmd_add },
	{ "del", kfw_cmd_del },
	{ "flush", kfw_cmd_flush },
	{ "policy", kfw_cmd_policy },
};

static int kfw_text_line(struct kfw_txn *txn, char *line,
			 struct kfw_text_error *te)
{
	char *cursor = line;
	char *command = kfw_next_word(&cursor);
	unsigned int i;

	if (!command || command[0] == '#')
		return 0;
	for (i = 0; i < ARRAY_SIZE(kfw_commands); i++)
		if (!strcmp(command, kfw_commands[i].name))
			return kfw_commands[i].run(txn, &cursor, te);
	te->word = command;
	return KFW_ERR(&te->err, EINVAL, COMMAND, "unknown command");
}

/* Only printable ASCII, space and tab; the line's own length is bounded. */
static int kfw_text_check_line(const char *line, size_t len,
			       struct kfw_text_error *te)
{
	size_t i;

	if (len > KFW_RULE_LINE_MAX)
		return KFW_ERR(&te->err, EINVAL, LINE, "longer than 511 bytes");
	for (i = 0; i < len; i++) {
		unsigned char c = line[i];

		if ((c < ' ' || c > '~') && c != '\t')
			return KFW_ERR(&te->err, EINVAL, LINE,
				       "byte other than printable ASCII, space or tab");
	}
	return 0;
}

/**
 * kfw_text_apply - run a /proc/kfw/rules write as one transaction
 * @buf: the write's bytes, with a NUL at buf[len] (memdup_user_nul); the
 *	parser cuts words in place
 * @len: the write's length
 * @te: where a rejection is described (line 0: not tied to one line)
 *
 * Return: 0 if every line was valid and the result committed (or there was
 * nothing to do), else a negative errno with @te set and nothing changed.
 */
int kfw_text_apply(char *buf, size_t len, struct kfw_text_error *te)
{
	char *end = buf + len;
	struct kfw_txn txn;
	char *line, *nl;
	int err;

	memset(te, 0, sizeof(*te));
	err = kfw_txn_begin(&txn);
	if (err)
		return kfw_err_set(&te->err, err, KFW_FIELD_NONE, "out of memory");

	for (line = buf; line < end; line = nl + 1) {
		nl = memchr(line, '\n', end - line);
		if (!nl)
			nl = end;	/* the last line may omit its '\n' */
		te->line++;
		err = kfw_text_check_line(line, nl - line, te);
		if (err)
			goto abort;
		*nl = '\0';
		err = kfw_text_line(&txn, line, te);
		if (err)
			goto abort;
	}
	te->line = 0;
	te->word = NULL;
	return kfw_txn_commit(&txn, &te->err);

abort:
	kfw_txn_abort(&txn);
	return err;
}

void kfw_print_policy(struct seq_file *m, enum kfw_hook hook, u8 action)
{
	seq_printf(m, "policy hook=%s action=%s\n", kfw_hook_name(hook),
		   kfw_action_name(action));
}

/*
 * RFC 5952: lowercase, no leading zeros, the first longest run of two or
 * more zero groups as "::", and the dotted quad only for IPv4-mapped
 * addresses.  Not %pI6c, which also writes ISATAP addresses with a dotted
 * quad where other implementations (Go's net/netip) do not.
 */
static void kfw_print_in6(struct seq_file *m, const struct in6_addr *a)
{
	int run = -1, run_len = 1;
	int i, j;

	if (ipv6_addr_v4mapped(a)) {
		seq_printf(m, "::ffff:%pI4", &a->s6_addr32[3]);
		return;
	}
	for (i = 0; i < 8; i = j + 1) {
		for (j = i; j < 8 && !a->s6_addr16[j]; j++)
			;
		if (j - i > run_len) {
			run = i;
			run_len = j - i;
		}
	}
	for (i = 0; i < 8; i++) {
		if (i == run) {
			seq_puts(m, "::");
			i += run_len - 1;
			continue;
		}
		if (i && i != run + run_len)
			seq_putc(m, ':');
		seq_printf(m, "%x", ntohs(a->s6_addr16[i]));
	}
}

static void kfw_print_prefix(struct seq_file *m, const char *key,
			     const struct kfw_prefix *p)
{
	if (p->family == KFW_FAMILY_IPV4) {
		seq_printf(m, " %s=%pI4/%u", key, &p->addr.ip, p->plen);
	} else if (p->family == KFW_FAMILY_IPV6) {
		seq_printf(m, " %s=", key);
		kfw_print_in6(m, &p->addr.in6);
		seq_printf(m, "/%u", p->plen);
	}
}

static void kfw_print_ports(struct seq_file *m, const char *key,
			    const struct kfw_port_range *r)
{
	if (r->min == r->max)
		seq_printf(m, " %s=%u", key, r->min);
	else
		seq_printf(m, " %s=%u-%u", key, r->min, r->max);
}

static void kfw_print_proto(struct seq_file *m, u8 proto)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kfw_proto_names); i++) {
		if (kfw_proto_names[i].proto == proto) {
			seq_printf(m, " proto=%s", kfw_proto_names[i].name);
			return;
		}
	}
	seq_printf(m, " proto=%u", proto);
}

/* The canonical form of docs/ABI.md: fixed key order, defaults left out. */
void kfw_print_rule(struct seq_file *m, const struct kfw_rule_spec *s)
{
	const char *sep = " hooks=";
	enum kfw_hook hook;

	seq_printf(m, "add id=%u action=%s", s->id, kfw_action_name(s->action));
	if (s->family == KFW_FAMILY_IPV4)
		seq_puts(m, " family=ipv4");
	else if (s->family == KFW_FAMILY_IPV6)
		seq_puts(m, " family=ipv6");
	if (s->present & KFW_SPEC_PROTO)
		kfw_print_proto(m, s->proto);
	kfw_print_prefix(m, "src", &s->src);
	kfw_print_prefix(m, "dst", &s->dst);
	if (s->present & KFW_SPEC_SPORT)
		kfw_print_ports(m, "sport", &s->sport);
	if (s->present & KFW_SPEC_DPORT)
		kfw_print_ports(m, "dport", &s->dport);
	if (s->iif[0])
		seq_printf(m, " iif=%s", s->iif);
	if (s->oif[0])
		seq_printf(m, " oif=%s", s->oif);
	if (s->hooks != KFW_HOOK_MASK_ALL) {
		for (hook = 0; hook < KFW_HOOK_COUNT; hook++) {
			if (!(s->hooks & BIT(hook)))
				continue;
			seq_printf(m, "%s%s", sep, kfw_hook_name(hook));
			sep = ",";
		}
	}
	if (s->log)
		seq_puts(m, " log=1");
	if (s->rate)
		seq_printf(m, " rate=%u burst=%u", s->rate, s->burst);
	seq_putc(m, '\n');
}
