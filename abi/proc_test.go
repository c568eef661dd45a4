package abi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The examples of docs/ABI.md.
const (
	procStatsExample = `abi_version 1
version 0.1.0
instance 5f3a9c0d12e4b7a8
generation 7
rules 4
max_rules 4096
events_generated 1200
events_suppressed 35
events_queue_overflows 0
events_messages_sent 58
events_no_listener 0
events_alloc_failures 0
events_nobufs 0
`
	procHooksExample = `family hook verdict packets bytes
ipv4 input accept 1520 126340
ipv4 input drop 12 1008
ipv4 forward accept 0 0
ipv4 forward drop 0 0
ipv4 output accept 1498 130212
ipv4 output drop 0 0
ipv6 input accept 40 4160
ipv6 input drop 0 0
ipv6 forward accept 0 0
ipv6 forward drop 0 0
ipv6 output accept 40 4160
ipv6 output drop 0 0
`
	procRuleStatsExample = `id action packets bytes events suppressed
10 accept 310 25340 0 0
20 drop 12 1008 12 0
30 drop 0 0 0 0
40 drop 3 312 3 0
`
)

var procStatsExampleWant = ModuleStats{
	ABIVersion: 1, Version: "0.1.0", Instance: 0x5f3a9c0d12e4b7a8, Generation: 7, Rules: 4,
	MaxRules: 4096, EventsGenerated: 1200, EventsSuppressed: 35, EventsMessagesSent: 58,
}

func TestParseProcStats(t *testing.T) {
	st, err := ParseProcStats(strings.NewReader(procStatsExample), "stats")
	if err != nil {
		t.Fatal(err)
	}
	if st != procStatsExampleWant {
		t.Errorf("got %+v\nwant %+v", st, procStatsExampleWant)
	}
	if got := FormatInstance(st.Instance); got != "5f3a9c0d12e4b7a8" {
		t.Errorf("FormatInstance = %q", got)
	}
	if got := FormatInstance(1); got != "0000000000000001" {
		t.Errorf("FormatInstance(1) = %q", got)
	}
}

func TestParseProcStatsSkipsUnknownNames(t *testing.T) {
	// Later releases of ABI version 1 may add lines anywhere, with values
	// of any shape; the order of the lines is not part of the contract.
	lines := strings.Split(strings.TrimSuffix(procStatsExample, "\n"), "\n")
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	in := "events_future 12\n" + strings.Join(lines, "\n") + "\nsomething_new a b c\n"
	st, err := ParseProcStats(strings.NewReader(in), "stats")
	if err != nil {
		t.Fatal(err)
	}
	if st != procStatsExampleWant {
		t.Errorf("got %+v\nwant %+v", st, procStatsExampleWant)
	}
}

// replaceLine returns s with the line starting with prefix replaced by
// repl ("" deletes it).
func replaceLine(t *testing.T, s, prefix, repl string) string {
	t.Helper()
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if repl != "" {
				repl += "\n"
			}
			lines[i] = repl
			return strings.Join(lines, "")
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return ""
}

func TestParseProcStatsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string // in the error message
	}{
		{"empty", "", "stats: empty file"},
		{"garbled line", replaceLine(t, procStatsExample, "rules ", "rules4"), `stats:5: want "name value", got "rules4"`},
		{"blank line", replaceLine(t, procStatsExample, "rules ", " "), "stats:5: want"},
		{"empty value", replaceLine(t, procStatsExample, "rules ", "rules "), "stats:5: want"},
		{"two spaces", replaceLine(t, procStatsExample, "rules ", "rules  4"), "stats:5: rules:"},
		{"non-numeric", replaceLine(t, procStatsExample, "generation ", "generation 7x"), `stats:4: generation: strconv.ParseUint: parsing "7x": invalid syntax`},
		{"negative", replaceLine(t, procStatsExample, "generation ", "generation -1"), "stats:4: generation:"},
		{"rules beyond u32", replaceLine(t, procStatsExample, "rules ", "rules 4294967296"), "stats:5: rules: strconv.ParseUint: parsing \"4294967296\": value out of range"},
		{"counter beyond u64", replaceLine(t, procStatsExample, "events_nobufs ", "events_nobufs 18446744073709551616"), "stats:13: events_nobufs:"},
		{"duplicate", procStatsExample + "rules 5\n", "stats:14: duplicate rules"},
		{"missing", replaceLine(t, procStatsExample, "events_nobufs ", ""), `stats: missing ["events_nobufs"] (truncated?)`},
		{"truncated line", strings.TrimSuffix(procStatsExample, "\n"), `stats:13: truncated: no newline after "events_nobufs 0"`},
		{"truncated file", procStatsExample[:40], "stats:3: truncated"},
		{"instance uppercase", replaceLine(t, procStatsExample, "instance ", "instance 5F3A9C0D12E4B7A8"), "stats:3: instance: want 16 lowercase hex digits"},
		{"instance short", replaceLine(t, procStatsExample, "instance ", "instance 5f3a9c0d12e4b7a"), "stats:3: instance: want 16"},
		{"instance prefixed", replaceLine(t, procStatsExample, "instance ", "instance 0x5f3a9c0d12e4b7"), "stats:3: instance: want 16"},
		{"instance zero", replaceLine(t, procStatsExample, "instance ", "instance 0000000000000000"), "stats:3: instance: instance 0 is reserved"},
		{"version with space", replaceLine(t, procStatsExample, "version ", "version 0.1 beta"), "stats:2: version: want printable ASCII"},
		{"version with control byte", replaceLine(t, procStatsExample, "version ", "version 0.1\x00"), "stats:2: version:"},
		{"long line", replaceLine(t, procStatsExample, "version ", "version "+strings.Repeat("x", 5000)), "stats:2: line longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcStats(strings.NewReader(tc.in), "stats")
			if err == nil {
				t.Fatal("no error")
			}
			var pe *ProcError
			if !errors.As(err, &pe) {
				t.Errorf("%T is not a *ProcError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if errors.Is(err, ErrUnsupportedVersion) {
				t.Errorf("error %q claims an unsupported version", err)
			}
		})
	}
}

func TestParseProcStatsUnsupportedVersion(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"next version", replaceLine(t, procStatsExample, "abi_version ", "abi_version 2"), "stats:1: unsupported ABI version 2 (this reader speaks 1)"},
		{"version 0", replaceLine(t, procStatsExample, "abi_version ", "abi_version 0"), "stats:1: unsupported ABI version 0"},
		// Another version may use another format: the version wins over
		// what this reader cannot parse, wherever abi_version is.
		{"other format", "stats v2\nabi_version 2\ninstance 12\n", "stats:2: unsupported ABI version 2"},
		{"truncated", "abi_version 3\nversion 1.0", "stats:1: unsupported ABI version 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseProcStats(strings.NewReader(tc.in), "stats")
			if !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("got %v, want ErrUnsupportedVersion", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want %q...", err, tc.want)
			}
			if st.ABIVersion == Version {
				t.Errorf("ABIVersion = %d", st.ABIVersion)
			}
		})
	}
}

func TestParseProcHooks(t *testing.T) {
	rows, err := ParseProcHooks(strings.NewReader(procHooksExample), "hooks")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != ProcHookRows {
		t.Fatalf("%d rows", len(rows))
	}
	want := []ProcHookCounters{
		{FamilyIPv4, HookInput, ActionAccept, 1520, 126340},
		{FamilyIPv4, HookInput, ActionDrop, 12, 1008},
		{FamilyIPv4, HookForward, ActionAccept, 0, 0},
		{FamilyIPv4, HookForward, ActionDrop, 0, 0},
		{FamilyIPv4, HookOutput, ActionAccept, 1498, 130212},
		{FamilyIPv4, HookOutput, ActionDrop, 0, 0},
		{FamilyIPv6, HookInput, ActionAccept, 40, 4160},
		{FamilyIPv6, HookInput, ActionDrop, 0, 0},
		{FamilyIPv6, HookForward, ActionAccept, 0, 0},
		{FamilyIPv6, HookForward, ActionDrop, 0, 0},
		{FamilyIPv6, HookOutput, ActionAccept, 40, 4160},
		{FamilyIPv6, HookOutput, ActionDrop, 0, 0},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got %+v\nwant %+v", rows, want)
	}
}

// permuteColumns rewrites a table with its columns in the order given by
// cols (header names); extra names become new columns holding "x".
func permuteColumns(t *testing.T, table string, cols ...string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	header := strings.Fields(lines[0])
	var out strings.Builder
	for _, l := range lines {
		f := strings.Fields(l)
		var row []string
		for _, c := range cols {
			v := "x"
			if l == lines[0] {
				v = c
			}
			for i, h := range header {
				if h == c {
					v = f[i]
				}
			}
			row = append(row, v)
		}
		out.WriteString(strings.Join(row, " ") + "\n")
	}
	return out.String()
}

