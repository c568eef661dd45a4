package labtest

import (
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingTB records a Fatalf and ends the goroutine, as testing.T does.
type recordingTB struct {
	testing.TB
	fatal string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runTB(t *testing.T, fn func(tb *recordingTB)) *recordingTB {
	rec := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(rec)
	}()
	<-done
	return rec
}

func TestWaitForReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	rec := runTB(t, func(tb *recordingTB) {
		WaitFor(tb, time.Minute, time.Millisecond, "three calls", func() (bool, string) {
			calls++
			return calls == 3, strconv.Itoa(calls)
		})
	})
	if rec.fatal != "" || calls != 3 {
		t.Errorf("fatal %q after %d calls, want none after 3", rec.fatal, calls)
	}
}

func TestWaitForFailsAfterHangLimitWithLastState(t *testing.T) {
	calls := 0
	rec := runTB(t, func(tb *recordingTB) {
		WaitFor(tb, 20*time.Millisecond, time.Millisecond, "never", func() (bool, string) {
			calls++
			return false, "state " + strconv.Itoa(calls)
		})
	})
	want := fmt.Sprintf("gave up waiting for never; last state: state %d", calls)
	if rec.fatal != want || calls < 2 {
		t.Errorf("fatal %q after %d calls, want %q", rec.fatal, calls, want)
	}
}

func TestLockedBuffer(t *testing.T) {
	var b LockedBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}

func TestFreePortIsFree(t *testing.T) {
	port := FreePort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	ln.Close()
}

func TestRepeatUntilStop(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	stop := Repeat(t, time.Millisecond, func() {
		mu.Lock()
		calls++
		mu.Unlock()
	})
	WaitFor(t, time.Minute, time.Millisecond, "three calls", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return calls >= 3, strconv.Itoa(calls)
	})
	stop()
	mu.Lock()
	after := calls
	mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	stop() // again: no effect
	mu.Lock()
	defer mu.Unlock()
	if calls != after {
		t.Errorf("%d calls after stop returned, want none", calls-after)
	}
}
