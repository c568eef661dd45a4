package abi

// Streaming parsers for the read-only files under /proc/kfw (docs/ABI.md,
// "/proc/kfw"). They read one line at a time from a bufio.Reader, slice the
// fields out of the line without copying and convert numbers with strconv,
// so a 65535-row rule_stats costs no allocation per row.
//
// They accept exactly what ABI version 1 lets a later release add (stats
// names they do not know, table columns they do not know) and reject
// everything else with a *ProcError naming the file and the line.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// ErrUnsupportedVersion is wrapped by the error ParseProcStats returns when
// abi_version is not Version: the reader must refuse the module.
var ErrUnsupportedVersion = errors.New("unsupported ABI version")

// ProcError is a /proc/kfw file that does not follow docs/ABI.md.
type ProcError struct {
	File string // the name given to the parser
	Line int    // 1-based; 0 when the file as a whole is at fault
	Err  error
}

func (e *ProcError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ProcError) Unwrap() error { return e.Err }

// ModuleStats is /proc/kfw/stats: the module's identity and event counters.
type ModuleStats struct {
	ABIVersion           uint32
	Version              string
	Instance             uint64 // never 0
	Generation           uint64
	Rules                uint32
	MaxRules             uint32
	EventsGenerated      uint64
	EventsSuppressed     uint64
	EventsQueueOverflows uint64
	EventsMessagesSent   uint64
	EventsNoListener     uint64
	EventsAllocFailures  uint64
	EventsNobufs         uint64
}

// FormatInstance returns a module instance as /proc/kfw/stats prints it:
// 16 lowercase hexadecimal digits.
func FormatInstance(instance uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = digits[instance&0xf]
		instance >>= 4
	}
	return string(b[:])
}

// procStatsNames lists the stats lines ABI version 1 requires, in the order
// the module prints them; a line's bit in procStatsSeen is its index here.
var procStatsNames = [...]string{
	"abi_version", "version", "instance", "generation", "rules", "max_rules",
	"events_generated", "events_suppressed", "events_queue_overflows",
	"events_messages_sent", "events_no_listener", "events_alloc_failures",
	"events_nobufs",
}

// ParseProcStats reads /proc/kfw/stats from r; name is used in errors.
// An abi_version other than Version gives an error wrapping
// ErrUnsupportedVersion, even when the rest of the file does not parse:
// another version may have another format.
func ParseProcStats(r io.Reader, name string) (ModuleStats, error) {
	var (
		st         ModuleStats
		seen       uint32
		firstErr   error
		abiLine    int
		lr         = newProcLineReader(r, name)
		allRequire = uint32(1)<<len(procStatsNames) - 1
	)
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		idx, err := st.set(line)
		switch {
		case err != nil:
			if firstErr == nil {
				firstErr = lr.errorf("%w", err)
			}
		case idx < 0:
			// A name this version does not know: skipped.
		case seen&(1<<idx) != 0:
			if firstErr == nil {
				firstErr = lr.errorf("duplicate %s", procStatsNames[idx])
			}
		default:
			seen |= 1 << idx
			if idx == 0 {
				abiLine = lr.line
			}
		}
	}
	if seen&1 != 0 && st.ABIVersion != Version {
		return st, &ProcError{File: name, Line: abiLine, Err: fmt.Errorf(
			"%w %d (this reader speaks %d)", ErrUnsupportedVersion, st.ABIVersion, Version)}
	}
	if firstErr != nil {
		return st, firstErr
	}
	if lr.line == 0 {
		return st, &ProcError{File: name, Err: errors.New("empty file")}
	}
	if missing := allRequire &^ seen; missing != 0 {
		var names []string
		for i, n := range procStatsNames {
			if missing&(1<<i) != 0 {
				names = append(names, n)
			}
		}
		return st, &ProcError{File: name, Err: fmt.Errorf("missing %q (truncated?)", names)}
	}
	return st, nil
}

