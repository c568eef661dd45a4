// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: the rule table and the transactions that replace it.
 *
 * The published table is immutable: an array of rules sorted by id, the
 * three default policies and the generation, behind one RCU pointer.  A
 * writer (under kfw_table_mutex) edits a private copy and publishes a new
 * table in one pointer store; the old one is released after a grace period
 * by a work item, in process context, because releasing a table may free
 * thousands of per-CPU counters.
 *
 * Lifetime: a table holds a kref.  Publishing gives it one reference, the
 * publisher's, dropped a grace period after the table is replaced; readers
 * that need the table across sleeps (/proc seq_files, netlink dumps) take
 * their own with kfw_table_get().  Rules hold counted references to their
 * kfw_rule_state, which successive tables share while the rule is unchanged.
 */
#include <linux/bitmap.h>
#include <linux/bsearch.h>
#include <linux/errno.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/string.h>

#include "kfw.h"

/* Room for a few adds before the working copy has to grow. */
#define KFW_TXN_MIN_CAPACITY	16

static DEFINE_MUTEX(kfw_table_mutex);
static struct kfw_table __rcu *kfw_table_current;

static struct kfw_rule_state *kfw_rule_state_alloc(void)
{
	struct kfw_rule_state *st;
	int cpu;

	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return NULL;
	st->pcpu = alloc_percpu(struct kfw_rule_pcpu);
	if (!st->pcpu) {
		kfree(st);
		return NULL;
	}
	for_each_possible_cpu(cpu)
		u64_stats_init(&per_cpu_ptr(st->pcpu, cpu)->syncp);
	kfw_bucket_init(&st->bucket);
	atomic_set(&st->suppressed, 0);
	refcount_set(&st->refcnt, 1);
	return st;
}

static void kfw_rule_state_put(struct kfw_rule_state *st)
{
	if (!refcount_dec_and_test(&st->refcnt))
		return;
	free_percpu(st->pcpu);
	kfree(st);
}

void kfw_rule_counters_read(const struct kfw_rule *r,
			    struct kfw_rule_counters *c)
{
	int cpu;

	memset(c, 0, sizeof(*c));
	for_each_possible_cpu(cpu) {
		const struct kfw_rule_pcpu *p = per_cpu_ptr(r->state->pcpu, cpu);
		u64 packets, bytes, events, suppressed;
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&p->syncp);
			packets = u64_stats_read(&p->packets);
			bytes = u64_stats_read(&p->bytes);
			events = u64_stats_read(&p->events);
			suppressed = u64_stats_read(&p->suppressed);
		} while (u64_stats_fetch_retry(&p->syncp, start));
		c->packets += packets;
		c->bytes += bytes;
		c->events += events;
		c->suppressed += suppressed;
	}
}

/* Releases a table; rules whose state is still NULL were never filled. */
static void kfw_table_release(struct kref *ref)
{
	struct kfw_table *t = container_of(ref, struct kfw_table, ref);
	u32 i;

	for (i = 0; i < t->count; i++)
		if (t->rules[i].state)
			kfw_rule_state_put(t->rules[i].state);
	kvfree(t);
}

void kfw_table_put(struct kfw_table *t)
{
	kref_put(&t->ref, kfw_table_release);
}

/* Drops the publisher's reference, a grace period after unpublishing. */
static void kfw_table_release_work(struct work_struct *work)
{
	struct kfw_table *t = container_of(to_rcu_work(work), struct kfw_table,
					   release_work);

	kfw_table_put(t);
}

static struct kfw_table *kfw_table_alloc(u32 count)
{
	struct kfw_table *t;

	t = kvzalloc(struct_size(t, rules, count), GFP_KERNEL);
	if (!t)
		return NULL;
	kref_init(&t->ref);
	INIT_RCU_WORK(&t->release_work, kfw_table_release_work);
	t->count = count;
	return t;
}

static void kfw_table_publish(struct kfw_table *t)
{
	struct kfw_table *old;

	old = rcu_replace_pointer(kfw_table_current, t,
				  lockdep_is_held(&kfw_table_mutex));
	if (old)
		queue_rcu_work(kfw_wq, &old->release_work);
}

/* The current table, for readers inside rcu_read_lock(). */
struct kfw_table *kfw_table_rcu(void)
{
	return rcu_dereference(kfw_table_current);
}

/**
 * kfw_table_get - pin the current table
 *
 * Return: the current table with a reference the caller drops with
 * kfw_table_put(); it may sleep while holding it.
 */
struct kfw_table *kfw_table_get(void)
{
	struct kfw_table *t;

