package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCpioWriterIsReadableByCpio checks the archive format against GNU cpio.
func TestCpioWriterIsReadableByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	var w cpioWriter
	w.dir("bin")
	w.file("bin/tool", 0o755, []byte("#!/bin/sh\necho 1\n"))
	w.file("odd", 0o644, []byte("12345")) // lengths that need padding
	w.file("empty", 0o600, nil)
	w.charDev("console", 5, 1)
	archive := w.close()
	if len(archive)%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", len(archive))
	}

	list := exec.Command("cpio", "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(archive)
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []struct{ mode, name string }{
		{"drwxr-xr-x", "bin"}, {"-rwxr-xr-x", "bin/tool"}, {"-rw-r--r--", "odd"},
		{"-rw-------", "empty"}, {"crw-------", "console"},
	}
	if len(lines) != len(want) {
		t.Fatalf("cpio -tv listed:\n%s\nwant %d entries", out, len(want))
	}
	for i, w := range want {
		f := strings.Fields(lines[i])
		if f[0] != w.mode || f[len(f)-1] != w.name {
			t.Errorf("entry %d: %q, want mode %s name %s", i, lines[i], w.mode, w.name)
		}
	}

	dir := t.TempDir()
	extract := exec.Command("cpio", "-i", "-d", "--quiet", "bin/tool", "odd", "empty")
	extract.Dir = dir
	extract.Stdin = bytes.NewReader(archive)
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for name, content := range map[string]string{"bin/tool": "#!/bin/sh\necho 1\n", "odd": "12345", "empty": ""} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != content {
			t.Errorf("extracted %s = %q, %v; want %q", name, got, err, content)
		}
	}
}

func TestModuleLoadOrder(t *testing.T) {
	// name -> file ("" = built in) and dependencies, as modinfo reports them.
	mods := map[string]struct {
		file string
		deps []string
	}{
		"9p":           {"9p.ko", []string{"9pnet", "fscache", "netfs"}},
		"9pnet":        {"9pnet.ko", nil},
		"fscache":      {"fscache.ko", []string{"netfs"}},
		"netfs":        {"netfs.ko", nil},
		"9pnet_virtio": {"9pnet_virtio.ko", []string{"virtio", "9pnet", "virtio_ring"}},
		"virtio":       {"virtio.ko", nil},
		"virtio_ring":  {"", nil},
		"virtio_net":   {"virtio_net.ko", []string{"virtio_ring", "virtio", "net_failover"}},
		"net_failover": {"net_failover.ko", []string{"failover"}},
		"failover":     {"failover.ko", nil},
	}
	find := func(name string) (string, []string, error) {
		m, ok := mods[name]
		if !ok {
			t.Fatalf("unexpected lookup of %s", name)
		}
		return m.file, m.deps, nil
	}
	got, err := moduleLoadOrder(find, []string{"9pnet_virtio", "9p"}, []string{"virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"virtio.ko", "9pnet.ko", "9pnet_virtio.ko", "netfs.ko", "fscache.ko", "9p.ko"},
		{"failover.ko", "net_failover.ko", "virtio_net.ko"}, // virtio is loaded already
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("moduleLoadOrder = %q, want %q", got, want)
	}

	mods["netfs"] = struct {
		file string
		deps []string
	}{"netfs.ko", []string{"9p"}}
	if _, err := moduleLoadOrder(find, []string{"9p"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("moduleLoadOrder with a cycle: %v, want a cycle error", err)
	}
}

// TestInitramfsForGeneric builds the initramfs of the host's generic kernel.
func TestInitramfsForGeneric(t *testing.T) {
	k, err := FindKernel(t.TempDir(), Generic)
	if err != nil {
		t.Skipf("no generic kernel on this host: %v", err)
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	repo := t.TempDir()
	path, err := Initramfs(repo, k)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Initramfs(repo, k)
	if err != nil || again != path {
		t.Errorf("second Initramfs = %s, %v; want the cached %s", again, err, path)
	}
	dir := t.TempDir()
	extract := exec.Command("cpio", "-i", "-d", "--quiet", "init", "modules/*")
	extract.Dir = dir
	archive, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	extract.Stdin = archive
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	order, err := os.ReadFile(filepath.Join(dir, "modules", "boot.order"))
	if err != nil {
		t.Fatal(err)
	}
	mods := strings.Fields(string(order))
	pos := func(name string) int {
		for i, m := range mods {
			if m == name+".ko" {
				return i
			}
		}
		return -1
	}
	for _, dep := range [][2]string{{"9pnet", "9p"}, {"9pnet", "9pnet_virtio"}, {"virtio", "virtio_pci"}} {
		// Built-in modules are absent; loadable ones come after their dependencies.
		if a, b := pos(dep[0]), pos(dep[1]); b >= 0 && a > b {
			t.Errorf("boot.order %q loads %s before its dependency %s", mods, dep[1], dep[0])
		}
	}
	for _, m := range mods {
		if _, err := os.Stat(filepath.Join(dir, "modules", m)); err != nil {
			t.Errorf("boot.order names %s: %v", m, err)
		}
	}
	if init, err := os.ReadFile(filepath.Join(dir, "init")); err != nil || !bytes.Equal(init, guestInit) {
		t.Errorf("the archive's /init is not init.sh (%v)", err)
	}
}
