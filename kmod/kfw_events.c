// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: drop and hit events, from the packet path to the "events" group
 * (docs/ABI.md, "The events multicast group").
 *
 * The life of an event:
 *
 * 1. kfw_event_packet(), in a hook: with nobody in the group this costs one
 *    genl_has_listeners() check and nothing else.  Otherwise the event must
 *    pass the rule's token bucket and the global one; refused, it is only
 *    counted.  Passed, it gets its CPU's next sequence number and a record
 *    in that CPU's ring, or, with the ring full, is counted as an overflow:
 *    its sequence number then becomes a gap listeners can count.
 *
 * 2. The drain work, on kfw_wq, a jiffy after the first record (at once
 *    when a ring is half full), moves every ring into KFW_CMD_EVENTS
 *    batches, one per datagram, and multicasts them.  The last batch of a
 *    CPU carries NEXT_SEQ: every sequence number below it was sent or lost.
 *
 * 3. The sync work, event_sync_ms after a multicast a listener could not
 *    take, sends NEXT_SEQ for every CPU that had events, and again while
 *    multicasts keep failing, so that a listener learns of losses at the
 *    end of a burst without waiting for more traffic.
 *
 * A ring has one producer, the hooks of its CPU, which run with BHs
 * disabled: that serialises them on PREEMPT_RT too, where it takes the
 * CPU's softirq lock.  It has one consumer, the works, serialised by
 * kfw_events_mutex.  So the ring needs no lock, only ordering: records
 * before head, head before next_seq (see kfw_ring_drain()).
 *
 * Nothing in the packet path sleeps or allocates: the token buckets take a
 * raw spinlock for a few instructions, the ring is preallocated.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/kernel.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/overflow.h>
#include <linux/percpu.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/topology.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "kfw.h"

#define KFW_EVENT_QUEUE_LEN_MAX	BIT(20)

static unsigned int kfw_event_queue_len = 4096;
static unsigned int kfw_event_rate_limit = 100000;
static unsigned int kfw_event_burst = 200000;
static unsigned int kfw_event_sync_ms = 200;

static int kfw_param_set_queue_len(const char *val,
				   const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, KFW_EVENT_QUEUE_LEN_MAX);
}

static int kfw_param_set_burst(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, UINT_MAX);
}

static int kfw_param_set_sync_ms(const char *val,
				 const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, 60000);
}

static const struct kernel_param_ops kfw_queue_len_ops = {
	.set = kfw_param_set_queue_len,
	.get = param_get_uint,
};

static const struct kernel_param_ops kfw_burst_ops = {
	.set = kfw_param_set_burst,
	.get = param_get_uint,
};

static const struct kernel_param_ops kfw_sync_ms_ops = {
	.set = kfw_param_set_sync_ms,
	.get = param_get_uint,
};

module_param_cb(event_queue_len, &kfw_queue_len_ops, &kfw_event_queue_len,
		0444);
MODULE_PARM_DESC(event_queue_len,
		 "Per-CPU event queue capacity, 1..1048576 events (default 4096)");
module_param_named(event_rate_limit, kfw_event_rate_limit, uint, 0644);
MODULE_PARM_DESC(event_rate_limit,
		 "Global event ceiling in events/s, 0 = none (default 100000)");
module_param_cb(event_burst, &kfw_burst_ops, &kfw_event_burst, 0644);
MODULE_PARM_DESC(event_burst,
		 "Global event bucket size, 1..4294967295 (default 200000)");
module_param_cb(event_sync_ms, &kfw_sync_ms_ops, &kfw_event_sync_ms, 0644);
MODULE_PARM_DESC(event_sync_ms,
		 "Delay of sync batches after an overflow, 1..60000 ms (default 200)");

/* One event, as the hook saw it; kfw_event_put() turns it into attributes. */
struct kfw_event_rec {
	u64 tstamp;
	u64 seq;
	union nf_inet_addr saddr;
	union nf_inet_addr daddr;
	u32 rule;
	u32 iif;		/* 0: none */
	u32 oif;
	u32 len;
	u32 suppressed;
	u16 sport;
	u16 dport;
	u8 type;
	u8 family;
	u8 hook;
	u8 proto;
	u8 flags;		/* KFW_PKT_ADDRS, KFW_PKT_PORTS */
};

/*
 * A CPU's ring of event_queue_len records.  head and tail count records
 * ever queued and ever drained (unsigned arithmetic: head - tail is the
 * fill); the slots are their positions in recs[].
 */