	rcu_read_lock();
	/*
	 * The publisher's reference outlives every RCU reader that can see
	 * the table, so this succeeds at once; the loop is only defensive.
	 */
	do {
		t = rcu_dereference(kfw_table_current);
	} while (!kref_get_unless_zero(&t->ref));
	rcu_read_unlock();
	return t;
}

int kfw_table_init(void)
{
	struct kfw_table *t;
	enum kfw_hook hook;

	t = kfw_table_alloc(0);
	if (!t)
		return -ENOMEM;
	for (hook = 0; hook < KFW_HOOK_COUNT; hook++)
		t->policy[hook] = KFW_ACTION_ACCEPT;
	mutex_lock(&kfw_table_mutex);
	kfw_table_publish(t);
	mutex_unlock(&kfw_table_mutex);
	return 0;
}

/*
 * Called once the hooks and /proc are gone, so nobody can reach the table:
 * its release needs no grace period.  Tables replaced earlier are still
 * queued; the caller waits for them with rcu_barrier() and the workqueue.
 */
void kfw_table_exit(void)
{
	struct kfw_table *t;

	t = rcu_replace_pointer(kfw_table_current, NULL, true);
	if (t)
		kfw_table_put(t);
}

static int kfw_spec_cmp_id(const void *a, const void *b)
{
	const struct kfw_rule_spec *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static void kfw_txn_sort(struct kfw_txn *txn)
{
	if (txn->sorted)
		return;
	sort(txn->rules, txn->count, sizeof(*txn->rules), kfw_spec_cmp_id,
	     NULL);
	txn->sorted = true;
}

/**
 * kfw_txn_begin - start a transaction on a copy of the current table
 * @txn: the transaction to set up
 *
 * Takes the writers' mutex; kfw_txn_commit() or kfw_txn_abort() releases
 * it.  Process context only.
 *
 * Return: 0, or -ENOMEM (nothing held).
 */
int kfw_txn_begin(struct kfw_txn *txn)
{
	struct kfw_table *base;
	u32 i;

	memset(txn, 0, sizeof(*txn));
	txn->ids = bitmap_zalloc(KFW_RULE_ID_MAX + 1, GFP_KERNEL);
	if (!txn->ids)
		return -ENOMEM;

	mutex_lock(&kfw_table_mutex);
	base = rcu_dereference_protected(kfw_table_current,
					 lockdep_is_held(&kfw_table_mutex));
	txn->capacity = max_t(u32, base->count, KFW_TXN_MIN_CAPACITY);
	txn->rules = kvmalloc_array(txn->capacity, sizeof(*txn->rules),
				    GFP_KERNEL);
	if (!txn->rules) {
		mutex_unlock(&kfw_table_mutex);
		bitmap_free(txn->ids);
		return -ENOMEM;
	}
	for (i = 0; i < base->count; i++) {
		txn->rules[i] = base->rules[i].spec;
		__set_bit(base->rules[i].spec.id, txn->ids);
	}
	txn->count = base->count;
	txn->sorted = true;
	memcpy(txn->policy, base->policy, sizeof(txn->policy));
	txn->base = base;
	return 0;
}

static int kfw_txn_reserve(struct kfw_txn *txn, struct kfw_err *e)
{
	struct kfw_rule_spec *rules;
	u32 capacity;

	if (txn->count < txn->capacity)
		return 0;
	/* Ids are unique, so the copy never holds more than every id. */
	capacity = min_t(u32, txn->capacity * 2, KFW_RULE_ID_MAX);
	rules = kvmalloc_array(capacity, sizeof(*rules), GFP_KERNEL);
	if (!rules)
		return kfw_err_set(e, -ENOMEM, KFW_FIELD_NONE, "out of memory");
	memcpy(rules, txn->rules, txn->count * sizeof(*rules));
	kvfree(txn->rules);
	txn->rules = rules;
	txn->capacity = capacity;
	return 0;
}

/**
 * kfw_txn_add - validate a rule and add it to the transaction
 * @txn: an open transaction
 * @spec: the rule, as kfw_spec_validate() takes it
 * @e: where a failure is described
 *
 * Return: 0, -EINVAL (invalid rule), -EEXIST (id already in the table at
 * this point of the transaction) or -ENOMEM.
 */
int kfw_txn_add(struct kfw_txn *txn, const struct kfw_rule_spec *spec,
		struct kfw_err *e)
{
	struct kfw_rule_spec rule = *spec;
	int err;

	txn->commands++;
	err = kfw_spec_validate(&rule, e);
	if (err)
		return err;
	if (test_bit(rule.id, txn->ids))
		return KFW_ERR(e, EEXIST, ID, "rule already exists");
	err = kfw_txn_reserve(txn, e);
	if (err)
		return err;
	/* Appending in id order, as a restore does, keeps the copy sorted. */
	if (txn->count && txn->rules[txn->count - 1].id > rule.id)
		txn->sorted = false;
	txn->rules[txn->count++] = rule;
	__set_bit(rule.id, txn->ids);
	return 0;
}

/**
 * kfw_txn_del - delete a rule from the transaction
 * @txn: an open transaction
 * @id: the rule's id
 * @e: where a failure is described
 *
 * Return: 0, -EINVAL (id out of range) or -ENOENT (no such rule at this
 * point of the transaction).
 */
int kfw_txn_del(struct kfw_txn *txn, u32 id, struct kfw_err *e)
{
	struct kfw_rule_spec key = { .id = id };
	struct kfw_rule_spec *r;
	size_t pos;

	txn->commands++;
	if (id < KFW_RULE_ID_MIN || id > KFW_RULE_ID_MAX)
		return KFW_ERR(e, EINVAL, ID, "must be 1..65535");
	if (!test_bit(id, txn->ids))
		return KFW_ERR(e, ENOENT, ID, "no such rule");
	kfw_txn_sort(txn);
	r = bsearch(&key, txn->rules, txn->count, sizeof(*txn->rules),
		    kfw_spec_cmp_id);
	if (WARN_ON_ONCE(!r))	/* the id bitmap and the rules disagree */
		return KFW_ERR(e, ENOENT, ID, "no such rule");
	pos = r - txn->rules;
	memmove(r, r + 1, (txn->count - pos - 1) * sizeof(*r));
	txn->count--;
	__clear_bit(id, txn->ids);
	return 0;
}

/* Deletes every rule of the transaction; the policies stay. */
void kfw_txn_flush(struct kfw_txn *txn)
{
	txn->commands++;
	txn->count = 0;
	txn->sorted = true;
	bitmap_zero(txn->ids, KFW_RULE_ID_MAX + 1);
}

int kfw_txn_policy(struct kfw_txn *txn, u32 hook, u32 action,
		   struct kfw_err *e)
{
	int err;

	txn->commands++;
	err = kfw_policy_validate(hook, action, e);
	if (err)
		return err;
	txn->policy[hook] = action;
	return 0;
}

/*
 * Builds the table to publish.  A rule that keeps its id and its whole spec
 * shares its state, and so its counters, with the base table; every other
 * rule starts from zero.  Both arrays ascend by id: one merge walk.
 */
static struct kfw_table *kfw_table_build(const struct kfw_txn *txn)
{
	const struct kfw_table *base = txn->base;
	struct kfw_table *t;
	u32 i, j = 0;

	t = kfw_table_alloc(txn->count);
	if (!t)
		return NULL;
	t->generation = base->generation + 1;
	memcpy(t->policy, txn->policy, sizeof(t->policy));
	for (i = 0; i < txn->count; i++) {
		const struct kfw_rule_spec *spec = &txn->rules[i];
		struct kfw_rule *r = &t->rules[i];

		r->spec = *spec;
		while (j < base->count && base->rules[j].spec.id < spec->id)
			j++;
		if (j < base->count &&
		    kfw_spec_equal(&base->rules[j].spec, spec)) {
			r->state = base->rules[j].state;
			refcount_inc(&r->state->refcnt);
			continue;
		}
		r->state = kfw_rule_state_alloc();
		if (!r->state) {
			kfw_table_put(t);
			return NULL;
		}
	}
	return t;
}

static void kfw_txn_end(struct kfw_txn *txn)
{
	mutex_unlock(&kfw_table_mutex);
	kvfree(txn->rules);
	bitmap_free(txn->ids);
	memset(txn, 0, sizeof(*txn));
}

/**
 * kfw_txn_commit - publish the transaction's table
 * @txn: an open transaction, closed on return
 * @e: where a failure is described
 *
 * A transaction that holds at least one command becomes the new table and
 * the generation increments by one; one without commands changes nothing.
 *
 * Return: 0, -ENOSPC (more than max_rules rules) or -ENOMEM; on failure
 * nothing changed.
 */
int kfw_txn_commit(struct kfw_txn *txn, struct kfw_err *e)
{
	struct kfw_table *t;
	int err = 0;

	if (!txn->commands)
		goto out;
	if (txn->count > kfw_max_rules) {
		err = KFW_ERR(e, ENOSPC, RULES, "more than max_rules rules");
		goto out;
	}
	kfw_txn_sort(txn);
	t = kfw_table_build(txn);
	if (!t) {
		err = kfw_err_set(e, -ENOMEM, KFW_FIELD_NONE, "out of memory");
		goto out;
	}
	kfw_table_publish(t);
out:
	kfw_txn_end(txn);
	return err;
}

/* Drops the transaction; nothing changes. */
void kfw_txn_abort(struct kfw_txn *txn)
{
	kfw_txn_end(txn);
}
