package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	ordered := []string{
		"5.10.0-30-amd64",
		"6.1.0-9-amd64",
		"6.1.0-10-amd64",
		"6.1.0-57-amd64",
		"6.10.0-1-amd64",
		"6.12.38+deb13-amd64",
		"6.12.41+deb13-amd64",
	}
	for i := range ordered {
		for j := range ordered {
			if got, want := versionLess(ordered[i], ordered[j]), i < j; got != want {
				t.Errorf("versionLess(%q, %q) = %v, want %v", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestIsFlavour(t *testing.T) {
	for _, c := range []struct {
		release, flavour string
		want             bool
	}{
		{"6.1.0-57-amd64", "amd64", true},
		{"6.12.38+deb13-amd64", "amd64", true},
		{"6.1.0-57-rt-amd64", "amd64", false},
		{"6.1.0-57-cloud-amd64", "amd64", false},
		{"6.1.0-57-rt-amd64", "rt-amd64", true},
		{"6.12.38+deb13-rt-amd64", "rt-amd64", true},
		{"6.1.0-57-amd64", "rt-amd64", false},
		{"-amd64", "amd64", false},
		{"6.1.0-57-arm64", "amd64", false},
	} {
		if got := isFlavour(c.release, c.flavour); got != c.want {
			t.Errorf("isFlavour(%q, %q) = %v, want %v", c.release, c.flavour, got, c.want)
		}
	}
}

// fakeDebian makes a /boot and a /lib/modules under a temporary root: an
// image for each release, and modules only for those in withModules.
func fakeDebian(t *testing.T, images []string, withModules []string) (boot, root string) {
	t.Helper()
	root = t.TempDir()
	boot = filepath.Join(root, "boot")
	for _, r := range images {
		writeFile(t, filepath.Join(boot, "vmlinuz-"+r), "kernel")
	}
	for _, r := range withModules {
		if err := os.MkdirAll(filepath.Join(root, "lib", "modules", r), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return boot, root
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDebianKernelPicksNewestOfTheFlavour(t *testing.T) {
	boot, root := fakeDebian(t,
		[]string{"6.1.0-9-amd64", "6.1.0-57-amd64", "6.1.0-60-amd64", "6.1.0-57-rt-amd64",
			"6.1.0-9-rt-amd64", "6.1.0-99-cloud-amd64"},
		[]string{"6.1.0-9-amd64", "6.1.0-57-amd64", "6.1.0-57-rt-amd64", "6.1.0-9-rt-amd64", "6.1.0-99-cloud-amd64"})
	for _, c := range []struct{ flavour, name, release string }{
		// 6.1.0-60 has no modules and the cloud flavour is not generic.
		{"amd64", Generic, "6.1.0-57-amd64"},
		{"rt-amd64", RT, "6.1.0-57-rt-amd64"},
	} {
		k, err := debianKernel(boot, root, c.flavour)
		if err != nil {
			t.Fatal(err)
		}
		want := Kernel{
			Name:       c.name,
			Release:    c.release,
			Image:      filepath.Join(boot, "vmlinuz-"+c.release),
			BuildDir:   filepath.Join(root, "lib", "modules", c.release, "build"),
			ModuleRoot: root,
		}
		if k.Name != want.Name || k.Release != want.Release || k.Image != want.Image ||
			k.BuildDir != want.BuildDir || k.ModuleRoot != want.ModuleRoot || k.Kmemleak || len(k.Args) > 0 {
			t.Errorf("debianKernel(%s) = %+v, want %+v", c.flavour, k, want)
		}
		if got := k.ModulesDir(); got != filepath.Join(root, "lib", "modules", c.release) {
			t.Errorf("ModulesDir() = %s", got)
		}
	}
}

func TestDebianKernelMissing(t *testing.T) {
	boot, root := fakeDebian(t, []string{"6.1.0-57-amd64"}, nil)
	_, err := debianKernel(boot, root, "rt-amd64")
	if err == nil || !strings.Contains(err.Error(), "install linux-image-rt-amd64") {
		t.Errorf("debianKernel without an rt image: %v, want an error saying what to install", err)
	}
	if _, err := debianKernel(boot, root, "amd64"); err == nil {
		t.Error("debianKernel found a kernel without modules")
	}
}

func TestFindKernelUnknown(t *testing.T) {
	if _, err := FindKernel(t.TempDir(), "vanilla"); err == nil || !strings.Contains(err.Error(), "generic, rt, debug") {
		t.Errorf("FindKernel(vanilla) = %v, want an error listing the known kernels", err)
	}
}

func TestDebugKernelFromScript(t *testing.T) {
	repo := t.TempDir()
	cache := filepath.Join(repo, "cache")
	release := "6.1.192-kfwdebug"
	writeFile(t, filepath.Join(cache, "release"), release+"\n")
	writeFile(t, filepath.Join(cache, "vmlinuz"), "kernel")
	writeFile(t, filepath.Join(cache, "build", "Makefile"), "")
	writeFile(t, filepath.Join(cache, "modules", "lib", "modules", release, "modules.builtin"), "")
	script := filepath.Join(repo, "lab", "kernels", "debug-kernel.sh")
	writeFile(t, script, "#!/bin/sh\n[ \"$1\" = path ] && echo "+cache+"\n")
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := FindKernel(repo, Debug)
	if err != nil {
		t.Fatal(err)
	}
	if k.Release != release || k.Image != filepath.Join(cache, "vmlinuz") ||
		k.BuildDir != filepath.Join(cache, "build") || k.ModuleRoot != filepath.Join(cache, "modules") ||
		!k.Kmemleak || strings.Join(k.Args, " ") != "acpi=off kasan_multi_shot" {
		t.Errorf("FindKernel(debug) = %+v", k)
	}

	writeFile(t, script, "#!/bin/sh\necho 'debug-kernel: not built; run: debug-kernel.sh build' >&2\nexit 1\n")
	_, err = FindKernel(repo, Debug)
	if err == nil || !strings.Contains(err.Error(), "run: debug-kernel.sh build") {
		t.Errorf("FindKernel(debug) before a build = %v, want the script's explanation", err)
	}
}
