package guest

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// OnCPU runs fn on an OS thread bound to cpu, in a goroutine of its own,
// and returns its error. The thread is never unlocked: it dies with the
// goroutine rather than serve others with that affinity.
func OnCPU(cpu int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- fmt.Errorf("bind to cpu %d: %w", cpu, err)
			return
		}
		done <- fn()
	}()
	return <-done
}
