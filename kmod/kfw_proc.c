// SPDX-License-Identifier: GPL-2.0
/*
 * kfw: /proc/kfw/{rules,stats,hooks,rule_stats} (docs/ABI.md).
 *
 * rules and rule_stats walk one table: a read from offset 0 pins the table
 * current at that moment, and the read() calls that continue from where it
 * stopped walk the same table, however many it takes.  Reading from 0 again
 * (after lseek) pins the table then current.  The pin is dropped at close,
 * or by proc_remove() at unload.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "kfw.h"

static struct proc_dir_entry *kfw_proc_dir;

/* Position 0 is the header, position n > 0 is rules[n - 1]. */
static void *kfw_table_seq_start(struct seq_file *m, loff_t *pos)
{
	struct kfw_table *t = m->private;

	if (!t || *pos == 0) {
		if (t)
			kfw_table_put(t);
		t = kfw_table_get();
		m->private = t;
	}
	if (*pos == 0)
		return SEQ_START_TOKEN;
	if (*pos > t->count)
		return NULL;
	return &t->rules[*pos - 1];
}

static void *kfw_table_seq_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return kfw_table_seq_start(m, pos);
}

static void kfw_table_seq_stop(struct seq_file *m, void *v)
{
}

static int kfw_rules_seq_show(struct seq_file *m, void *v)
{
	const struct kfw_table *t = m->private;
	const struct kfw_rule *r = v;
	enum kfw_hook hook;

	if (v == SEQ_START_TOKEN) {
		seq_puts(m, "flush\n");
		for (hook = 0; hook < KFW_HOOK_COUNT; hook++)
			kfw_print_policy(m, hook, t->policy[hook]);
		return 0;
	}
	kfw_print_rule(m, &r->spec);
	return 0;
}

static int kfw_rule_stats_seq_show(struct seq_file *m, void *v)
{
	const struct kfw_rule *r = v;
	struct kfw_rule_counters c;

	if (v == SEQ_START_TOKEN) {
		seq_puts(m, "id action packets bytes events suppressed\n");
		return 0;
	}
	kfw_rule_counters_read(r, &c);
	seq_printf(m, "%u %s %llu %llu %llu %llu\n", r->spec.id,
		   kfw_action_name(r->spec.action), c.packets, c.bytes,
		   c.events, c.suppressed);
	return 0;
}

static const struct seq_operations kfw_rules_seq_ops = {
	.start = kfw_table_seq_start,
	.next = kfw_table_seq_next,
	.stop = kfw_table_seq_stop,
	.show = kfw_rules_seq_show,
};

static const struct seq_operations kfw_rule_stats_seq_ops = {
	.start = kfw_table_seq_start,
	.next = kfw_table_seq_next,
	.stop = kfw_table_seq_stop,
	.show = kfw_rule_stats_seq_show,
};

static int kfw_table_seq_release(struct inode *inode, struct file *file)
{
	struct seq_file *m = file->private_data;

	if (m->private)
		kfw_table_put(m->private);
	return seq_release(inode, file);
}

static int kfw_rules_open(struct inode *inode, struct file *file)
{
	return seq_open(file, &kfw_rules_seq_ops);
}

static int kfw_rule_stats_open(struct inode *inode, struct file *file)
{
	return seq_open(file, &kfw_rule_stats_seq_ops);
}

static void kfw_rules_log(const struct kfw_text_error *te)
{
	if (!te->line)
		pr_info_ratelimited("rules: %s\n", te->err.msg);
	else if (te->word)
		pr_info_ratelimited("rules: line %u: %s '%.32s'\n", te->line,
				    te->err.msg, te->word);
	else
		pr_info_ratelimited("rules: line %u: %s\n", te->line,
				    te->err.msg);
}

/*
 * One write is one transaction.  Every rejection is EINVAL (docs/ABI.md);
 * only a failure to allocate is reported as itself.
 */
