package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock advances only when the pacer sleeps, or when a test steps it.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// sendTimes runs the pacer n times and returns when each packet went out,
// relative to the start; work is how long each send takes.
func sendTimes(t *testing.T, p *pacer, c *fakeClock, n int, work func(i int) time.Duration) []time.Duration {
	t.Helper()
	var times []time.Duration
	for i := 0; i < n; i++ {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		times = append(times, c.now.Sub(epoch))
		c.now = c.now.Add(work(i))
	}
	return times
}

func TestPacerKeepsAnAbsoluteSchedule(t *testing.T) {
	c := &fakeClock{now: epoch}
	p := newPacer(4, c) // every 250 ms
	// Each send takes 100 ms: the pacer sleeps only the rest of the slot.
	got := sendTimes(t, p, c, 5, func(int) time.Duration { return 100 * time.Millisecond })
	want := []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, time.Second}
	if !equalDurations(got, want) {
		t.Errorf("send times %v, want %v", got, want)
	}
	for _, s := range c.sleeps {
		if s != 150*time.Millisecond {
			t.Errorf("sleeps %v, want 150ms each", c.sleeps)
			break
		}
	}
}

func TestPacerCatchesUpSmallLagsButNotStalls(t *testing.T) {
	c := &fakeClock{now: epoch}
	p := newPacer(100, c) // every 10 ms
	work := func(i int) time.Duration {
		switch i {
		case 1:
			return 25 * time.Millisecond // late by 15 ms: the next ones catch up
		case 5:
			return 2 * time.Second // a stall: resume from now, no burst
		}
		return 0
	}
	got := sendTimes(t, p, c, 9, work)
	ms := time.Millisecond
	want := []time.Duration{0, 10 * ms, 35 * ms, 35 * ms, 40 * ms, 50 * ms, 2050 * ms, 2060 * ms, 2070 * ms}
	if !equalDurations(got, want) {
		t.Errorf("send times %v, want %v", got, want)
	}
}

func TestPacerUnpaced(t *testing.T) {
	c := &fakeClock{now: epoch}
	p := newPacer(0, c)
	sendTimes(t, p, c, 100, func(int) time.Duration { return 0 })
	if len(c.sleeps) != 0 {
		t.Errorf("rate 0 slept %v", c.sleeps)
	}
}

func TestPacerStopsWithItsContext(t *testing.T) {
	c := &fakeClock{now: epoch}
	p := newPacer(1, c)
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait after cancel = %v, want context.Canceled", err)
	}
	if err := newPacer(0, c).wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("unpaced wait after cancel = %v, want context.Canceled", err)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
