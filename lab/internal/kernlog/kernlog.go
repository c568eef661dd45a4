// Package kernlog recognises kernel log lines that mean a test run is broken:
// warnings, bugs, oopses, sanitizer, lockdep, RCU stall, hung task and
// kmemleak reports. The host harness scans the VM's console and dmesg with
// it; the guest helpers scan the log of a single test step.
package kernlog

import (
	"regexp"
	"strings"
)

// problemPattern matches the first line of every report the lab treats as a
// failure. Most lockdep and RCU reports start with "WARNING:" or "BUG:"; the
// explicit alternatives catch the ones printed without that banner.
var problemPattern = regexp.MustCompile(strings.Join([]string{
	`\bBUG:`,                     // BUG(), soft lockup, scheduling while atomic, KASAN/KFENCE headers
	`\bkernel BUG at\b`,          // BUG_ON()
	`\bWARNING:`,                 // WARN(), lockdep, suspicious RCU usage
	`\bOops\b`,                   // oops banner ("Oops: 0000 [#1]")
	`\bgeneral protection\b`,     // GPF
	`\bKASAN\b`,                  // KASAN report
	`\bUBSAN\b`,                  // UBSAN report
	`\bODEBUG:`,                  // debugobjects (timers, work, rcu_head misuse)
	`\bRCU stall\b`,              // wording used by some stall messages
	`\bdetected stalls? on CPUs`, // rcu: INFO: rcu_preempt detected stalls on CPUs/tasks
	`\bself-detected stall\b`,    // rcu: INFO: rcu_sched self-detected stall on CPU
	`\bpossible circular locking dependency\b`,
	`\bpossible recursive locking\b`,
	`\binconsistent lock state\b`,
	`\bsleeping function called from invalid context\b`,
	`\bKernel panic\b`,
	`\bhard LOCKUP\b`,                         // NMI watchdog
	`\bINFO: task .* blocked for more than\b`, // hung task detector
	`\bunreferenced object 0x`,                // kmemleak
}, "|"))

// wedgedPattern matches the reports after which a guest makes no more
// progress worth waiting for: a CPU stuck in the kernel, a stalled RCU
// grace period, a task blocked for minutes, a panic.
var wedgedPattern = regexp.MustCompile(strings.Join([]string{
	`\bsoft lockup\b`,
	`\bhard LOCKUP\b`,
	`\bdetected stalls? on CPUs`,
	`\bself-detected stall\b`,
	`\bINFO: task .* blocked for more than\b`,
	`\bKernel panic\b`,
}, "|"))

// Wedged reports whether a log line says the kernel is stuck (see
// wedgedPattern): every such line is also one that Problems lists.
func Wedged(line string) bool { return wedgedPattern.MatchString(line) }

// timestamp is the "[   12.345678] " prefix of console and dmesg lines.
var timestamp = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)

// maxProblems bounds a report: the first lines of a flood say what matters.
const maxProblems = 20

// Problems returns the distinct lines of the logs that report a kernel
// problem, in order of first appearance, without their timestamps. The same
// report seen in two logs (console and dmesg) is listed once.
func Problems(logs ...string) []string {
	var found []string
	seen := make(map[string]bool)
	for _, log := range logs {
		for _, line := range strings.Split(log, "\n") {
			line = strings.TrimSpace(timestamp.ReplaceAllString(strings.TrimRight(line, "\r"), ""))
			if !problemPattern.MatchString(line) || seen[line] {
				continue
			}
			seen[line] = true
			found = append(found, line)
			if len(found) == maxProblems {
				return found
			}
		}
	}
	return found
}
