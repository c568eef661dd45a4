package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// AddNetNS creates the named network namespace with ip netns add (so that
// ip netns exec works on it) and brings its loopback up.
func AddNetNS(name string) error {
	if _, err := Run("ip", "netns", "add", name); err != nil {
		return err
	}
	if _, err := Run("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		return errors.Join(err, DeleteNetNS(name))
	}
	return nil
}

// DeleteNetNS deletes the named network namespace; its interfaces go with
// it.
func DeleteNetNS(name string) error {
	_, err := Run("ip", "netns", "delete", name)
	return err
}

// InNetNS runs fn on the calling goroutine inside a network namespace: a
// name made by AddNetNS, or a path such as /proc/PID/ns/net. Sockets that
// fn opens stay in that namespace; goroutines that fn starts do not run in
// it. If the goroutine's thread cannot return to its namespace, the thread
// stays locked and dies with the goroutine rather than serve others.
func InNetNS(ns string, fn func() error) error {
	path := ns
	if !strings.Contains(ns, "/") {
		path = filepath.Join(netnsDir, ns)
	}
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

// Sysctl sets a sysctl such as "net.ipv4.ip_forward" in the network
// namespace ns ("" for the current one).
func Sysctl(ns, key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	write := func() error { return os.WriteFile(path, []byte(value), 0) }
	var err error
	if ns == "" {
		err = write()
	} else {
		err = InNetNS(ns, write)
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%s in netns %q: %w", key, value, ns, err)
	}
	return nil
}
