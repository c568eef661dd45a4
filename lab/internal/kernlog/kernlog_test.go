package kernlog

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestProblemsFindsReports(t *testing.T) {
	// First lines of real reports, as printed by 6.1 kernels, and what is
	// reported for each once the timestamp is gone.
	reports := []struct{ line, want string }{
		{"[   12.345678] WARNING: CPU: 1 PID: 234 at net/netfilter/core.c:123 nf_hook_entries_grow+0x1a/0x2b0",
			"WARNING: CPU: 1 PID: 234 at net/netfilter/core.c:123 nf_hook_entries_grow+0x1a/0x2b0"},
		{"[   13.000001] BUG: kernel NULL pointer dereference, address: 0000000000000008",
			"BUG: kernel NULL pointer dereference, address: 0000000000000008"},
		{"[   13.000002] Oops: 0000 [#1] PREEMPT SMP NOPTI", "Oops: 0000 [#1] PREEMPT SMP NOPTI"},
		{"[   14.1] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP",
			"general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP"},
		{"[   15.2] BUG: KASAN: slab-use-after-free in kfw_hook+0x40/0x200 [kfw]",
			"BUG: KASAN: slab-use-after-free in kfw_hook+0x40/0x200 [kfw]"},
		{"[   16.3] UBSAN: shift-out-of-bounds in net/kfw/rules.c:42:9", "UBSAN: shift-out-of-bounds in net/kfw/rules.c:42:9"},
		{"[   17.4] WARNING: possible circular locking dependency detected", "WARNING: possible circular locking dependency detected"},
		{"[   18.5] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
			"BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580"},
		{"[   19.6] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"},
		{"[   19.7] rcu: INFO: rcu_sched self-detected stall on CPU", "rcu: INFO: rcu_sched self-detected stall on CPU"},
		{"[   20.8] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kworker/0:1:40]",
			"watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kworker/0:1:40]"},
		{"[   21.9] kernel BUG at net/core/skbuff.c:110!", "kernel BUG at net/core/skbuff.c:110!"},
		{"[   22.0] INFO: task insmod:321 blocked for more than 120 seconds.", "INFO: task insmod:321 blocked for more than 120 seconds."},
		{"[   23.1] Kernel panic - not syncing: Fatal exception in interrupt", "Kernel panic - not syncing: Fatal exception in interrupt"},
		{"unreferenced object 0xffff888003a1c000 (size 64):", "unreferenced object 0xffff888003a1c000 (size 64):"},
		{"[   24.3] WARNING: inconsistent lock state", "WARNING: inconsistent lock state"},
		{"[   24.4] inconsistent lock state", "inconsistent lock state"},
	}
	for _, r := range reports {
		if got, want := Problems(r.line), []string{r.want}; !reflect.DeepEqual(got, want) {
			t.Errorf("Problems(%q) = %q, want %q", r.line, got, want)
		}
	}
}

func TestProblemsIgnoresCleanBoot(t *testing.T) {
	// Lines seen on clean lab boots of Debian's 6.1 kernels under TCG.
	clean := `[    0.803649] mtrr: your CPUs had inconsistent fixed MTRR settings
[    0.924910] acpi PNP0A03:00: fail to add MMCONFIG information, can't access extended PCI configuration space under this bridge.
[    0.619187] APIC calibration not consistent with PM-Timer: 98ms instead of 100ms
[    1.674590] Unstable clock detected, switching default tracing clock to "global"
[    2.000000] kfw: loading out-of-tree module taints kernel.
[    2.000001] kfw: module verification failed: signature and/or required key missing - tainting kernel
[    3.277507] reboot: Restarting system`
	if got := Problems(clean); len(got) != 0 {
		t.Errorf("Problems(clean boot) = %q, want none", got)
	}
}

func TestProblemsDeduplicatesAcrossLogs(t *testing.T) {
	console := "[    5.1] BUG: lab self-test\r\n[    5.2] other\r\n"
	dmesg := "[    5.100000] BUG: lab self-test\n[    6.0] WARNING: CPU: 0 PID: 1 at x\n"
	want := []string{"BUG: lab self-test", "WARNING: CPU: 0 PID: 1 at x"}
	if got := Problems(console, dmesg); !reflect.DeepEqual(got, want) {
		t.Errorf("Problems = %q, want %q", got, want)
	}
}

func TestProblemsIsBounded(t *testing.T) {
	var log strings.Builder
	for pid := 0; pid < 3*maxProblems; pid++ {
		fmt.Fprintf(&log, "WARNING: CPU: 0 PID: %d at x\n", pid)
	}
	if got := len(Problems(log.String())); got != maxProblems {
		t.Errorf("len(Problems) = %d, want %d", got, maxProblems)
	}
}

func TestWedged(t *testing.T) {
	wedged := []string{
		"[   44.585537] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kmod.test:119]",
		"[  100.1] watchdog: Watchdog detected hard LOCKUP on cpu 1",
		"[   60.2] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
		"[   60.2] rcu: INFO: rcu_sched self-detected stall on CPU",
		"[  243.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
		"[    9.9] Kernel panic - not syncing: Fatal exception in interrupt",
	}
	for _, line := range wedged {
		if !Wedged(line) {
			t.Errorf("Wedged(%q) = false, want true", line)
		}
		if len(Problems(line)) != 1 {
			t.Errorf("Problems does not list %q: the harness would stop a VM for a line it does not fail on", line)
		}
	}
	for _, line := range []string{
		"[    3.0] WARNING: CPU: 1 PID: 7 at kernel/foo.c:12 bar+0x1/0x2",
		"[    3.0] BUG: KASAN: slab-use-after-free in kfw_rule_put+0x12/0x40 [kfw]",
		"[    2.9] kfw: loading out-of-tree module taints kernel.",
		"[    0.1] rcu: Hierarchical RCU implementation.",
	} {
		if Wedged(line) {
			t.Errorf("Wedged(%q) = true: the guest goes on after it", line)
		}
	}
}
