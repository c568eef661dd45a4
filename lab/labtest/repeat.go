package labtest

import (
	"sync"
	"testing"
	"time"
)

// Repeat calls step again and again in a goroutine of its own, pausing
// every between two calls, until the stop function it returns is called
// or the test ends. stop waits for the call in progress to return; it may
// be called more than once.
func Repeat(t testing.TB, every time.Duration, step func()) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			step()
			select {
			case <-quit:
				return
			case <-time.After(every):
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() { close(quit) })
		<-done
	}
	t.Cleanup(stop)
	return stop
}