static ssize_t kfw_rules_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	struct kfw_text_error te;
	char *buf;
	int err;

	/* The opener's credentials, not the writer's (xt_recent does too). */
	if (!file_ns_capable(file, &init_user_ns, CAP_NET_ADMIN))
		return -EPERM;
	if (count > KFW_PROC_WRITE_MAX) {
		pr_info_ratelimited("rules: write: larger than %u bytes\n",
				    KFW_PROC_WRITE_MAX);
		return -EINVAL;
	}
	buf = memdup_user_nul(ubuf, count);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	err = kfw_text_apply(buf, count, &te);
	if (err && err != -ENOMEM)
		kfw_rules_log(&te);
	kfree(buf);
	if (err)
		return err == -ENOMEM ? err : -EINVAL;
	return count;
}

static const struct proc_ops kfw_rules_proc_ops = {
	.proc_open = kfw_rules_open,
	.proc_read_iter = seq_read_iter,
	.proc_lseek = seq_lseek,
	.proc_write = kfw_rules_write,
	.proc_release = kfw_table_seq_release,
};

static const struct proc_ops kfw_rule_stats_proc_ops = {
	.proc_open = kfw_rule_stats_open,
	.proc_read_iter = seq_read_iter,
	.proc_lseek = seq_lseek,
	.proc_release = kfw_table_seq_release,
};

static int kfw_stats_show(struct seq_file *m, void *unused)
{
	struct kfw_stats st;
	unsigned int i;

	kfw_stats_read(&st);
	seq_printf(m, "abi_version %u\n", KFW_ABI_VERSION);
	seq_printf(m, "version %s\n", KFW_VERSION);
	seq_printf(m, "instance %016llx\n", st.instance);
	seq_printf(m, "generation %llu\n", st.generation);
	seq_printf(m, "rules %u\n", st.rules);
	seq_printf(m, "max_rules %u\n", st.max_rules);
	for (i = 0; i < __KFW_EVSTAT_MAX; i++)
		seq_printf(m, "%s %llu\n", kfw_event_stat_names[i],
			   st.events[i]);
	return 0;
}

static int kfw_hooks_show(struct seq_file *m, void *unused)
{
	static const u8 families[] = { KFW_FAMILY_IPV4, KFW_FAMILY_IPV6 };
	static const u8 verdicts[] = { KFW_ACTION_ACCEPT, KFW_ACTION_DROP };
	struct kfw_hook_counters c;
	enum kfw_hook hook;
	unsigned int f, v;

	seq_puts(m, "family hook verdict packets bytes\n");
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (hook = 0; hook < KFW_HOOK_COUNT; hook++) {
			for (v = 0; v < ARRAY_SIZE(verdicts); v++) {
				kfw_hook_counters_read(families[f], hook,
						       verdicts[v], &c);
				seq_printf(m, "%s %s %s %llu %llu\n",
					   families[f] == KFW_FAMILY_IPV4 ?
					   "ipv4" : "ipv6",
					   kfw_hook_name(hook),
					   kfw_action_name(verdicts[v]),
					   c.packets, c.bytes);
			}
		}
	}
	return 0;
}

int kfw_proc_init(void)
{
	kfw_proc_dir = proc_mkdir("kfw", NULL);
	if (!kfw_proc_dir)
		return -ENOMEM;
	if (!proc_create("rules", 0644, kfw_proc_dir, &kfw_rules_proc_ops) ||
	    !proc_create_single("stats", 0444, kfw_proc_dir, kfw_stats_show) ||
	    !proc_create_single("hooks", 0444, kfw_proc_dir, kfw_hooks_show) ||
	    !proc_create("rule_stats", 0444, kfw_proc_dir,
			 &kfw_rule_stats_proc_ops)) {
		proc_remove(kfw_proc_dir);
		return -ENOMEM;
	}
	return 0;
}

/* Waits for running file operations and closes open files' seq_files. */
void kfw_proc_exit(void)
{
	proc_remove(kfw_proc_dir);
}
