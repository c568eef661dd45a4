package labtest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// CopyTestBinary copies the running test binary where an unprivileged user
// can run it (the lab keeps it in a private directory), for tests whose
// binary doubles as a helper process (see RunHelper); the copy is removed
// when the test ends.
func CopyTestBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return CopyForAnyUser(t, self, "helper")
}

// CopyForAnyUser copies the program at path, as name, into a new directory
// of the guest's /tmp that every user may enter, and returns the copy's
// path; it is removed when the test ends. Tests that run a program as
// nobody need it: the checkout can be under a directory only root may
// enter (a clone under /root).
func CopyForAnyUser(t testing.TB, path, name string) string {
	t.Helper()
	// Not t.TempDir(): its parent is private to root.
	dir, err := os.MkdirTemp("", "kfw-anyuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	copyPath := filepath.Join(dir, name)
	dst, err := os.OpenFile(copyPath, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return copyPath
}

// RunHelper runs bin (a copy of the test binary, see CopyTestBinary) with
// only envVar=mode in its environment, as cred (nil: as the test, root),
// with files as its descriptors 3 and up, and returns its output, stdout
// and stderr together, trimmed. The test binary's TestMain runs the helper
// named by mode when envVar is set. The test fails unless it exits 0.
func RunHelper(t testing.TB, bin, envVar, mode string, cred *syscall.Credential, files ...*os.File) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = []string{envVar + "=" + mode}
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v: %s", mode, err, out.String())
	}
	return strings.TrimSpace(out.String())
}
