package main

import (
	"context"
	"time"
)

// maxLag is how far a pacer may fall behind its schedule before it gives up
// catching up: after a longer stall (a slow TCP connect, a descheduled VM)
// it resumes at the nominal rate instead of sending a burst.
const maxLag = 100 * time.Millisecond

// clock is the time source of a pacer; tests replace it.
type clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first, and
	// returns ctx's error in the second case.
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacer spaces packets at a fixed rate on an absolute schedule, so that the
// time spent sending does not lower the rate.
type pacer struct {
	interval time.Duration // 0: no pacing
	clock    clock
	next     time.Time // when the next packet is due; zero before the first
}

// newPacer paces at rate packets per second; rate 0 means as fast as
// possible.
func newPacer(rate float64, c clock) *pacer {
	p := &pacer{clock: c}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
		if p.interval <= 0 {
			p.interval = 1 // a rate above 1e9/s: as close as the clock allows
		}
	}
	return p
}

// wait blocks until the next packet is due. It returns ctx's error when ctx
// ends first.
func (p *pacer) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.interval == 0 {
		return nil
	}
	now := p.clock.Now()
	if p.next.IsZero() || now.Sub(p.next) > maxLag {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		if err := p.clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
	p.next = p.next.Add(p.interval)
	return nil
}
