package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestDKMS runs make dkms-install for the generic lab kernel into a DESTDIR
// (DKMS in DESTDIR's own trees, as the Makefile does for staged installs),
// loads the module it built and installed in a lab VM with modprobe, runs
// it again over the first install, and make uninstall. The system's DKMS
// tree and module index must not change. Skips with -short: it builds the
// module and boots a VM.
func TestDKMS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kfw.ko with DKMS and boots a lab VM: not with -short")
	}
	for _, tool := range []string{"dkms", "depmod", "modinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (scripts/deps.sh installs dkms and kmod): %v", tool, err)
		}
	}
	repo := repoRoot(t)
	k, err := lab.FindKernel(repo, lab.Generic)
	if err != nil {
		t.Fatal(err)
	}
	version := dkmsVersion(t)
	// Under build/, where the lab VM sees it.
	if err := os.MkdirAll(filepath.Join(repo, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	dest, err := os.MkdirTemp(filepath.Join(repo, "build"), "dkms-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if !t.Failed() {
			os.RemoveAll(dest)
		}
	}()
	system := systemDKMSState(t, k.Release)
	args := []string{"DESTDIR=" + dest, "DKMS_KERNEL=" + k.Release}

	makeIn(t, repo, append([]string{"dkms-install"}, args...)...)
	src := filepath.Join("usr/src", "kfw-"+version)
	installed := filepath.Join(dest, "lib/modules", k.Release, "updates/dkms/kfw.ko")
	files := tree(t, dest)
	for _, want := range []string{
		filepath.Join(src, "dkms.conf"), filepath.Join(src, "Kbuild"), filepath.Join(src, "Makefile"),
		filepath.Join(src, "uapi/kfw.h"), filepath.Join(src, "kfw_main.c"),
		filepath.Join("var/lib/dkms/kfw", version, k.Release, "x86_64/module/kfw.ko"),
		filepath.Join("lib/modules", k.Release, "updates/dkms/kfw.ko"),
	} {
		if _, ok := files[want]; !ok {
			t.Errorf("after make dkms-install: no %s", want)
		}
	}
	for f := range files {
		if strings.HasPrefix(f, src+"/") && (strings.HasSuffix(f, ".o") || strings.HasSuffix(f, ".ko") || strings.Contains(f, ".mod")) {
			t.Errorf("build product copied into the DKMS sources: %s", f)
		}
	}
	for field, want := range map[string]string{"vermagic": k.Release + " ", "version": version} {
		out, err := exec.Command("modinfo", "-F", field, installed).Output()
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("modinfo -F %s %s = %q, %v; want %q...", field, installed, out, err, want)
		}
	}
	status := dkmsStatus(t, dest)
	if want := fmt.Sprintf("kfw/%s, %s, x86_64: installed", version, k.Release); !strings.Contains(status, want) {
		t.Errorf("dkms status: %q, want %q", status, want)
	}

	// The module DKMS installed loads with modprobe (what kfw-rules.service
	// and modules-load.d do), once indexed in DESTDIR's tree only.
	if out, err := exec.Command("depmod", "-b", dest, k.Release).CombinedOutput(); err != nil {
		t.Fatalf("depmod -b %s: %v\n%s", dest, err, out)
	}
	loadInVM(t, dest)

	// Again, over the first install, then away.
	makeIn(t, repo, append([]string{"dkms-install"}, args...)...)
	makeIn(t, repo, append([]string{"uninstall"}, args...)...)
	if status := dkmsStatus(t, dest); status != "" {
		t.Errorf("dkms status after make uninstall: %q", status)
	}
	var left []string
	for f := range tree(t, dest) {
		// DKMS's signing key stays: on a host it is enrolled for Secure Boot.
		// The index files are depmod's, from this test.
		if !strings.HasPrefix(f, "var/lib/dkms/mok.") && !strings.HasPrefix(f, filepath.Join("lib/modules", k.Release, "modules.")) {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("left after make uninstall: %v", left)
	}
	if after := systemDKMSState(t, k.Release); after != system {
		t.Errorf("the system's DKMS state changed:\nbefore %s\nafter  %s", system, after)
	}
}

// dkmsStatus is dkms status in DESTDIR's trees.
func dkmsStatus(t *testing.T, dest string) string {
	t.Helper()
	out, err := exec.Command("dkms", "status", "-m", "kfw", "--sourcetree", filepath.Join(dest, "usr/src"),
		"--dkmstree", filepath.Join(dest, "var/lib/dkms"), "--installtree", filepath.Join(dest, "lib/modules")).CombinedOutput()
	if err != nil {
		t.Fatalf("dkms status: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// systemDKMSState summarises what a DESTDIR install must not touch: the
// system's DKMS tree and the kernel's module index.
func systemDKMSState(t *testing.T, release string) string {
	t.Helper()
	var names []string
	entries, _ := os.ReadDir("/var/lib/dkms")
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	var mtime time.Time
	if fi, err := os.Stat(filepath.Join("/lib/modules", release, "modules.dep")); err == nil {
		mtime = fi.ModTime()
	}
	return fmt.Sprintf("/var/lib/dkms: %v; modules.dep: %v", names, mtime)
}

// loadInVM boots the generic lab kernel and loads kfw with modprobe from
// the DESTDIR module tree.
func loadInVM(t *testing.T, dest string) {
	t.Helper()
	vm, err := lab.Start(context.Background(), lab.Config{
		Command: []string{"sh", "-c", `modprobe -d "$1" kfw && grep -qx 'abi_version 1' /proc/kfw/stats && rmmod kfw`, "sh", dest},
		Timeout: 5 * time.Minute,
		Name:    "dkms-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := vm.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("modprobe of the DKMS module in the VM: %v\nstdout: %s\nstderr: %s", err, res.Stdout, res.Stderr)
	}
	os.RemoveAll(res.LogDir)
}