struct kfw_event_ring {
	/* Written by the CPU's hooks only. */
	unsigned int head;
	unsigned int head_slot;
	atomic64_t next_seq;	/* every seq below: queued, or overflowed */
	struct kfw_event_rec *recs;
	/* Written by the works only, under kfw_events_mutex. */
	unsigned int tail ____cacheline_aligned_in_smp;
	unsigned int tail_slot;
	u64 sent_seq;		/* the last NEXT_SEQ sent */
};

static struct kfw_event_ring __percpu *kfw_rings;
/* The fill at which a hook wants the drain at once, not a jiffy later. */
static unsigned int kfw_kick_fill;

static struct kfw_bucket kfw_global_bucket;
/* Default-policy events refused since the hook's last one. */
static atomic_t kfw_policy_suppressed[KFW_HOOK_COUNT];

static void kfw_drain_work_fn(struct work_struct *work);
static void kfw_sync_work_fn(struct work_struct *work);

static DECLARE_DELAYED_WORK(kfw_drain_work, kfw_drain_work_fn);
static DECLARE_DELAYED_WORK(kfw_sync_work, kfw_sync_work_fn);
/* Serialises the works: rings' consumer side, batch order, stop. */
static DEFINE_MUTEX(kfw_events_mutex);
static bool kfw_events_stopped;

void kfw_bucket_init(struct kfw_bucket *b)
{
	raw_spin_lock_init(&b->lock);
	b->tokens = 0;
	b->stamp = 0;
}

/*
 * Takes one token if there is one.  Tokens are NSEC_PER_SEC per event, so
 * @rate events/s refill @rate tokens per elapsed nanosecond; a bucket is
 * full at its first use and whenever the refill would overflow.  @now may
 * be a little older than the stamp another CPU left: no time went by.
 */
static bool kfw_bucket_take(struct kfw_bucket *b, u32 rate, u32 burst,
			    u64 now)
{
	u64 cap = (u64)burst * NSEC_PER_SEC;
	u64 tokens, refill;
	bool ok;

	raw_spin_lock(&b->lock);
	tokens = b->tokens;
	if (!b->stamp ||
	    (now > b->stamp &&
	     (check_mul_overflow(now - b->stamp, (u64)rate, &refill) ||
	      check_add_overflow(tokens, refill, &tokens))))
		tokens = cap;
	tokens = min(tokens, cap);
	b->stamp = max(b->stamp, now);
	ok = tokens >= NSEC_PER_SEC;
	b->tokens = ok ? tokens - NSEC_PER_SEC : tokens;
	raw_spin_unlock(&b->lock);
	return ok;
}

/* BHs disabled: the rule's per-CPU counters are the hooks' too. */
static void kfw_rule_count_event(const struct kfw_rule *rule, bool generated)
{
	struct kfw_rule_pcpu *c = this_cpu_ptr(rule->state->pcpu);

	u64_stats_update_begin(&c->syncp);
	u64_stats_inc(generated ? &c->events : &c->suppressed);
	u64_stats_update_end(&c->syncp);
}

/*
 * The rate limits: the rule's own bucket if it has a rate, then the global
 * ceiling.  Returns whether the event may exist; if so, *suppressed is the
 * number refused for the rule (or the hook's policy) since its last event.
 */
static bool kfw_event_admit(const struct kfw_rule *rule, u8 hook,
			    u32 *suppressed)
{
	atomic_t *since = rule ? &rule->state->suppressed :
				 &kfw_policy_suppressed[hook];
	u32 ceiling = READ_ONCE(kfw_event_rate_limit);
	u64 now = 0;

	if ((rule && rule->spec.rate) || ceiling)
		now = ktime_get_ns();
	if ((rule && rule->spec.rate &&
	     !kfw_bucket_take(&rule->state->bucket, rule->spec.rate,
			      rule->spec.burst, now)) ||
	    (ceiling &&
	     !kfw_bucket_take(&kfw_global_bucket, ceiling,
			      READ_ONCE(kfw_event_burst), now))) {
		atomic_inc(since);
		kfw_event_stat_add(KFW_EVSTAT_SUPPRESSED, 1);
		if (rule)
			kfw_rule_count_event(rule, false);
		return false;
	}
	*suppressed = atomic_read(since) ? atomic_xchg(since, 0) : 0;
	return true;
}

