// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: the netfilter hooks, packet classification and per-hook counters.
 *
 * Each network namespace gets six hooks (IPv4 and IPv6 at LOCAL_IN, FORWARD
 * and LOCAL_OUT), registered by pernet_operations so that namespaces
 * created later are filtered too.  The packet path takes no lock and
 * allocates nothing: it reads the published table under RCU and counts in
 * per-CPU counters.
 *
 * Malformed packets: every header beyond the fixed IP header is read with
 * skb_header_pointer(), which fails instead of reading past the end.  What
 * could not be read stays unknown and a rule that needs it does not match:
 * an IPv6 extension chain that ipv6_find_hdr() rejects leaves the protocol
 * unknown (only rules without proto or ports can match), a non-first
 * fragment or a truncated transport header leaves the ports unknown.
 */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/netdevice.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6.h>
#include <linux/skbuff.h>
#include <net/ip.h>
#include <net/ipv6.h>
#include <net/net_namespace.h>

#include "kfw.h"

/* Counters per family x hook x verdict, in /proc/kfw/hooks order. */
struct kfw_hook_pcpu {
	struct {
		u64_stats_t packets;
		u64_stats_t bytes;
	} slot[2][KFW_HOOK_COUNT][2];
	struct u64_stats_sync syncp;
};

static struct kfw_hook_pcpu __percpu *kfw_hook_stats;

static unsigned int kfw_family_index(u8 family)
{
	return family == KFW_FAMILY_IPV6;
}

static unsigned int kfw_verdict_index(u8 verdict)
{
	return verdict == KFW_ACTION_DROP;
}

/* Reads the ports of a tcp or udp header at thoff, if it is all there. */
static void kfw_classify_ports(const struct sk_buff *skb, unsigned int thoff,
			       struct kfw_pkt *pkt)
{
	__be16 _ports[2];
	const __be16 *ports;

	if (pkt->proto != IPPROTO_TCP && pkt->proto != IPPROTO_UDP)
		return;
	ports = skb_header_pointer(skb, thoff, sizeof(_ports), _ports);
	if (!ports)
		return;
	pkt->sport = ntohs(ports[0]);
	pkt->dport = ntohs(ports[1]);
	pkt->flags |= KFW_PKT_PORTS;
}

static void kfw_classify_ipv4(const struct sk_buff *skb, struct kfw_pkt *pkt)
{
	const struct iphdr *iph;
	struct iphdr _iph;

	iph = skb_header_pointer(skb, skb_network_offset(skb), sizeof(_iph),
				 &_iph);
	if (!iph || iph->ihl < 5)
		return;
	pkt->saddr.ip = iph->saddr;
	pkt->daddr.ip = iph->daddr;
	pkt->proto = iph->protocol;
	pkt->flags |= KFW_PKT_ADDRS | KFW_PKT_PROTO;
	/* Only the first fragment carries the transport header. */
	if (iph->frag_off & htons(IP_OFFSET))
		return;
	kfw_classify_ports(skb, skb_network_offset(skb) + iph->ihl * 4, pkt);
}

static void kfw_classify_ipv6(const struct sk_buff *skb, struct kfw_pkt *pkt)
{
	const struct ipv6hdr *ip6h;
	struct ipv6hdr _ip6h;
	unsigned short fragoff;
	unsigned int thoff = 0;
	int proto;

	ip6h = skb_header_pointer(skb, skb_network_offset(skb), sizeof(_ip6h),
				  &_ip6h);
	if (!ip6h)
		return;
	pkt->saddr.in6 = ip6h->saddr;
	pkt->daddr.in6 = ip6h->daddr;
	pkt->flags |= KFW_PKT_ADDRS;
	/*
	 * The protocol after the extension headers; for a non-first fragment
	 * the fragment header's next header, as for IPv4.  Negative: the
	 * chain is truncated or malformed.
	 */
	proto = ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL);
	if (proto < 0)
		return;
	pkt->proto = proto;
	pkt->flags |= KFW_PKT_PROTO;
	if (fragoff)
		return;
	kfw_classify_ports(skb, thoff, pkt);
}

static bool kfw_prefix_match(const struct kfw_prefix *p,
			     const union nf_inet_addr *a)
{
	if (p->family == KFW_FAMILY_IPV4)
		return !((a->ip ^ p->addr.ip) & p->mask.ip);
	return !ipv6_masked_addr_cmp(&p->addr.in6, &p->mask.in6, &a->in6);
}

