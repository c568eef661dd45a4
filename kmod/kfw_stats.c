// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: the module-wide numbers of /proc/kfw/stats.
 *
 * The event counters are per-CPU; the event pipeline counts into them (on
 * the CPU that saw the packet, or the CPU its drain work runs on, always
 * with BHs disabled) and this file sums them for readers.
 */
#include <linux/percpu.h>
#include <linux/rcupdate.h>
#include <linux/string.h>

#include "kfw.h"

struct kfw_event_stats_pcpu __percpu *kfw_event_stats;

const char *const kfw_event_stat_names[__KFW_EVSTAT_MAX] = {
	[KFW_EVSTAT_GENERATED]		= "events_generated",
	[KFW_EVSTAT_SUPPRESSED]		= "events_suppressed",
	[KFW_EVSTAT_QUEUE_OVERFLOWS]	= "events_queue_overflows",
	[KFW_EVSTAT_MESSAGES_SENT]	= "events_messages_sent",
	[KFW_EVSTAT_NO_LISTENER]	= "events_no_listener",
	[KFW_EVSTAT_ALLOC_FAILURES]	= "events_alloc_failures",
	[KFW_EVSTAT_NOBUFS]		= "events_nobufs",
};

int kfw_stats_init(void)
{
	int cpu;

	/* The netlink stats attributes follow this order (uapi/kfw.h). */
	BUILD_BUG_ON(KFW_STATS_A_EVENTS_NOBUFS - KFW_STATS_A_EVENTS_GENERATED !=
		     KFW_EVSTAT_NOBUFS - KFW_EVSTAT_GENERATED);

	kfw_event_stats = alloc_percpu(struct kfw_event_stats_pcpu);
	if (!kfw_event_stats)
		return -ENOMEM;
	for_each_possible_cpu(cpu)
		u64_stats_init(&per_cpu_ptr(kfw_event_stats, cpu)->syncp);
	return 0;
}

void kfw_stats_exit(void)
{
	free_percpu(kfw_event_stats);
}

void kfw_event_stat_add(enum kfw_event_stat stat, u64 n)
{
	struct kfw_event_stats_pcpu *p = this_cpu_ptr(kfw_event_stats);

	u64_stats_update_begin(&p->syncp);
	u64_stats_add(&p->v[stat], n);
	u64_stats_update_end(&p->syncp);
}

/* One consistent view of the table's numbers, plus the live counters. */
void kfw_stats_read(struct kfw_stats *st)
{
	const struct kfw_table *t;
	unsigned int i;
	int cpu;

	memset(st, 0, sizeof(*st));
	st->instance = kfw_instance;
	st->max_rules = kfw_max_rules;

	rcu_read_lock();
	t = kfw_table_rcu();
	st->generation = t->generation;
	st->rules = t->count;
	rcu_read_unlock();

	for_each_possible_cpu(cpu) {
		const struct kfw_event_stats_pcpu *p =
			per_cpu_ptr(kfw_event_stats, cpu);
		u64 v[__KFW_EVSTAT_MAX];
		unsigned int start;

		do {
			start = u64_stats_fetch_begin(&p->syncp);
			for (i = 0; i < __KFW_EVSTAT_MAX; i++)
				v[i] = u64_stats_read(&p->v[i]);
		} while (u64_stats_fetch_retry(&p->syncp, start));
		for (i = 0; i < __KFW_EVSTAT_MAX; i++)
			st->events[i] += v[i];
	}
}
