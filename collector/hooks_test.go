package collector

import (
	"strings"
	"testing"
)

const hooksWantProc = `# HELP kfw_packets_total Packets kfw saw at a hook, by the verdict it gave (a rule's or the default policy's).
# TYPE kfw_packets_total counter
kfw_packets_total{family="ipv4",hook="forward",verdict="accept"} 300
kfw_packets_total{family="ipv4",hook="forward",verdict="drop"} 4
kfw_packets_total{family="ipv4",hook="input",verdict="accept"} 1520
kfw_packets_total{family="ipv4",hook="input",verdict="drop"} 12
kfw_packets_total{family="ipv4",hook="output",verdict="accept"} 1498
kfw_packets_total{family="ipv4",hook="output",verdict="drop"} 0
kfw_packets_total{family="ipv6",hook="forward",verdict="accept"} 0
kfw_packets_total{family="ipv6",hook="forward",verdict="drop"} 0
kfw_packets_total{family="ipv6",hook="input",verdict="accept"} 40
kfw_packets_total{family="ipv6",hook="input",verdict="drop"} 3
kfw_packets_total{family="ipv6",hook="output",verdict="accept"} 40
kfw_packets_total{family="ipv6",hook="output",verdict="drop"} 0
# HELP kfw_bytes_total Bytes (IP packet length, header included) kfw saw at a hook, by verdict.
# TYPE kfw_bytes_total counter
kfw_bytes_total{family="ipv4",hook="forward",verdict="accept"} 24000
kfw_bytes_total{family="ipv4",hook="forward",verdict="drop"} 320
kfw_bytes_total{family="ipv4",hook="input",verdict="accept"} 126340
kfw_bytes_total{family="ipv4",hook="input",verdict="drop"} 1008
kfw_bytes_total{family="ipv4",hook="output",verdict="accept"} 130212
kfw_bytes_total{family="ipv4",hook="output",verdict="drop"} 0
kfw_bytes_total{family="ipv6",hook="forward",verdict="accept"} 0
kfw_bytes_total{family="ipv6",hook="forward",verdict="drop"} 0
kfw_bytes_total{family="ipv6",hook="input",verdict="accept"} 4160
kfw_bytes_total{family="ipv6",hook="input",verdict="drop"} 312
kfw_bytes_total{family="ipv6",hook="output",verdict="accept"} 4160
kfw_bytes_total{family="ipv6",hook="output",verdict="drop"} 0
`

// zeroCounters sets every sample of an exposition to 0.
func zeroCounters(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines[i] = l[:strings.LastIndexByte(l, ' ')] + " 0\n"
		}
	}
	return strings.Join(lines, "")
}

func TestHooksCollector(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    string
		success int
		log     string // an excerpt of the error log line, "" when none is wanted
	}{
		{"proc", hooksWantProc, 1, ""},
		{"future", hooksWantProc, 1, ""},
		{"empty", zeroCounters(hooksWantProc), 1, ""},
		// Nothing to read: no data, logged at debug level only.
		{"absent", "", 0, ""},
		{"abi2", "", 0, "abi2/kfw/stats:1: unsupported ABI version 2"},
		{"garbled/hooks-truncated", "", 0, `hooks-truncated/kfw/hooks: 7 rows, want 12 (truncated?)`},
		{"garbled/hooks-missing-column", "", 0, `hooks-missing-column/kfw/hooks:1: header: missing column \"bytes\"`},
		// Without a readable stats file the ABI version is unknown.
		{"garbled/stats-garbled-line", "", 0, `stats-garbled-line/kfw/stats:5: want`},
		{"garbled/rule_stats-truncated", hooksWantProc, 1, ""},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			cfg := testConfig(tc.fixture)
			if tc.fixture == "absent" {
				cfg.ProcPath = t.TempDir()
			}
			k, logs := newTestCollector(t, cfg, "hooks")
			compareCollector(t, k, tc.want+successLine("hooks", tc.success))
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
