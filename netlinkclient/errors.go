package netlinkclient

import (
	"errors"
	"fmt"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrModuleNotLoaded means the kfw generic netlink family is not
// registered: the module is not loaded. errors.Is(err, os.ErrNotExist) is
// true for it as well.
var ErrModuleNotLoaded error = moduleNotLoadedError{}

type moduleNotLoadedError struct{}

func (moduleNotLoadedError) Error() string { return "kfw module not loaded" }

func (moduleNotLoadedError) Is(target error) bool { return target == os.ErrNotExist }

func familyNotFound(name string) error {
	return fmt.Errorf("generic netlink family %q not registered: %w", name, ErrModuleNotLoaded)
}

// CommandError is a command the kernel refused. Message is the kernel's
// extended acknowledgement (empty if it sent none), which says what was
// wrong, e.g. "dport: port range needs proto tcp or udp". It unwraps to the
// errno, so errors.Is(err, unix.EINVAL) and errors.Is(err, os.ErrPermission)
// work.
type CommandError struct {
	Family  string // generic netlink family, "kfw"
	Op      string // what was asked, e.g. "add rule 10"
	Errno   unix.Errno
	Message string
	Offset  int // offset of the offending attribute in the request, if the kernel gave one
}

func (e *CommandError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s: %s: %s", e.Family, e.Op, e.Errno.Error())
	}
	return fmt.Sprintf("%s: %s: %s (%s)", e.Family, e.Op, e.Message, e.Errno.Error())
}

func (e *CommandError) Unwrap() error { return e.Errno }

// commandError turns an error from Execute into a *CommandError when the
// kernel answered with an errno, and wraps anything else with context.
func commandError(family, op string, err error) error {
	var oe *netlink.OpError
	var errno unix.Errno
	if errors.As(err, &oe) && errors.As(oe.Err, &errno) {
		return &CommandError{Family: family, Op: op, Errno: errno, Message: oe.Message, Offset: oe.Offset}
	}
	return fmt.Errorf("%s: %s: %w", family, op, err)
}
