package lab

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConsoleLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	var live bytes.Buffer
	c, err := newConsoleLog(path, &live)
	if err != nil {
		t.Fatal(err)
	}
	var input strings.Builder
	for i := 0; i < tailLineCount+5; i++ {
		fmt.Fprintf(&input, "[ %d.0] line %d\r\n", i, i)
	}
	input.WriteString("\x1bc\x1b[?7l\x1b[2J\x1b[0mkfwlab: payload start, uptime 3.2 s\r\nunfinished")
	// Chunks that split lines, as serial reads do.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		data := input.String()
		for len(data) > 0 {
			n := min(7, len(data))
			w.WriteString(data[:n])
			data = data[n:]
		}
		w.Close()
	}()
	if _, ok := c.payloadStart(); ok {
		t.Error("payloadStart before the mark")
	}
	c.copyFrom(r)
	c.close()

	if got, _ := os.ReadFile(path); string(got) != input.String() {
		t.Errorf("console.log differs from the input")
	}
	if live.String() != input.String() {
		t.Errorf("the live writer got %q", live.String())
	}
	lines := c.tailLines()
	for _, l := range lines {
		if strings.ContainsRune(l, '\x1b') {
			t.Errorf("tail line %q holds a terminal escape", l)
		}
	}
	if len(lines) != tailLineCount+1 || lines[len(lines)-1] != "unfinished" ||
		lines[len(lines)-2] != "kfwlab: payload start, uptime 3.2 s" ||
		lines[0] != "[ 6.0] line 6" { // 36 complete lines, the last 30 kept
		t.Errorf("tailLines() = %q", lines)
	}
	if _, ok := c.payloadStart(); !ok {
		t.Error("payloadStart not recorded")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestTailStreamsAGrowingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdout")
	var got syncBuffer
	tl := startTail(path, &got) // the file does not exist yet
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("first\n")
	for deadline := time.Now().Add(10 * time.Second); got.String() != "first\n"; {
		if time.Now().After(deadline) {
			t.Fatalf("the tail did not stream the first line; got %q", got.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.WriteString("second\n")
	tl.stop() // copies what is left
	if want := "first\nsecond\n"; got.String() != want {
		t.Errorf("streamed %q, want %q", got.String(), want)
	}
}

func TestLastLines(t *testing.T) {
	if got, want := lastLines("a\nb\nc\n", 2), []string{"b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
	if got, want := lastLines("a", 5), []string{"a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lastLines = %q, want %q", got, want)
	}
}

func TestConsoleLogReportsWedgedOnce(t *testing.T) {
	c, err := newConsoleLog(filepath.Join(t.TempDir(), "console.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.record([]byte("[   12.0] kfw: loaded\r\n[   44.5] watchdog: BUG: soft lo"))
	select {
	case line := <-c.wedged:
		t.Fatalf("wedged %q before the report's line was complete", line)
	default:
	}
	c.record([]byte("ckup - CPU#0 stuck for 26s! [kmod.test:119]\r\n"))
	c.record([]byte("[   72.5] watchdog: BUG: soft lockup - CPU#0 stuck for 52s! [kmod.test:119]\n"))
	select {
	case line := <-c.wedged:
		if want := "[   44.5] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [kmod.test:119]"; line != want {
			t.Errorf("wedged %q, want %q", line, want)
		}
	default:
		t.Fatal("a soft lockup report did not mark the guest wedged")
	}
	select {
	case line := <-c.wedged:
		t.Errorf("wedged reported twice, again with %q", line)
	default:
	}
}
