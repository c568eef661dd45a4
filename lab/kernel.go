package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode"
)

// Names of the lab kernels.
const (
	Generic = "generic" // Debian's newest linux-image-amd64
	RT      = "rt"      // Debian's newest linux-image-rt-amd64 (PREEMPT_RT)
	Debug   = "debug"   // lab/kernels' debug build: KASAN, lockdep, kmemleak, UBSAN
)

// KernelNames lists every kernel name the lab knows, in a stable order.
func KernelNames() []string { return []string{Generic, RT, Debug} }

// Kernel is a kernel the lab can boot and build kfw.ko against.
type Kernel struct {
	Name     string // Generic, RT or Debug
	Release  string // kernelrelease, as uname -r prints it in the guest
	Image    string // the bzImage qemu boots
	BuildDir string // kbuild tree for out-of-tree modules (KDIR)
	// ModuleRoot holds lib/modules/<Release> (modinfo -b): "/" for Debian's
	// kernels; the guest sees it as /lib/modules for any other kernel.
	ModuleRoot string
	Args       []string // kernel parameters this kernel needs under the lab
	// Kmemleak: the kernel has kmemleak, and a run fails unless the scan
	// after its payload comes back clean.
	Kmemleak bool
}

// ModulesDir is the kernel's lib/modules/<release> directory on the host.
func (k Kernel) ModulesDir() string {
	return filepath.Join(k.ModuleRoot, "lib", "modules", k.Release)
}

// FindKernel locates the kernel called name (Generic, RT or Debug). repo is
// the repository root, where the debug kernel's build script lives.
func FindKernel(repo, name string) (Kernel, error) {
	switch name {
	case Generic:
		return debianKernel("/boot", "/", "amd64")
	case RT:
		return debianKernel("/boot", "/", "rt-amd64")
	case Debug:
		return debugKernel(repo)
	}
	return Kernel{}, fmt.Errorf("unknown lab kernel %q (known: %s)", name, strings.Join(KernelNames(), ", "))
}

// debianKernel finds the newest Debian kernel of a flavour ("amd64",
// "rt-amd64") that has both an image in bootDir and modules under
// moduleRoot. Flavour names are exact: "amd64" does not match "rt-amd64" or
// "cloud-amd64".
func debianKernel(bootDir, moduleRoot, flavour string) (Kernel, error) {
	name := Generic
	if flavour == "rt-amd64" {
		name = RT
	}
	images, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*-"+flavour))
	if err != nil {
		return Kernel{}, err
	}
	var best Kernel
	for _, image := range images {
		release := strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
		if !isFlavour(release, flavour) {
			continue
		}
		k := Kernel{
			Name:       name,
			Release:    release,
			Image:      image,
			ModuleRoot: moduleRoot,
			BuildDir:   filepath.Join(moduleRoot, "lib", "modules", release, "build"),
		}
		if _, err := os.Stat(k.ModulesDir()); err != nil {
			continue
		}
		if best.Release == "" || versionLess(best.Release, release) {
			best = k
		}
	}
	if best.Release == "" {
		return Kernel{}, fmt.Errorf("lab kernel %s: no %s/vmlinuz-*-%s with modules in %s (install linux-image-%s)",
			name, bootDir, flavour, filepath.Join(moduleRoot, "lib", "modules"), flavour)
	}
	return best, nil
}

// isFlavour reports whether release is a Debian release of exactly this
// flavour: what precedes "-<flavour>" must end in a version component
// ("6.1.0-57", "6.12.38+deb13"), not in another flavour word ("cloud", "rt").
func isFlavour(release, flavour string) bool {
	version, ok := strings.CutSuffix(release, "-"+flavour)
	if !ok || version == "" {
		return false
	}
	last := version[strings.LastIndex(version, "-")+1:]
	return last != "" && unicode.IsDigit(rune(last[0]))
}

// versionLess orders kernel releases like sort -V: digit runs compare as
// numbers, everything else byte by byte.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := unicode.IsDigit(rune(a[0])), unicode.IsDigit(rune(b[0]))
		if da != db {
			return da // a digit run sorts after a separator: 6.10 > 6.1-x
		}
		var pa, pb string
		if da {
			pa, a = leadingRun(a, true)
			pb, b = leadingRun(b, true)
			pa, pb = strings.TrimLeft(pa, "0"), strings.TrimLeft(pb, "0")
			if len(pa) != len(pb) {
				return len(pa) < len(pb)
			}
		} else {
			pa, a = leadingRun(a, false)
			pb, b = leadingRun(b, false)
		}
		if pa != pb {
			return pa < pb
		}
	}
	return a == "" && b != ""
}

// leadingRun splits s after its leading run of digits (digits=true) or of
// non-digits.
func leadingRun(s string, digits bool) (run, rest string) {
	i := 0
	for i < len(s) && unicode.IsDigit(rune(s[i])) == digits {
		i++
	}
	return s[:i], s[i:]
}

// debugKernel asks lab/kernels/debug-kernel.sh where the cached debug
// kernel is. The kernel has everything the lab needs built in; it boots only
// with ACPI off (power-off then relies on reboot -f and qemu's -no-reboot).
func debugKernel(repo string) (Kernel, error) {
	script := filepath.Join(repo, "lab", "kernels", "debug-kernel.sh")
	var stderr bytes.Buffer
	cmd := exec.Command(script, "path")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return Kernel{}, fmt.Errorf("lab kernel debug is not available: %s", strings.TrimSpace(stderr.String()))
		}
		return Kernel{}, fmt.Errorf("lab kernel debug: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	release, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("lab kernel debug: %w", err)
	}
	k := Kernel{
		Name:       Debug,
		Release:    strings.TrimSpace(string(release)),
		Image:      filepath.Join(dir, "vmlinuz"),
		BuildDir:   filepath.Join(dir, "build"),
		ModuleRoot: filepath.Join(dir, "modules"),
		// acpi=off: ACPI table evaluation takes over a minute under TCG with
		// kmemleak; kasan_multi_shot: report every KASAN finding, not the first.
		Args:     []string{"acpi=off", "kasan_multi_shot"},
		Kmemleak: true,
	}
	for _, p := range []string{k.Image, k.BuildDir, k.ModulesDir()} {
		if _, err := os.Stat(p); err != nil {
			return Kernel{}, fmt.Errorf("lab kernel debug: incomplete cache: %w", err)
		}
	}
	return k, nil
}
