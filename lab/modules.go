package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// BuildModule builds kfw.ko for kernel k: it copies the sources of kmod/
// into build/kmod/<release>/ and runs kmod's Makefile there against k's
// build tree with W=1. Make's output goes to out. It returns the module's
// path; compiler or modpost warnings fail the build.
func BuildModule(ctx context.Context, repo string, k Kernel, out io.Writer) (string, error) {
	src := filepath.Join(repo, "kmod")
	if _, err := os.Stat(filepath.Join(src, "Makefile")); err != nil {
		return "", fmt.Errorf("building kfw.ko: no kmod/Makefile: %w", err)
	}
	dst := ModuleBuildDir(repo, k.Release)
	unlock, err := lockFile(dst + ".lock")
	if err != nil {
		return "", fmt.Errorf("building kfw.ko for %s: %w", k.Release, err)
	}
	defer unlock()
	if err := buildModuleTree(ctx, k, src, dst, out); err != nil {
		return "", fmt.Errorf("building kfw.ko for %s: %w", k.Release, err)
	}
	ko := ModulePath(repo, k.Release)
	if _, err := os.Stat(ko); err != nil {
		return "", fmt.Errorf("building kfw.ko for %s: make succeeded but %w", k.Release, err)
	}
	return ko, nil
}

// lockFile takes an exclusive lock on path, waiting for other holders:
// two builds in one directory would delete each other's files.
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// warningLine matches compiler, kbuild and modpost warnings.
var warningLine = regexp.MustCompile(`(?i)\bwarning:`)

// buildModuleTree syncs the module sources of src into dst and runs make in
// dst with KVER and KDIR naming k, and W=1.
func buildModuleTree(ctx context.Context, k Kernel, src, dst string, out io.Writer) error {
	if _, err := os.Stat(filepath.Join(k.BuildDir, "Makefile")); err != nil {
		return fmt.Errorf("no kernel build tree (install linux-headers-%s): %w", k.Release, err)
	}
	if err := syncSources(src, dst); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, "make", "-C", dst, "KVER="+k.Release, "KDIR="+k.BuildDir, "W=1")
	cmd.Stdout = io.MultiWriter(out, &log)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make -C %s: %w", dst, err)
	}
	var warnings []string
	for _, line := range strings.Split(log.String(), "\n") {
		if warningLine.MatchString(line) {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) > 0 {
		return fmt.Errorf("the build has warnings (W=1 must be clean):\n%s", strings.Join(warnings, "\n"))
	}
	return nil
}

// buildArtifact matches the files kbuild writes next to module sources;
// they are neither copied into nor deleted from a build copy.
var buildArtifact = regexp.MustCompile(`(\.(o|ko|a|mod|mod\.c|cmd|d|order|symvers|dwo)|^\.cache\.mk|^\.tmp_.*)$`)

// syncSources makes the sources under dst equal to those under src, keeping
// each file's modification time so that make rebuilds only what changed.
// Build artifacts in dst are left alone.
func syncSources(src, dst string) error {
	want := make(map[string]bool)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if buildArtifact.MatchString(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		want[rel] = true
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyIfChanged(path, target)
		}
		return nil // symlinks and special files are not module sources
	})
	if err != nil {
		return err
	}
	// Delete sources that src no longer has, deepest first.
	var stale []string
	err = filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, path)
		if rel != "." && !want[rel] && !buildArtifact.MatchString(d.Name()) {
			stale = append(stale, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(stale) - 1; i >= 0; i-- {
		if err := os.RemoveAll(stale[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// copyIfChanged copies src to dst unless dst already has the same content,
// and gives dst the modification time of src.
func copyIfChanged(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.WriteFile(dst, data, fi.Mode().Perm()); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}
