package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// elfWithModinfo copies a binary and gives it a .modinfo section holding
// the given fields, as modpost writes them: NUL-terminated key=value.
func elfWithModinfo(t *testing.T, fields ...string) string {
	t.Helper()
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Fatalf("objcopy not installed (binutils, in build-essential): %v", err)
	}
	dir := t.TempDir()
	info := filepath.Join(dir, "modinfo")
	if err := os.WriteFile(info, []byte(strings.Join(fields, "\x00")+"\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "fake.ko")
	if b, err := exec.Command(objcopy, "--add-section", ".modinfo="+info, self, out).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, b)
	}
	return out
}

func TestModuleHasEvents(t *testing.T) {
	with := elfWithModinfo(t, "version=0.1.0", "license=GPL", genlFamilyAlias, "name=kfw")
	without := elfWithModinfo(t, "version=0.1.0", "license=GPL", "alias=net-pf-16-proto-16-family-kfwx", "name=kfw")
	if has, err := moduleHasEvents(with); err != nil || !has {
		t.Errorf("module with the family alias: %v, %v", has, err)
	}
	if has, err := moduleHasEvents(without); err != nil || has {
		t.Errorf("module without the family alias: %v, %v", has, err)
	}
	self, _ := os.Executable()
	if _, err := moduleHasEvents(self); err == nil || !strings.Contains(err.Error(), "not a kernel module") {
		t.Errorf("a binary without .modinfo: %v", err)
	}
	for mode, want := range map[string]bool{"yes": true, "no": false, "auto": true} {
		if got, err := wantEvents(mode, with); err != nil || got != want {
			t.Errorf("wantEvents(%q) = %v, %v; want %v", mode, got, err, want)
		}
	}
	if _, err := wantEvents("maybe", with); err == nil {
		t.Error("wantEvents accepted --events=maybe")
	}
}