static bool kfw_port_match(const struct kfw_port_range *r, u16 port)
{
	return port >= r->min && port <= r->max;
}

/* Compares the name and its NUL: bytes after dev->name's NUL are noise. */
static bool kfw_ifname_match(const struct net_device *dev, const char *name,
			     u8 len)
{
	return dev && !memcmp(dev->name, name, len + 1);
}

static bool kfw_rule_match(const struct kfw_rule_spec *r,
			   const struct kfw_pkt *p)
{
	if (!(r->hooks & BIT(p->hook)))
		return false;
	if (r->match_family && r->match_family != p->family)
		return false;
	if (r->present & KFW_SPEC_PROTO &&
	    (!(p->flags & KFW_PKT_PROTO) || p->proto != r->proto))
		return false;
	/* With an address, match_family is the prefix's: same family here. */
	if (r->src.family &&
	    (!(p->flags & KFW_PKT_ADDRS) || !kfw_prefix_match(&r->src, &p->saddr)))
		return false;
	if (r->dst.family &&
	    (!(p->flags & KFW_PKT_ADDRS) || !kfw_prefix_match(&r->dst, &p->daddr)))
		return false;
	if (r->present & (KFW_SPEC_SPORT | KFW_SPEC_DPORT)) {
		if (!(p->flags & KFW_PKT_PORTS))
			return false;
		if (r->present & KFW_SPEC_SPORT &&
		    !kfw_port_match(&r->sport, p->sport))
			return false;
		if (r->present & KFW_SPEC_DPORT &&
		    !kfw_port_match(&r->dport, p->dport))
			return false;
	}
	if (r->iif[0] && !kfw_ifname_match(p->in, r->iif, r->iif_len))
		return false;
	if (r->oif[0] && !kfw_ifname_match(p->out, r->oif, r->oif_len))
		return false;
	return true;
}

/* Callers disable BHs: LOCAL_OUT runs in process context. */
static void kfw_count(const struct kfw_rule *rule, const struct kfw_pkt *pkt,
		      u8 verdict)
{
	struct kfw_hook_pcpu *h = this_cpu_ptr(kfw_hook_stats);
	unsigned int f = kfw_family_index(pkt->family);
	unsigned int v = kfw_verdict_index(verdict);

	if (rule) {
		struct kfw_rule_pcpu *c = this_cpu_ptr(rule->state->pcpu);

		u64_stats_update_begin(&c->syncp);
		u64_stats_inc(&c->packets);
		u64_stats_add(&c->bytes, pkt->len);
		u64_stats_update_end(&c->syncp);
	}
	u64_stats_update_begin(&h->syncp);
	u64_stats_inc(&h->slot[f][pkt->hook][v].packets);
	u64_stats_add(&h->slot[f][pkt->hook][v].bytes, pkt->len);
	u64_stats_update_end(&h->syncp);
}

/* First match in ascending id wins; no match takes the hook's policy. */
static unsigned int kfw_filter(const struct kfw_pkt *pkt)
{
	const struct kfw_rule *rule = NULL;
	const struct kfw_table *t;
	u8 verdict;
	u32 i;

	rcu_read_lock();
	t = kfw_table_rcu();
	for (i = 0; i < t->count; i++) {
		if (kfw_rule_match(&t->rules[i].spec, pkt)) {
			rule = &t->rules[i];
			break;
		}
	}
	verdict = rule ? rule->spec.action : t->policy[pkt->hook];

	local_bh_disable();
	kfw_count(rule, pkt, verdict);
	if (verdict == KFW_ACTION_DROP || (rule && rule->spec.log))
		kfw_event_packet(pkt, rule, verdict);
	local_bh_enable();
	rcu_read_unlock();

	return verdict == KFW_ACTION_DROP ? NF_DROP : NF_ACCEPT;
}

static void kfw_pkt_init(struct kfw_pkt *pkt, u8 family,
			 const struct sk_buff *skb,
			 const struct nf_hook_state *state)
{
	memset(pkt, 0, sizeof(*pkt));
	pkt->family = family;
	pkt->len = skb->len;
	switch (state->hook) {
	case NF_INET_LOCAL_IN:
		pkt->hook = KFW_HOOK_INPUT;
		pkt->in = state->in;
		break;
	case NF_INET_FORWARD:
		pkt->hook = KFW_HOOK_FORWARD;
		pkt->in = state->in;
		pkt->out = state->out;
		break;
	default:
		pkt->hook = KFW_HOOK_OUTPUT;
		pkt->out = state->out;
		break;
	}
}