static void kfw_event_fill(struct kfw_event_rec *rec, const struct kfw_pkt *pkt,
			   const struct kfw_rule *rule, u8 verdict,
			   u32 suppressed, u64 seq)
{
	rec->tstamp = ktime_get_real_ns();
	rec->seq = seq;
	rec->saddr = pkt->saddr;
	rec->daddr = pkt->daddr;
	rec->rule = rule ? rule->spec.id : KFW_RULE_ID_POLICY;
	rec->iif = pkt->in ? pkt->in->ifindex : 0;
	rec->oif = pkt->out ? pkt->out->ifindex : 0;
	rec->len = pkt->len;
	rec->suppressed = suppressed;
	rec->sport = pkt->sport;
	rec->dport = pkt->dport;
	rec->type = verdict == KFW_ACTION_DROP ? KFW_EVENT_DROP : KFW_EVENT_HIT;
	rec->family = pkt->family;
	rec->hook = pkt->hook;
	/* docs/ABI.md: 255 when a malformed IPv6 chain hid the protocol */
	rec->proto = pkt->flags & KFW_PKT_PROTO ? pkt->proto : IPPROTO_RAW;
	rec->flags = pkt->flags;
}

/*
 * Makes sure a drain will see what the hook just published.  The barrier
 * pairs with the one the workqueue executes between clearing a work's
 * PENDING bit and running it: either the pending drain has not started
 * and will see our stores, or we see PENDING clear and queue another.
 */
static void kfw_events_kick(unsigned int fill)
{
	/* our ring stores before the PENDING test */
	smp_mb();
	if (fill == kfw_kick_fill)
		mod_delayed_work(kfw_wq, &kfw_drain_work, 0);
	else if (!delayed_work_pending(&kfw_drain_work))
		queue_delayed_work(kfw_wq, &kfw_drain_work, 1);
}

void kfw_event_packet(const struct kfw_pkt *pkt, const struct kfw_rule *rule,
		      u8 verdict)
{
	struct kfw_event_ring *r;
	unsigned int fill;
	u32 suppressed;
	u64 seq;

	/* With nobody listening, this is all an event costs. */
	if (!genl_has_listeners(&kfw_genl_family, &init_net, KFW_MCGRP_EVENTS))
		return;
	if (!kfw_event_admit(rule, pkt->hook, &suppressed))
		return;

	kfw_event_stat_add(KFW_EVSTAT_GENERATED, 1);
	if (rule)
		kfw_rule_count_event(rule, true);

	r = this_cpu_ptr(kfw_rings);
	seq = atomic64_read(&r->next_seq);
	/* Acquire: the drain has copied out the records before tail. */
	fill = r->head - smp_load_acquire(&r->tail);
	if (fill < kfw_event_queue_len) {
		kfw_event_fill(&r->recs[r->head_slot], pkt, rule, verdict,
			       suppressed, seq);
		if (++r->head_slot == kfw_event_queue_len)
			r->head_slot = 0;
		/* Release: the record before the head that exposes it. */
		smp_store_release(&r->head, r->head + 1);
		fill++;
	} else {
		kfw_event_stat_add(KFW_EVSTAT_QUEUE_OVERFLOWS, 1);
	}
	/* Release: a queued event's record before its accounting. */
	atomic64_set_release(&r->next_seq, seq + 1);
	kfw_events_kick(fill);
}

/* The largest KFW_A_EVENT nest kfw_event_put() writes. */
static size_t kfw_event_size(void)
{
	return nla_total_size(0) +
	       4 * nla_total_size(sizeof(u8)) +	/* type family hook proto */
	       5 * nla_total_size(sizeof(u32)) + /* rule iif oif len supp. */
	       2 * nla_total_size(sizeof(u16)) +	/* ports */
	       2 * nla_total_size(sizeof(struct in6_addr)) +
	       2 * nla_total_size_64bit(sizeof(u64));	/* tstamp seq */
}