func TestParseProcHooksColumnsByName(t *testing.T) {
	want, err := ParseProcHooks(strings.NewReader(procHooksExample), "hooks")
	if err != nil {
		t.Fatal(err)
	}
	for _, cols := range [][]string{
		{"family", "hook", "verdict", "packets", "bytes", "drops_future"},
		{"bytes", "packets", "verdict", "hook", "family"},
		{"family", "new", "hook", "verdict", "packets", "other", "bytes"},
	} {
		in := permuteColumns(t, procHooksExample, cols...)
		got, err := ParseProcHooks(strings.NewReader(in), "hooks")
		if err != nil {
			t.Fatalf("%s: %v", cols, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v", cols, got)
		}
	}
}

func TestParseProcHooksErrors(t *testing.T) {
	ex := procHooksExample
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "hooks: empty file: no header"},
		{"missing column", permuteColumns(t, ex, "family", "hook", "verdict", "packets"), `hooks:1: header: missing column "bytes"`},
		{"duplicate column", permuteColumns(t, ex, "family", "hook", "verdict", "packets", "bytes", "bytes"), `hooks:1: header: duplicate column "bytes"`},
		{"header only", "family hook verdict packets bytes\n", "hooks: 0 rows, want 12 (truncated?)"},
		{"11 rows", replaceLine(t, ex, "ipv6 output drop", ""), "hooks: 11 rows, want 12"},
		{"13 rows", ex + "ipv6 output drop 0 0\n", "hooks:14: more than 12 rows"},
		{"wrong order", replaceLine(t, ex, "ipv4 input drop", "ipv4 forward drop 0 0"), `hooks:3: want row ipv4 input drop, got "ipv4" "forward" "drop"`},
		{"unknown family", replaceLine(t, ex, "ipv4 input accept", "ipv5 input accept 1 1"), "hooks:2: want row ipv4 input accept"},
		{"non-numeric", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop 12 lots"), `hooks:3: bytes: strconv.ParseUint: parsing "lots": invalid syntax`},
		{"negative", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop -12 1008"), "hooks:3: packets:"},
		{"short row", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop 12"), "hooks:3: 4 fields, header has 5"},
		{"long row", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop 12 1 1"), "hooks:3: 6 fields, header has 5"},
		{"double space", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop  12 1008"), "hooks:3: empty field"},
		{"trailing space", replaceLine(t, ex, "ipv4 input drop", "ipv4 input drop 12 1008 "), "hooks:3: empty field"},
		{"blank line", replaceLine(t, ex, "ipv4 input drop", " "), "hooks:3: empty field"},
		{"truncated", ex[:len(ex)-3], `hooks:13: truncated: no newline after "ipv6 output drop 0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcHooks(strings.NewReader(tc.in), "hooks")
			var pe *ProcError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ProcError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func collectRuleStats(in string) ([]ProcRuleCounters, error) {
	var rows []ProcRuleCounters
	err := ParseProcRuleStats(strings.NewReader(in), "rule_stats", func(rc ProcRuleCounters) error {
		rows = append(rows, rc)
		return nil
	})
	return rows, err
}

func TestParseProcRuleStats(t *testing.T) {
	want := []ProcRuleCounters{
		{ID: 10, Action: ActionAccept, Packets: 310, Bytes: 25340},
		{ID: 20, Action: ActionDrop, Packets: 12, Bytes: 1008, Events: 12},
		{ID: 30, Action: ActionDrop},
		{ID: 40, Action: ActionDrop, Packets: 3, Bytes: 312, Events: 3},
	}
	for _, in := range []string{
		procRuleStatsExample,
		permuteColumns(t, procRuleStatsExample, "id", "action", "packets", "bytes", "events", "suppressed", "future"),
		permuteColumns(t, procRuleStatsExample, "suppressed", "events", "extra", "bytes", "packets", "action", "id"),
	} {
		rows, err := collectRuleStats(in)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rows, want) {
			t.Errorf("got %+v\nwant %+v", rows, want)
		}
	}
}

func TestParseProcRuleStatsEmptyTable(t *testing.T) {
	rows, err := collectRuleStats("id action packets bytes events suppressed\n")
	if err != nil || len(rows) != 0 {
		t.Errorf("got %v, %v; want no row, no error", rows, err)
	}
}

func TestParseProcRuleStatsCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ParseProcRuleStats(strings.NewReader(procRuleStatsExample), "rule_stats", func(ProcRuleCounters) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Errorf("got %v after %d rows, want the callback's error after 2", err, n)
	}
}

func TestParseProcRuleStatsErrors(t *testing.T) {
	ex := procRuleStatsExample
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "rule_stats: empty file: no header"},
		{"missing column", permuteColumns(t, ex, "id", "action", "packets", "bytes", "events"), `rule_stats:1: header: missing column "suppressed"`},
		{"garbled header", "id action packets bytes events suppressed  \n", "rule_stats:1: header: empty field"},
		{"id 0", replaceLine(t, ex, "10 ", "0 accept 1 1 0 0"), "rule_stats:2: id 0 outside 1..65535"},
		{"id 65536", replaceLine(t, ex, "40 ", "65536 drop 1 1 0 0"), "rule_stats:5: id 65536 outside 1..65535"},
		{"descending", replaceLine(t, ex, "30 ", "15 drop 0 0 0 0"), "rule_stats:4: id 15 after id 20: ids must ascend"},
		{"duplicate", replaceLine(t, ex, "30 ", "20 drop 0 0 0 0"), "rule_stats:4: id 20 after id 20"},
		{"bad action", replaceLine(t, ex, "30 ", "30 reject 0 0 0 0"), `rule_stats:4: action: want accept or drop, got "reject"`},
		{"non-numeric id", replaceLine(t, ex, "30 ", "3O drop 0 0 0 0"), `rule_stats:4: id: strconv.ParseUint: parsing "3O"`},
		{"non-numeric counter", replaceLine(t, ex, "30 ", "30 drop 0 0 0 1e3"), `rule_stats:4: suppressed: strconv.ParseUint: parsing "1e3"`},
		{"counter beyond u64", replaceLine(t, ex, "30 ", "30 drop 18446744073709551616 0 0 0"), "rule_stats:4: packets: strconv.ParseUint: parsing \"18446744073709551616\": value out of range"},
		{"short row", replaceLine(t, ex, "30 ", "30 drop 0 0 0"), "rule_stats:4: 5 fields, header has 6"},
		{"truncated", ex[:len(ex)-1], `rule_stats:5: truncated: no newline after "40 drop 3 312 3 0"`},
		{"truncated header", "id action pack", "rule_stats:1: truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := collectRuleStats(tc.in)
			var pe *ProcError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a *ProcError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// ruleStatsTable is a rule_stats with rule ids 1..n.
func ruleStatsTable(n int) []byte {
	var b bytes.Buffer
	b.WriteString("id action packets bytes events suppressed\n")
	for id := 1; id <= n; id++ {
		fmt.Fprintf(&b, "%d %s %d %d %d %d\n", id, Action(1+id%2), id*1000, id*150000, id, id%7)
	}
	return b.Bytes()
}

// parseAllocs counts the allocations of parsing in through a reused reader.
func parseAllocs(t *testing.T, in []byte, wantRows int) float64 {
	r := bytes.NewReader(in)
	br := bufio.NewReaderSize(r, 64<<10)
	rows := 0
	allocs := testing.AllocsPerRun(5, func() {
		r.Reset(in)
		br.Reset(r)
		rows = 0
		if err := ParseProcRuleStats(br, "rule_stats", func(ProcRuleCounters) error {
			rows++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	if rows != wantRows {
		t.Fatalf("%d rows, want %d", rows, wantRows)
	}
	return allocs
}

func TestParseProcRuleStatsAllocationsDoNotGrowWithRows(t *testing.T) {
	small := parseAllocs(t, ruleStatsTable(3), 3)
	full := parseAllocs(t, ruleStatsTable(RuleIDMax), RuleIDMax)
	if full != small {
		t.Errorf("%v allocations for %d rows, %v for 3 rows", full, RuleIDMax, small)
	}
}

func BenchmarkParseProcRuleStats65535(b *testing.B) {
	in := ruleStatsTable(RuleIDMax)
	r := bytes.NewReader(in)
	br := bufio.NewReaderSize(r, 64<<10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		if err := ParseProcRuleStats(br, "rule_stats", func(ProcRuleCounters) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseProcStats(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProcStats(strings.NewReader(procStatsExample), "stats"); err != nil {
			b.Fatal(err)
		}
	}
}