static unsigned int kfw_hook_ipv4(void *priv, struct sk_buff *skb,
				  const struct nf_hook_state *state)
{
	struct kfw_pkt pkt;

	kfw_pkt_init(&pkt, KFW_FAMILY_IPV4, skb, state);
	kfw_classify_ipv4(skb, &pkt);
	return kfw_filter(&pkt);
}

static unsigned int kfw_hook_ipv6(void *priv, struct sk_buff *skb,
				  const struct nf_hook_state *state)
{
	struct kfw_pkt pkt;

	kfw_pkt_init(&pkt, KFW_FAMILY_IPV6, skb, state);
	kfw_classify_ipv6(skb, &pkt);
	return kfw_filter(&pkt);
}

#define KFW_NF_OPS(fn, family, hooknum_, prio) {			\
	.hook = fn,							\
	.pf = family,							\
	.hooknum = hooknum_,						\
	.priority = prio,						\
}

static const struct nf_hook_ops kfw_nf_ops[] = {
	KFW_NF_OPS(kfw_hook_ipv4, NFPROTO_IPV4, NF_INET_LOCAL_IN, NF_IP_PRI_FILTER),
	KFW_NF_OPS(kfw_hook_ipv4, NFPROTO_IPV4, NF_INET_FORWARD, NF_IP_PRI_FILTER),
	KFW_NF_OPS(kfw_hook_ipv4, NFPROTO_IPV4, NF_INET_LOCAL_OUT, NF_IP_PRI_FILTER),
	KFW_NF_OPS(kfw_hook_ipv6, NFPROTO_IPV6, NF_INET_LOCAL_IN, NF_IP6_PRI_FILTER),
	KFW_NF_OPS(kfw_hook_ipv6, NFPROTO_IPV6, NF_INET_FORWARD, NF_IP6_PRI_FILTER),
	KFW_NF_OPS(kfw_hook_ipv6, NFPROTO_IPV6, NF_INET_LOCAL_OUT, NF_IP6_PRI_FILTER),
};

static int __net_init kfw_net_init(struct net *net)
{
	return nf_register_net_hooks(net, kfw_nf_ops, ARRAY_SIZE(kfw_nf_ops));
}

/* The core runs synchronize_rcu() between pre_exit and exit. */
static void __net_exit kfw_net_pre_exit(struct net *net)
{
	nf_unregister_net_hooks(net, kfw_nf_ops, ARRAY_SIZE(kfw_nf_ops));
}

static struct pernet_operations kfw_net_ops = {
	.init = kfw_net_init,
	.pre_exit = kfw_net_pre_exit,
};

int kfw_hooks_register(void)
{
	return register_pernet_subsys(&kfw_net_ops);
}

/* Returns once no hook of kfw runs anywhere. */
void kfw_hooks_unregister(void)
{
	unregister_pernet_subsys(&kfw_net_ops);
}

int kfw_hooks_init(void)
{
	int cpu;

	kfw_hook_stats = alloc_percpu(struct kfw_hook_pcpu);
	if (!kfw_hook_stats)
		return -ENOMEM;
	for_each_possible_cpu(cpu)
		u64_stats_init(&per_cpu_ptr(kfw_hook_stats, cpu)->syncp);
	return 0;
}

void kfw_hooks_exit(void)
{
	free_percpu(kfw_hook_stats);
}

void kfw_hook_counters_read(u8 family, enum kfw_hook hook, u8 verdict,
			    struct kfw_hook_counters *c)
{
	unsigned int f = kfw_family_index(family);
	unsigned int v = kfw_verdict_index(verdict);
	int cpu;

	memset(c, 0, sizeof(*c));
	for_each_possible_cpu(cpu) {
		const struct kfw_hook_pcpu *h = per_cpu_ptr(kfw_hook_stats, cpu);
		u64 packets, bytes;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&h->syncp);
			packets = u64_stats_read(&h->slot[f][hook][v].packets);
			bytes = u64_stats_read(&h->slot[f][hook][v].bytes);
		} while (u64_stats_fetch_retry(&h->syncp, start));
		c->packets += packets;
		c->bytes += bytes;
	}
}
