package abi

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets check, for any input, that the parsers do not panic,
// that every error they produce is a *ProcError, and that whatever they
// accept survives a round trip through the format docs/ABI.md defines.
// Run one with e.g. `go test -fuzz=FuzzParseProcRuleStats ./abi`.

func formatProcStats(st ModuleStats) string {
	return fmt.Sprintf("abi_version %d\nversion %s\ninstance %s\ngeneration %d\nrules %d\nmax_rules %d\n"+
		"events_generated %d\nevents_suppressed %d\nevents_queue_overflows %d\nevents_messages_sent %d\n"+
		"events_no_listener %d\nevents_alloc_failures %d\nevents_nobufs %d\n",
		st.ABIVersion, st.Version, FormatInstance(st.Instance), st.Generation, st.Rules, st.MaxRules,
		st.EventsGenerated, st.EventsSuppressed, st.EventsQueueOverflows, st.EventsMessagesSent,
		st.EventsNoListener, st.EventsAllocFailures, st.EventsNobufs)
}

func formatProcHooks(rows []ProcHookCounters) string {
	var b strings.Builder
	b.WriteString("family hook verdict packets bytes\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %s %s %d %d\n", FamilyName(r.Family), r.Hook, r.Verdict, r.Packets, r.Bytes)
	}
	return b.String()
}

func formatProcRuleStats(rows []ProcRuleCounters) string {
	var b strings.Builder
	b.WriteString("id action packets bytes events suppressed\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d %s %d %d %d %d\n", r.ID, r.Action, r.Packets, r.Bytes, r.Events, r.Suppressed)
	}
	return b.String()
}

func checkProcError(t *testing.T, err error) {
	t.Helper()
	var pe *ProcError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ProcError", err, err)
	}
	if pe.File == "" || pe.Line < 0 {
		t.Fatalf("error %v lacks its position", err)
	}
}

func FuzzParseProcStats(f *testing.F) {
	f.Add([]byte(procStatsExample))
	f.Add([]byte(strings.Replace(procStatsExample, "abi_version 1", "abi_version 2", 1)))
	f.Add([]byte("abi_version 1\nfuture x y\n"))
	f.Add([]byte(procStatsExample[:50]))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		st, err := ParseProcStats(bytes.NewReader(in), "stats")
		if err != nil {
			checkProcError(t, err)
			if errors.Is(err, ErrUnsupportedVersion) && st.ABIVersion == Version {
				t.Fatalf("unsupported version error for version %d", Version)
			}
			return
		}
		if st.ABIVersion != Version || st.Instance == 0 || st.Version == "" {
			t.Fatalf("accepted %+v", st)
		}
		again, err := ParseProcStats(strings.NewReader(formatProcStats(st)), "stats")
		if err != nil || again != st {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, st)
		}
	})
}

func FuzzParseProcHooks(f *testing.F) {
	f.Add([]byte(procHooksExample))
	f.Add([]byte("bytes verdict hook family packets x\n"))
	f.Add([]byte(procHooksExample[:100]))
	f.Add([]byte("family hook verdict packets bytes\nipv4 input accept 1 1\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rows, err := ParseProcHooks(bytes.NewReader(in), "hooks")
		if err != nil {
			checkProcError(t, err)
			return
		}
		if len(rows) != ProcHookRows {
			t.Fatalf("accepted %d rows", len(rows))
		}
		for i, r := range rows {
			if want := procHookRow(i); r.Family != want.Family || r.Hook != want.Hook || r.Verdict != want.Verdict {
				t.Fatalf("row %d is %+v", i, r)
			}
		}
		again, err := ParseProcHooks(strings.NewReader(formatProcHooks(rows)), "hooks")
		if err != nil || !reflect.DeepEqual(again, rows) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, rows)
		}
	})
}

func FuzzParseProcRuleStats(f *testing.F) {
	f.Add([]byte(procRuleStatsExample))
	f.Add([]byte("id action packets bytes events suppressed\n"))
	f.Add([]byte("suppressed x id action bytes events packets\n1 y 2 drop 3 4 5\n"))
	f.Add([]byte("id action packets bytes events suppressed\n65535 accept 18446744073709551615 0 0 0\n"))
	f.Add([]byte(procRuleStatsExample[:60]))
	f.Fuzz(func(t *testing.T, in []byte) {
		var rows []ProcRuleCounters
		err := ParseProcRuleStats(bytes.NewReader(in), "rule_stats", func(rc ProcRuleCounters) error {
			rows = append(rows, rc)
			return nil
		})
		if err != nil {
			checkProcError(t, err)
			return
		}
		var prev uint32
		for _, r := range rows {
			if r.ID <= prev || r.ID > RuleIDMax || (r.Action != ActionAccept && r.Action != ActionDrop) {
				t.Fatalf("accepted %+v after id %d", r, prev)
			}
			prev = r.ID
		}
		var again []ProcRuleCounters
		err = ParseProcRuleStats(strings.NewReader(formatProcRuleStats(rows)), "rule_stats", func(rc ProcRuleCounters) error {
			again = append(again, rc)
			return nil
		})
		if err != nil || !reflect.DeepEqual(again, rows) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, rows)
		}
	})
}