// set stores one "name value" line. It returns the index of the name in
// procStatsNames, or -1 for a name it does not know.
func (st *ModuleStats) set(line []byte) (int, error) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp == len(line)-1 {
		return -1, fmt.Errorf("want \"name value\", got %s", procQuote(line))
	}
	key, val := line[:sp], line[sp+1:]
	var err error
	idx := -1
	// switch on string(key) does not allocate.
	switch string(key) {
	case "abi_version":
		idx = 0
		var v uint64
		v, err = strconv.ParseUint(string(val), 10, 32)
		st.ABIVersion = uint32(v)
	case "version":
		idx = 1
		st.Version, err = procParseVersion(val)
	case "instance":
		idx = 2
		st.Instance, err = procParseInstance(val)
	case "generation":
		idx = 3
		st.Generation, err = strconv.ParseUint(string(val), 10, 64)
	case "rules":
		idx = 4
		var v uint64
		v, err = strconv.ParseUint(string(val), 10, 32)
		st.Rules = uint32(v)
	case "max_rules":
		idx = 5
		var v uint64
		v, err = strconv.ParseUint(string(val), 10, 32)
		st.MaxRules = uint32(v)
	case "events_generated":
		idx = 6
		st.EventsGenerated, err = strconv.ParseUint(string(val), 10, 64)
	case "events_suppressed":
		idx = 7
		st.EventsSuppressed, err = strconv.ParseUint(string(val), 10, 64)
	case "events_queue_overflows":
		idx = 8
		st.EventsQueueOverflows, err = strconv.ParseUint(string(val), 10, 64)
	case "events_messages_sent":
		idx = 9
		st.EventsMessagesSent, err = strconv.ParseUint(string(val), 10, 64)
	case "events_no_listener":
		idx = 10
		st.EventsNoListener, err = strconv.ParseUint(string(val), 10, 64)
	case "events_alloc_failures":
		idx = 11
		st.EventsAllocFailures, err = strconv.ParseUint(string(val), 10, 64)
	case "events_nobufs":
		idx = 12
		st.EventsNobufs, err = strconv.ParseUint(string(val), 10, 64)
	}
	if err != nil {
		return idx, fmt.Errorf("%s: %w", key, err)
	}
	return idx, nil
}

// procParseVersion accepts a non-empty run of printable ASCII without spaces.
func procParseVersion(b []byte) (string, error) {
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return "", fmt.Errorf("want printable ASCII without spaces, got %s", procQuote(b))
		}
	}
	return string(b), nil
}

// procParseInstance accepts exactly 16 lowercase hexadecimal digits, not all zero.
func procParseInstance(b []byte) (uint64, error) {
	if len(b) != 16 {
		return 0, fmt.Errorf("want 16 lowercase hex digits, got %s", procQuote(b))
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, fmt.Errorf("want 16 lowercase hex digits, got %s", procQuote(b))
		}
	}
	if v == 0 {
		return 0, errors.New("instance 0 is reserved")
	}
	return v, nil
}

// ProcHookCounters is one row of /proc/kfw/hooks.
type ProcHookCounters struct {
	Family  uint8 // FamilyIPv4 or FamilyIPv6
	Hook    Hook
	Verdict Action // ActionAccept or ActionDrop
	Packets uint64
	Bytes   uint64
}

// ProcHookRows is the number of rows of /proc/kfw/hooks: family × hook × verdict.
const ProcHookRows = 2 * HookCount * 2

var procHookColumns = []string{"family", "hook", "verdict", "packets", "bytes"}

