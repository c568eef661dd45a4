package lab

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// guestInit is the initramfs's /init: it mounts the host root and the run
// directory over 9p, runs the payload in a chroot and powers off.
//
//go:embed init.sh
var guestInit []byte

// Modules the guest init loads, dependencies first, to reach the 9p shares
// and, when networking is on, the virtio NIC. Built-in ones are skipped.
var (
	bootModules = []string{"virtio_pci", "9pnet_virtio", "9p"}
	netModules  = []string{"virtio_net"}
)

// Initramfs returns the path of the lab initramfs for k, building it under
// build/lab/initramfs when its content changed. The file is named after the
// hash of its content, so concurrent builders and stale caches are harmless.
func Initramfs(repo string, k Kernel) (string, error) {
	archive, err := initramfs(k)
	if err != nil {
		return "", fmt.Errorf("initramfs for %s: %w", k.Release, err)
	}
	sum := sha256.Sum256(archive)
	dir := filepath.Join(labDir(repo), "initramfs")
	path := filepath.Join(dir, k.Release+"-"+hex.EncodeToString(sum[:6])+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := writeFileAtomic(path, archive); err != nil {
		return "", fmt.Errorf("initramfs for %s: %w", k.Release, err)
	}
	return path, nil
}

// initramfs builds the archive: busybox, /init and the kernel's virtio and
// 9p modules with their load order.
func initramfs(k Kernel) ([]byte, error) {
	busybox, err := staticBusybox()
	if err != nil {
		return nil, err
	}
	var a cpioWriter
	for _, dir := range []string{"bin", "dev", "proc", "sys", "newroot", "modules"} {
		a.dir(dir)
	}
	a.charDev("dev/console", 5, 1)
	a.file("init", 0o755, guestInit)
	a.file("bin/busybox", 0o755, busybox)
	find := func(name string) (string, []string, error) { return modinfo(k, name) }
	groups, err := moduleLoadOrder(find, bootModules, netModules)
	if err != nil {
		return nil, err
	}
	for i, list := range []string{"boot.order", "net.order"} {
		var order strings.Builder
		for _, p := range groups[i] {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			base := filepath.Base(p)
			if !strings.HasSuffix(base, ".ko") {
				return nil, fmt.Errorf("%s: compressed modules are not supported", p)
			}
			a.file("modules/"+base, 0o644, data)
			order.WriteString(base + "\n")
		}
		a.file("modules/"+list, 0o644, []byte(order.String()))
	}
	return a.close(), nil
}

// staticBusybox returns the host's busybox binary, which must be statically
// linked: the initramfs holds no shared libraries.
func staticBusybox() ([]byte, error) {
	path, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox not found (apt-get install busybox-static): %w", err)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked (apt-get install busybox-static)", path)
		}
	}
	return os.ReadFile(path)
}

// modinfo locates a module of k: its file ("" when built in) and the modules
// it depends on.
func modinfo(k Kernel, name string) (path string, deps []string, err error) {
	query := func(args ...string) (string, error) {
		args = append([]string{"-b", k.ModuleRoot, "-k", k.Release}, args...)
		out, err := exec.Command("modinfo", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("modinfo %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return strings.TrimSpace(string(out)), nil
	}
	file, err := query("-n", name)
	if err != nil {
		return "", nil, err
	}
	if file == "(builtin)" {
		return "", nil, nil
	}
	depends, err := query("-F", "depends", name)
	if err != nil {
		return "", nil, err
	}
	if depends != "" {
		deps = strings.Split(depends, ",")
	}
	return file, deps, nil
}

// moduleLoadOrder returns, for each group of module names, the files of
// those modules and of everything they depend on, each after its
// dependencies; a module appears only in the first group that needs it.
// find reports a module's file ("" when built in) and direct dependencies.
func moduleLoadOrder(find func(string) (string, []string, error), groups ...[]string) ([][]string, error) {
	const visiting, done = 1, 2
	state := make(map[string]int)
	var order []string
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case visiting:
			return fmt.Errorf("module dependency cycle through %s", name)
		case done:
			return nil
		}
		state[name] = visiting
		path, deps, err := find(name)
		if err != nil {
			return err
		}
		for _, dep := range deps {
			if err := visit(dep); err != nil {
				return err
			}
		}
		if path != "" {
			order = append(order, path)
		}
		state[name] = done
		return nil
	}
	result := make([][]string, len(groups))
	for i, names := range groups {
		order = nil
		for _, name := range names {
			if err := visit(name); err != nil {
				return nil, err
			}
		}
		result[i] = order
	}
	return result, nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp.Name()))
	}
	return nil
}

// cpioWriter builds an archive in the "newc" format the kernel unpacks
// into its initial root file system. Entries carry root ownership and a zero
// mtime so that the archive depends on its content only.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (w *cpioWriter) dir(name string) { w.entry(name, 0o040755, 0, 0, nil) }

func (w *cpioWriter) file(name string, perm int, data []byte) {
	w.entry(name, 0o100000|perm, 0, 0, data)
}

func (w *cpioWriter) charDev(name string, major, minor int) {
	w.entry(name, 0o020600, major, minor, nil)
}

func (w *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor int, data []byte) {
	w.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

// pad aligns the archive to 4 bytes, as newc requires after names and data.
func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

// close appends the trailer and returns the archive.
func (w *cpioWriter) close() []byte {
	w.entry("TRAILER!!!", 0, 0, 0, nil)
	return w.buf.Bytes()
}