static int kfw_event_put(struct sk_buff *skb, const struct kfw_event_rec *rec)
{
	int alen = rec->family == KFW_FAMILY_IPV4 ? sizeof(struct in_addr) :
						    sizeof(struct in6_addr);
	struct nlattr *nest;

	nest = nla_nest_start(skb, KFW_A_EVENT);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u8(skb, KFW_EVENT_A_TYPE, rec->type) ||
	    nla_put_u32(skb, KFW_EVENT_A_RULE, rec->rule) ||
	    nla_put_u8(skb, KFW_EVENT_A_FAMILY, rec->family) ||
	    nla_put_u8(skb, KFW_EVENT_A_HOOK, rec->hook) ||
	    nla_put_u8(skb, KFW_EVENT_A_PROTO, rec->proto) ||
	    ((rec->flags & KFW_PKT_ADDRS) &&
	     (nla_put(skb, KFW_EVENT_A_SADDR, alen, &rec->saddr) ||
	      nla_put(skb, KFW_EVENT_A_DADDR, alen, &rec->daddr))) ||
	    ((rec->flags & KFW_PKT_PORTS) &&
	     (nla_put_u16(skb, KFW_EVENT_A_SPORT, rec->sport) ||
	      nla_put_u16(skb, KFW_EVENT_A_DPORT, rec->dport))) ||
	    (rec->iif && nla_put_u32(skb, KFW_EVENT_A_IIF, rec->iif)) ||
	    (rec->oif && nla_put_u32(skb, KFW_EVENT_A_OIF, rec->oif)) ||
	    nla_put_u32(skb, KFW_EVENT_A_LEN, rec->len) ||
	    nla_put_u64_64bit(skb, KFW_EVENT_A_TSTAMP, rec->tstamp,
			      KFW_EVENT_A_PAD) ||
	    nla_put_u64_64bit(skb, KFW_EVENT_A_SEQ, rec->seq,
			      KFW_EVENT_A_PAD) ||
	    nla_put_u32(skb, KFW_EVENT_A_SUPPRESSED, rec->suppressed)) {
		nla_nest_cancel(skb, nest);
		return -EMSGSIZE;
	}
	nla_nest_end(skb, nest);
	return 0;
}

/* The works run in process context; the hooks count with BHs disabled. */
static void kfw_event_stat_add_bh(enum kfw_event_stat stat, u64 n)
{
	local_bh_disable();
	kfw_event_stat_add(stat, n);
	local_bh_enable();
}

/* A batch being built: one datagram for one CPU. */
struct kfw_batch {
	struct sk_buff *skb;
	void *hdr;
	int cpu;
	bool failed;	/* a multicast or allocation failed: sync later */
};

static bool kfw_batch_start(struct kfw_batch *b)
{
	b->skb = genlmsg_new(GENLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!b->skb)
		goto fail;
	b->hdr = genlmsg_put(b->skb, 0, 0, &kfw_genl_family, 0,
			     KFW_CMD_EVENTS);
	if (!b->hdr ||
	    nla_put_u64_64bit(b->skb, KFW_A_INSTANCE, kfw_instance,
			      KFW_A_PAD) ||
	    nla_put_u32(b->skb, KFW_A_CPU, b->cpu)) {
		nlmsg_free(b->skb);
		goto fail;
	}
	return true;

fail:
	b->skb = NULL;
	b->failed = true;
	return false;
}

/*
 * Multicasts the batch and counts the outcome.  A listener that sets
 * NETLINK_BROADCAST_ERROR makes a full receive buffer -ENOBUFS; one that
 * does not makes it -ESRCH if nobody else took the batch: with someone in
 * the group, that too is a batch a listener missed.
 */
static void kfw_batch_send(struct kfw_batch *b)
{
	enum kfw_event_stat stat;
	int err;

	genlmsg_end(b->skb, b->hdr);
	err = genlmsg_multicast(&kfw_genl_family, b->skb, 0, KFW_MCGRP_EVENTS,
				GFP_KERNEL);
	b->skb = NULL;
	switch (err) {
	case 0:
		stat = KFW_EVSTAT_MESSAGES_SENT;
		break;
	case -ESRCH:
		stat = KFW_EVSTAT_NO_LISTENER;
		if (genl_has_listeners(&kfw_genl_family, &init_net,
				       KFW_MCGRP_EVENTS))
			b->failed = true;
		break;
	default:
		stat = KFW_EVSTAT_NOBUFS;
		b->failed = true;
		break;
	}
	kfw_event_stat_add_bh(stat, 1);
	/* a drain of long queues must not hog a non-preemptible CPU */
	cond_resched();
}

/* Hands @n drained slots back to the producer. */
static void kfw_ring_consume(struct kfw_event_ring *r, unsigned int n)
{
	r->tail_slot = (r->tail_slot + n) % kfw_event_queue_len;
	/* Release: done with the records before the producer reuses them. */
	smp_store_release(&r->tail, r->tail + n);
}