// ParseProcHooks reads /proc/kfw/hooks from r; name is used in errors. The
// rows come back in the file's fixed order: ipv4 before ipv6, hooks in table
// order, accept before drop.
func ParseProcHooks(r io.Reader, name string) ([]ProcHookCounters, error) {
	lr := newProcLineReader(r, name)
	tbl, err := lr.header(procHookColumns)
	if err != nil {
		return nil, err
	}
	rows := make([]ProcHookCounters, 0, ProcHookRows)
	for {
		line, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rows) == ProcHookRows {
			return nil, lr.errorf("more than %d rows", ProcHookRows)
		}
		want := procHookRow(len(rows))
		if err := tbl.split(line); err != nil {
			return nil, lr.errorf("%w", err)
		}
		f := tbl.col(0)
		h := tbl.col(1)
		v := tbl.col(2)
		if string(f) != FamilyName(want.Family) || string(h) != want.Hook.String() ||
			string(v) != want.Verdict.String() {
			return nil, lr.errorf("want row %s %s %s, got %s %s %s",
				FamilyName(want.Family), want.Hook, want.Verdict, procQuote(f), procQuote(h), procQuote(v))
		}
		if want.Packets, err = tbl.number(3); err != nil {
			return nil, lr.errorf("%w", err)
		}
		if want.Bytes, err = tbl.number(4); err != nil {
			return nil, lr.errorf("%w", err)
		}
		rows = append(rows, want)
	}
	if len(rows) != ProcHookRows {
		return nil, &ProcError{File: name, Err: fmt.Errorf("%d rows, want %d (truncated?)", len(rows), ProcHookRows)}
	}
	return rows, nil
}

// procHookRow returns the identity of row i of /proc/kfw/hooks.
func procHookRow(i int) ProcHookCounters {
	fam := uint8(FamilyIPv4)
	if i >= HookCount*2 {
		fam = FamilyIPv6
	}
	return ProcHookCounters{
		Family:  fam,
		Hook:    Hook(i / 2 % HookCount),
		Verdict: ActionAccept + Action(i%2),
	}
}

// ProcRuleCounters is one row of /proc/kfw/rule_stats.
type ProcRuleCounters struct {
	ID         uint32
	Action     Action
	Packets    uint64
	Bytes      uint64
	Events     uint64
	Suppressed uint64
}

var procRuleStatsColumns = []string{"id", "action", "packets", "bytes", "events", "suppressed"}

// ParseProcRuleStats reads /proc/kfw/rule_stats from r and calls fn for
// every row, in the file's ascending id order; name is used in errors. An
// error from fn stops the parse and is returned as is.
func ParseProcRuleStats(r io.Reader, name string, fn func(ProcRuleCounters) error) error {
	lr := newProcLineReader(r, name)
	tbl, err := lr.header(procRuleStatsColumns)
	if err != nil {
		return err
	}
	var prev uint32
	for {
		line, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tbl.split(line); err != nil {
			return lr.errorf("%w", err)
		}
		var rc ProcRuleCounters
		id, err := tbl.number(0)
		if err != nil {
			return lr.errorf("%w", err)
		}
		if id < RuleIDMin || id > RuleIDMax {
			return lr.errorf("id %d outside %d..%d", id, RuleIDMin, RuleIDMax)
		}
		if uint32(id) <= prev {
			return lr.errorf("id %d after id %d: ids must ascend", id, prev)
		}
		rc.ID, prev = uint32(id), uint32(id)
		a := tbl.col(1)
		var ok bool
		if rc.Action, ok = ParseAction(string(a)); !ok {
			return lr.errorf("action: want accept or drop, got %s", procQuote(a))
		}
		for i, dst := range [...]*uint64{&rc.Packets, &rc.Bytes, &rc.Events, &rc.Suppressed} {
			if *dst, err = tbl.number(2 + i); err != nil {
				return lr.errorf("%w", err)
			}
		}
		if err := fn(rc); err != nil {
			return err
		}
	}
}

// procLineReader hands out the lines of a /proc/kfw file and counts them.
type procLineReader struct {
	r    *bufio.Reader
	name string
	line int
}

// procMaxLine bounds a line: every line of these files is far shorter.
const procMaxLine = 4096

