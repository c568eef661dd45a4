package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where ip netns keeps its named network namespaces.
const netnsDir = "/run/netns"

// netnsPath turns an ip netns name into its path; a path (anything with a
// slash, such as /proc/PID/ns/net) is used as it is.
func netnsPath(ns string) string {
	if strings.Contains(ns, "/") {
		return ns
	}
	return filepath.Join(netnsDir, ns)
}

// inNetNS runs fn on the calling goroutine, locked to its OS thread, inside
// the network namespace ns; "" runs fn where it is. Sockets that fn opens
// belong to ns for their whole life, whichever goroutine uses them later;
// goroutines that fn starts do not run in ns. If the thread cannot return
// to its own namespace it stays locked, so the runtime retires it with the
// goroutine rather than let other goroutines run in ns.
func inNetNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	path := netnsPath(ns)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("netns %s: %w", ns, &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(target)

	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: opening the current namespace: %w", ns, err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns %s: setns: %w", ns, err)
	}
	defer func() {
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}