/*
 * Moves one CPU's ring into batches.  next_seq is read before head, and the
 * hook publishes them in the other order, so every sequence number below
 * the next_seq read is in a record before the head read or was lost to an
 * overflow: NEXT_SEQ, the larger of it and the last record's seq + 1, is
 * exact.  @sync sends NEXT_SEQ even when nothing happened since the last.
 */
static void kfw_ring_drain(struct kfw_batch *b, bool sync)
{
	struct kfw_event_ring *r = per_cpu_ptr(kfw_rings, b->cpu);
	size_t room = kfw_event_size() + nla_total_size_64bit(sizeof(u64));
	unsigned int head;
	u64 next;

	/* Acquire: next_seq before head, the reverse of the hook's stores. */
	next = atomic64_read_acquire(&r->next_seq);
	/* Acquire: the records before head are complete. */
	head = smp_load_acquire(&r->head);

	if (r->tail == head && next == r->sent_seq && !(sync && next))
		return;
	while (r->tail != head) {
		const struct kfw_event_rec *rec = &r->recs[r->tail_slot];

		if (b->skb && skb_tailroom(b->skb) < room)
			kfw_batch_send(b);
		if (!b->skb && !kfw_batch_start(b)) {
			/* their numbers become a gap, the sync tells */
			kfw_event_stat_add_bh(KFW_EVSTAT_ALLOC_FAILURES,
					      head - r->tail);
			kfw_ring_consume(r, head - r->tail);
			return;
		}
		if (WARN_ON_ONCE(kfw_event_put(b->skb, rec)))
			kfw_event_stat_add_bh(KFW_EVSTAT_ALLOC_FAILURES, 1);
		next = max(next, rec->seq + 1);
		kfw_ring_consume(r, 1);
	}
	if (!b->skb && !kfw_batch_start(b))
		return;
	if (WARN_ON_ONCE(nla_put_u64_64bit(b->skb, KFW_A_NEXT_SEQ, next,
					   KFW_A_PAD))) {
		nlmsg_free(b->skb);
		b->skb = NULL;
		b->failed = true;
		return;
	}
	r->sent_seq = next;
	kfw_batch_send(b);
}

static void kfw_events_run(bool sync)
{
	struct kfw_batch b = {};

	mutex_lock(&kfw_events_mutex);
	if (kfw_events_stopped)
		goto out;
	for_each_possible_cpu(b.cpu)
		kfw_ring_drain(&b, sync);
	/* A listener missed something it cannot count yet: tell it again. */
	if (b.failed)
		queue_delayed_work(kfw_wq, &kfw_sync_work,
				   msecs_to_jiffies(READ_ONCE(kfw_event_sync_ms)));
out:
	mutex_unlock(&kfw_events_mutex);
}

static void kfw_drain_work_fn(struct work_struct *work)
{
	kfw_events_run(false);
}

static void kfw_sync_work_fn(struct work_struct *work)
{
	kfw_events_run(true);
}

int kfw_events_init(void)
{
	int cpu;

	kfw_bucket_init(&kfw_global_bucket);
	kfw_kick_fill = DIV_ROUND_UP(kfw_event_queue_len, 2);
	kfw_rings = alloc_percpu(struct kfw_event_ring);
	if (!kfw_rings)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		struct kfw_event_ring *r = per_cpu_ptr(kfw_rings, cpu);

		r->recs = kvmalloc_node(array_size(kfw_event_queue_len,
						   sizeof(*r->recs)),
					GFP_KERNEL, cpu_to_node(cpu));
		if (!r->recs) {
			kfw_events_exit();
			return -ENOMEM;
		}
	}
	return 0;
}

/*
 * Called once no hook can run: no work is queued, runs or multicasts after
 * this, and the works no longer queue each other.
 */
void kfw_events_stop(void)
{
	mutex_lock(&kfw_events_mutex);
	kfw_events_stopped = true;
	mutex_unlock(&kfw_events_mutex);
	cancel_delayed_work_sync(&kfw_drain_work);
	cancel_delayed_work_sync(&kfw_sync_work);
}

void kfw_events_exit(void)
{
	int cpu;

	for_each_possible_cpu(cpu)
		kvfree(per_cpu_ptr(kfw_rings, cpu)->recs);
	free_percpu(kfw_rings);
}