func newProcLineReader(r io.Reader, name string) *procLineReader {
	// Returns r itself when it already is a big enough *bufio.Reader, so
	// callers can reuse their buffers.
	return &procLineReader{r: bufio.NewReaderSize(r, procMaxLine), name: name}
}

// next returns the next line without its '\n' (valid until the next call),
// or io.EOF after the last complete line. A last line without '\n' means
// the file was cut short.
func (lr *procLineReader) next() ([]byte, error) {
	b, err := lr.r.ReadSlice('\n')
	switch {
	case err == nil:
		lr.line++
		return b[:len(b)-1], nil
	case err == io.EOF && len(b) == 0:
		return nil, io.EOF
	case err == io.EOF:
		lr.line++
		return nil, lr.errorf("truncated: no newline after %s", procQuote(b))
	case errors.Is(err, bufio.ErrBufferFull):
		lr.line++
		return nil, lr.errorf("line longer than %d bytes", lr.r.Size())
	}
	return nil, lr.errorf("read: %w", err)
}

func (lr *procLineReader) errorf(format string, args ...any) error {
	return &ProcError{File: lr.name, Line: lr.line, Err: fmt.Errorf(format, args...)}
}

// procTable locates the columns a reader needs in a table's header and then
// slices each row into fields, reusing its buffers from row to row.
type procTable struct {
	ncols  int      // columns in the header
	index  []int    // required column i is field index[i]
	fields [][]byte // fields of the current row
	want   []string // required column names
}

// header reads the header line and finds each wanted column by name.
func (lr *procLineReader) header(want []string) (*procTable, error) {
	line, err := lr.next()
	if err == io.EOF {
		return nil, &ProcError{File: lr.name, Err: errors.New("empty file: no header")}
	}
	if err != nil {
		return nil, err
	}
	t := &procTable{want: want, index: make([]int, len(want))}
	// names points into the reader's buffer, which the next line
	// overwrites: only positions are kept.
	var names [][]byte
	if err := t.splitInto(&names, line); err != nil {
		return nil, lr.errorf("header: %w", err)
	}
	t.ncols = len(names)
	for i, n := range names {
		for _, m := range names[:i] {
			if bytes.Equal(n, m) {
				return nil, lr.errorf("header: duplicate column %s", procQuote(n))
			}
		}
	}
	for i, w := range want {
		t.index[i] = -1
		for j, n := range names {
			if string(n) == w {
				t.index[i] = j
				break
			}
		}
		if t.index[i] < 0 {
			return nil, lr.errorf("header: missing column %q", w)
		}
	}
	return t, nil
}

// split slices a row into t.fields; it must have as many fields as the header.
func (t *procTable) split(line []byte) error {
	if err := t.splitInto(&t.fields, line); err != nil {
		return err
	}
	if len(t.fields) != t.ncols {
		return fmt.Errorf("%d fields, header has %d", len(t.fields), t.ncols)
	}
	return nil
}

// splitInto splits line at single spaces; an empty field is an error.
func (t *procTable) splitInto(dst *[][]byte, line []byte) error {
	f := (*dst)[:0]
	for {
		sp := bytes.IndexByte(line, ' ')
		if sp < 0 {
			sp = len(line)
		}
		if sp == 0 {
			return errors.New("empty field (fields are separated by one space)")
		}
		f = append(f, line[:sp])
		if sp == len(line) {
			break
		}
		line = line[sp+1:]
	}
	*dst = f
	return nil
}

// col returns required column i of the current row.
func (t *procTable) col(i int) []byte { return t.fields[t.index[i]] }

// number parses required column i of the current row as unsigned decimal.
func (t *procTable) number(i int) (uint64, error) {
	v, err := strconv.ParseUint(string(t.col(i)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", t.want[i], err)
	}
	return v, nil
}

// procQuote quotes at most the first 64 bytes of b for an error message.
func procQuote(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "..."
	}
	return strconv.Quote(string(b))
}
