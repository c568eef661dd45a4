package lab

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSyncSources(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	writeFile(t, filepath.Join(src, "Makefile"), "all:\n")
	writeFile(t, filepath.Join(src, "kfw.c"), "int x;\n")
	writeFile(t, filepath.Join(src, "uapi", "kfw.h"), "#define X 1\n")
	writeFile(t, filepath.Join(src, "kfw.o"), "object built in the source tree")
	writeFile(t, filepath.Join(src, ".kfw.o.cmd"), "cmd")
	if err := os.Chtimes(filepath.Join(src, "kfw.c"), old, old); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dst, "removed.c"), "a source src no longer has")
	writeFile(t, filepath.Join(dst, "gone", "x.h"), "")
	writeFile(t, filepath.Join(dst, "kfw.ko"), "module built in dst")
	writeFile(t, filepath.Join(dst, "modules.order"), "kfw.ko")

	if err := syncSources(src, dst); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"Makefile":      "all:\n",
		"kfw.c":         "int x;\n",
		"uapi/kfw.h":    "#define X 1\n",
		"kfw.ko":        "module built in dst", // artifacts stay
		"modules.order": "kfw.ko",
	} {
		if got, err := os.ReadFile(filepath.Join(dst, path)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"kfw.o", ".kfw.o.cmd", "removed.c", "gone"} {
		if _, err := os.Stat(filepath.Join(dst, path)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it absent", path, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "kfw.c")); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("kfw.c copy: %v, want the source's mtime %v", err, old)
	}

	// An unchanged file keeps its copy's mtime, so make has nothing to do.
	newer := old.Add(time.Minute)
	if err := os.Chtimes(filepath.Join(dst, "kfw.c"), newer, newer); err != nil {
		t.Fatal(err)
	}
	if err := syncSources(src, dst); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "kfw.c")); !fi.ModTime().Equal(newer) {
		t.Errorf("an unchanged source was copied again")
	}
}

// TestBuildModuleTree builds a throwaway module against the generic
// kernel's build tree: a clean one, then one with a W=1 warning.
func TestBuildModuleTree(t *testing.T) {
	k, err := FindKernel(t.TempDir(), Generic)
	if err != nil {
		t.Skipf("no generic kernel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(k.BuildDir, "Makefile")); err != nil {
		t.Skipf("no build tree for %s (linux-headers): %v", k.Release, err)
	}
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "build")
	writeFile(t, filepath.Join(src, "Makefile"), `KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
obj-m := hello.o
all:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules
`)
	hello := `#include <linux/module.h>
static int __init hello_init(void) { return 0; }
static void __exit hello_exit(void) { }
module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
`
	writeFile(t, filepath.Join(src, "hello.c"), hello)
	if err := buildModuleTree(context.Background(), k, src, dst, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "hello.ko")); err != nil {
		t.Fatal(err)
	}

	// W=1 adds -Wmissing-prototypes: a non-static function without one warns.
	writeFile(t, filepath.Join(src, "hello.c"), hello+"int hello_unused(void) { return 1; }\n")
	err = buildModuleTree(context.Background(), k, src, dst, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "hello_unused") {
		t.Errorf("building a module with a W=1 warning: %v, want the warning", err)
	}
}
