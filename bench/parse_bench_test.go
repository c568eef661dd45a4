package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/bench/internal/procfixture"
)

// procFile returns the content of one /proc/kfw file of a table of n rules.
func procFile(b *testing.B, n int, name string) []byte {
	b.Helper()
	root := b.TempDir()
	if err := procfixture.Write(root, n); err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, abi.ProcDir, name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkParseProcHooks parses /proc/kfw/hooks, read at every scrape.
func BenchmarkParseProcHooks(b *testing.B) {
	data := procFile(b, 0, abi.ProcHooks)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := abi.ParseProcHooks(bytes.NewReader(data), abi.ProcHooks); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseProcRuleStats parses /proc/kfw/rule_stats at the scrape
// benchmarks' sizes, reporting the cost per rule.
func BenchmarkParseProcRuleStats(b *testing.B) {
	for _, n := range scrapeSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			data := procFile(b, n, abi.ProcRuleStats)
			var rows int
			fn := func(abi.ProcRuleCounters) error { rows++; return nil }
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				rows = 0
				if err := abi.ParseProcRuleStats(bytes.NewReader(data), abi.ProcRuleStats, fn); err != nil {
					b.Fatal(err)
				}
			}
			if rows != n {
				b.Fatalf("%d rows, want %d", rows, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rule")
		})
	}
}

// ruleText is a table of n rules in the rule language, as kfwctl rules
// restore reads it: varied keys, addresses of both families.
func ruleText(n int) string {
	var t strings.Builder
	t.WriteString("flush\npolicy hook=forward action=drop\n")
	for i := 1; i <= n; i++ {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&t, "add id=%d action=accept family=ipv4 proto=tcp src=10.%d.%d.0/24 dport=%d hooks=input,forward\n",
				i, i>>8, i&0xff, 1024+i)
		case 1:
			fmt.Fprintf(&t, "add id=%d action=drop proto=udp dport=%d-%d log=1 rate=100 burst=200\n", i, 2000+i, 2100+i)
		default:
			fmt.Fprintf(&t, "add id=%d action=drop family=ipv6 proto=icmpv6 src=2001:db8:%x::/48 iif=veth%d\n", i, i, i%16)
		}
	}
	return t.String()
}

// BenchmarkParseCommands parses whole rule files, reporting the cost per
// rule.
func BenchmarkParseCommands(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			text := ruleText(n)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				cmds, err := abi.ParseCommands(text)
				if err != nil {
					b.Fatal(err)
				}
				if len(cmds) != n+2 {
					b.Fatalf("%d commands, want %d", len(cmds), n+2)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/rule")
		})
	}
}
