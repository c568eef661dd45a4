// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: a packet filter with stable rule ids, counters, a /proc interface and
 * a generic netlink family with drop and hit events.
 *
 * Init builds everything before what uses it: the workqueue, counters, the
 * table and the event queues, then /proc, then the netlink family (its
 * commands use the table, its "events" group is fed by the queues), and
 * the hooks last.  Exit is the reverse, with one step of its own:
 *
 *   1. unhook everywhere: no packet reaches kfw, no event is queued;
 *   2. stop the event works: nothing multicasts on the family any more;
 *   3. unregister the family: no command runs (a dump holds the module);
 *   4. remove /proc: no file operation runs, open files are released;
 *   5. free the queues and the table, then wait for RCU callbacks and the
 *      table releases they queue, then free the counters and the workqueue.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/workqueue.h>

#include "kfw.h"

unsigned int kfw_max_rules = KFW_MAX_RULES_DEFAULT;
module_param_named(max_rules, kfw_max_rules, uint, 0444);
MODULE_PARM_DESC(max_rules, "Rule table capacity, 1..65535 (default 4096)");

u64 kfw_instance;
struct workqueue_struct *kfw_wq;

static int __init kfw_init(void)
{
	int err;

	if (kfw_max_rules < 1 || kfw_max_rules > KFW_RULE_ID_MAX) {
		pr_err("max_rules=%u: must be 1..%u\n", kfw_max_rules,
		       KFW_RULE_ID_MAX);
		return -EINVAL;
	}
	/* docs/ABI.md: a random, non-zero id per load. */
	do {
		kfw_instance = get_random_u64();
	} while (!kfw_instance);

	kfw_wq = alloc_workqueue("kfw", 0, 0);
	if (!kfw_wq)
		return -ENOMEM;
	err = kfw_stats_init();
	if (err)
		goto err_wq;
	err = kfw_hooks_init();
	if (err)
		goto err_stats;
	err = kfw_table_init();
	if (err)
		goto err_hooks;
	err = kfw_events_init();
	if (err)
		goto err_table;
	err = kfw_proc_init();
	if (err)
		goto err_events;
	err = kfw_genl_init();
	if (err)
		goto err_proc;
	err = kfw_hooks_register();
	if (err)
		goto err_genl;

	pr_info("version %s loaded, instance %016llx, max_rules %u\n",
		KFW_VERSION, kfw_instance, kfw_max_rules);
	return 0;

err_genl:
	/* a listener may have joined: events could have been queued */
	kfw_events_stop();
	kfw_genl_exit();
err_proc:
	kfw_proc_exit();
err_events:
	kfw_events_exit();
err_table:
	kfw_table_exit();
	rcu_barrier();
err_hooks:
	kfw_hooks_exit();
err_stats:
	kfw_stats_exit();
err_wq:
	destroy_workqueue(kfw_wq);
	return err;
}

static void __exit kfw_exit(void)
{
	/* No hook runs anywhere after this (the core synchronizes RCU). */
	kfw_hooks_unregister();
	/* No event work runs, none is queued: nothing uses the family. */
	kfw_events_stop();
	/* No command runs and listeners are out of the group. */
	kfw_genl_exit();
	/* No file operation runs and every open file is released. */
	kfw_proc_exit();
	kfw_events_exit();
	kfw_table_exit();
	/* Tables replaced earlier wait in RCU, then in the workqueue. */
	rcu_barrier();
	kfw_hooks_exit();
	kfw_stats_exit();
	destroy_workqueue(kfw_wq);
	pr_info("unloaded, instance %016llx\n", kfw_instance);
}

module_init(kfw_init);
module_exit(kfw_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kfw developers");
MODULE_DESCRIPTION("kfw: packet filter with stable rule ids and counters");
MODULE_VERSION(KFW_VERSION);
