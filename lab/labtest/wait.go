package labtest

import (
	"testing"
	"time"
)

// WaitFor calls cond every poll until it holds. cond returns whether it
// holds and a description of the state it saw. After hangLimit the test
// fails with what and the last state. hangLimit only bounds a hang (a slow
// emulated machine gets there well within it, a broken kernel never does):
// nothing is asserted about time.
func WaitFor(t testing.TB, hangLimit, poll time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(hangLimit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s; last state: %s", what, state)
		}
		time.Sleep(poll)
	}
}
