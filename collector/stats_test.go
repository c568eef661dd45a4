package collector

import (
	"strings"
	"testing"
)

const statsWantProc = `# HELP kfw_up Whether the kfw module is loaded and speaks an ABI version this exporter supports (1) or not (0).
# TYPE kfw_up gauge
kfw_up 1
# HELP kfw_module_info The loaded kfw module: its version, ABI version and instance (random id of this load).
# TYPE kfw_module_info gauge
kfw_module_info{abi_version="1",module_instance="5f3a9c0d12e4b7a8",version="0.1.0"} 1
# HELP kfw_ruleset_generation Committed ruleset transactions since the module was loaded.
# TYPE kfw_ruleset_generation gauge
kfw_ruleset_generation 7
# HELP kfw_rules Rules in the table.
# TYPE kfw_rules gauge
kfw_rules 5
# HELP kfw_rules_max Capacity of the rule table (module parameter max_rules).
# TYPE kfw_rules_max gauge
kfw_rules_max 4096
# HELP kfw_kernel_events_generated_total Events that passed the rate limits and got a sequence number: each is delivered or counted as lost.
# TYPE kfw_kernel_events_generated_total counter
kfw_kernel_events_generated_total 1200
# HELP kfw_kernel_events_suppressed_total Events not generated because a rule's rate limit or the global ceiling refused them.
# TYPE kfw_kernel_events_suppressed_total counter
kfw_kernel_events_suppressed_total 35
# HELP kfw_kernel_events_queue_overflows_total Generated events dropped because their CPU's event queue was full.
# TYPE kfw_kernel_events_queue_overflows_total counter
kfw_kernel_events_queue_overflows_total 2
# HELP kfw_kernel_events_messages_sent_total Event batches (netlink messages) multicast to at least one listener.
# TYPE kfw_kernel_events_messages_sent_total counter
kfw_kernel_events_messages_sent_total 58
# HELP kfw_kernel_events_no_listener_total Event batches built but multicast to nobody because the last listener had left.
# TYPE kfw_kernel_events_no_listener_total counter
kfw_kernel_events_no_listener_total 1
# HELP kfw_kernel_events_alloc_failures_total Events lost because an event batch could not be allocated.
# TYPE kfw_kernel_events_alloc_failures_total counter
kfw_kernel_events_alloc_failures_total 0
# HELP kfw_kernel_events_nobufs_total Event multicasts for which at least one listener's receive buffer was full (ENOBUFS).
# TYPE kfw_kernel_events_nobufs_total counter
kfw_kernel_events_nobufs_total 3
`

const statsWantDown = `# HELP kfw_up Whether the kfw module is loaded and speaks an ABI version this exporter supports (1) or not (0).
# TYPE kfw_up gauge
kfw_up 0
`

func TestStatsCollector(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    string
		success int
		log     string // an excerpt of the error log line, "" when none is wanted
	}{
		{"proc", statsWantProc, 1, ""},
		// What a later release of ABI version 1 may add changes nothing.
		{"future", statsWantProc, 1, ""},
		{"empty", strings.NewReplacer(
			`module_instance="5f3a9c0d12e4b7a8"`, `module_instance="0123456789abcdef"`,
			"generation 7", "generation 0", "kfw_rules 5", "kfw_rules 0",
			"_total 1200", "_total 0", "_total 35", "_total 0", "_total 2", "_total 0",
			"_total 58", "_total 0", "_total 1\n", "_total 0\n", "_total 3", "_total 0",
		).Replace(statsWantProc), 1, ""},
		// Not loaded is what kfw_up says, not a failure.
		{"absent", statsWantDown, 1, ""},
		{"abi2", statsWantDown, 0, `abi2/kfw/stats:1: unsupported ABI version 2 (this reader speaks 1)`},
		{"garbled/stats-garbled-line", statsWantDown, 0, `stats-garbled-line/kfw/stats:5: want \"name value\", got \"rules5\"`},
		{"garbled/stats-truncated", statsWantDown, 0, `stats-truncated/kfw/stats:5: truncated: no newline after \"rul\"`},
		// Files the collector does not read do not matter.
		{"garbled/hooks-truncated", statsWantProc, 1, ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			cfg := testConfig(tc.fixture)
			if tc.fixture == "absent" {
				cfg.ProcPath = t.TempDir()
			}
			k, logs := newTestCollector(t, cfg, "stats")
			compareCollector(t, k, tc.want+successLine("stats", tc.success))
			out := logs.String()
			if tc.log == "" && strings.Contains(out, "level=ERROR") {
				t.Errorf("unexpected error log:\n%s", out)
			}
			if tc.log != "" && !strings.Contains(out, tc.log) {
				t.Errorf("log does not contain %q:\n%s", tc.log, out)
			}
		})
	}
}
