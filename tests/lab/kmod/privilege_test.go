//go:build labvm

package kmod

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// The test binary doubles as the unprivileged writer: run with
// $KFW_KMOD_HELPER set, TestMain runs that helper instead of the tests.
const helperEnv = "KFW_KMOD_HELPER"

func TestMain(m *testing.M) { labtest.RunHelperOrTests(m, helperEnv, runHelper) }

const helperRule = "add id=77 action=drop\n"

// runHelper performs one write attempt and describes its outcome: "ok",
// or the failing step and its errno ("open: EACCES").
func runHelper(mode string) string {
	describe := func(step string, err error) string {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return step + ": " + unix.ErrnoName(errno)
		}
		return step + ": " + err.Error()
	}
	switch mode {
	case "write":
		// Whatever this process's credentials allow.
	case "write-inherited":
		// fd 3 was opened by the parent.
		if _, err := unix.Write(3, []byte(helperRule)); err != nil {
			return describe("write", err)
		}
		return "ok"
	case "drop-net-admin":
		// Stay root but lose CAP_NET_ADMIN. Capabilities are per thread:
		// keep this goroutine on the thread that drops it.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return describe("capget", err)
		}
		// CAP_NET_ADMIN (12) lives in the first 32-bit word.
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		data[0].Permitted &^= 1 << unix.CAP_NET_ADMIN
		data[0].Inheritable &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return describe("capset", err)
		}
	default:
		return "unknown helper mode " + mode
	}
	fd, err := unix.Open(procPath(abi.ProcRules), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return describe("open", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(helperRule)); err != nil {
		return describe("write", err)
	}
	return "ok"
}

// TestUnprivilegedWriter checks who may write rules: not a user (the file
// mode), not root without CAP_NET_ADMIN (EPERM), and the check looks at the
// credentials of whoever opened the file.
func TestUnprivilegedWriter(t *testing.T) {
	labtest.LoadModule(t)
	bin := labtest.CopyTestBinary(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	gen := generation(t)

	if got := labtest.RunHelper(t, bin, helperEnv, "write", nobody); got != "open: EACCES" {
		t.Errorf("user nobody: %s, want open: EACCES", got)
	}
	if got := labtest.RunHelper(t, bin, helperEnv, "drop-net-admin", nil); got != "write: EPERM" {
		t.Errorf("root without CAP_NET_ADMIN: %s, want write: EPERM", got)
	}
	if g := generation(t); g != gen || strings.Contains(readRules(t), "id=77") {
		t.Fatalf("an unprivileged write changed the table (generation %d -> %d)", gen, g)
	}

	// A file root opened and handed over stays writable: the capability
	// of the opener counts, as for every file_ns_capable() check.
	f, err := os.OpenFile(procPath(abi.ProcRules), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := labtest.RunHelper(t, bin, helperEnv, "write-inherited", nobody, f); got != "ok" {
		t.Errorf("user nobody writing to a file root opened: %s, want ok", got)
	}
	if g := generation(t); g != gen+1 || !strings.Contains(readRules(t), "add id=77 action=drop\n") {
		t.Fatalf("the delegated write did not commit (generation %d -> %d)", gen, g)
	}

	if got := labtest.RunHelper(t, bin, helperEnv, "write", nil); got != "write: EINVAL" {
		t.Errorf("root adding rule 77 again: %s, want write: EINVAL (it exists)", got)
	}
}
