package packaging

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// makeIn runs make in the repository with a clean make environment (a
// make that runs go test must not pass its flags, -n say, to this one).
func makeIn(t *testing.T, repo string, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", repo, "--no-print-directory"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" && k != "MAKEOVERRIDES" {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree lists the files under root (relative paths) with their modes.
func tree(t *testing.T, root string) map[string]fs.FileMode {
	t.Helper()
	files := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files[rel] = info.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func equalTrees(t *testing.T, what string, got, want map[string]fs.FileMode) {
	t.Helper()
	for f, mode := range want {
		if m, ok := got[f]; !ok {
			t.Errorf("%s: %s missing", what, f)
		} else if m != mode {
			t.Errorf("%s: %s has mode %v, want %v", what, f, m, mode)
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: unexpected %s", what, f)
		}
	}
}

func TestInstallUninstall(t *testing.T) {
	repo := repoRoot(t)
	for _, c := range []struct{ prefix, bin, lib string }{
		{"", "usr/local/bin", "usr/local/lib"}, // the default PREFIX
		{"/usr", "usr/bin", "usr/lib"},
	} {
		t.Run("PREFIX="+c.prefix, func(t *testing.T) {
			dest := t.TempDir()
			args := []string{"DESTDIR=" + dest}
			if c.prefix != "" {
				args = append(args, "PREFIX="+c.prefix)
			}
			makeIn(t, repo, append([]string{"install"}, args...)...)
			installed := map[string]fs.FileMode{
				c.bin + "/kfw_exporter":                        0o755,
				c.bin + "/kfwctl":                              0o755,
				c.lib + "/systemd/system/kfw_exporter.service": 0o644,
				c.lib + "/systemd/system/kfw-rules.service":    0o644,
				c.lib + "/sysusers.d/kfw_exporter.conf":        0o644,
				c.lib + "/modules-load.d/kfw.conf":             0o644,
				"etc/default/kfw_exporter":                     0o644,
			}
			equalTrees(t, "after make install", tree(t, dest), installed)
			if fi, err := os.Stat(filepath.Join(dest, "etc/kfw")); err != nil || !fi.IsDir() {
				t.Errorf("no etc/kfw directory for the saved rules: %v", err)
			}
			checkInstalledUnits(t, dest, "/"+c.bin, c.lib)
			checkInstalledBinaries(t, dest, c.bin)

			// Your edits and saved rules survive a reinstall and an
			// uninstall; everything else goes.
			defaults := filepath.Join(dest, "etc/default/kfw_exporter")
			edited := append(mustRead(t, defaults), "ARGS=\"--log.level=debug\"\n"...)
			if err := os.WriteFile(defaults, edited, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dest, "etc/kfw/rules"), []byte("flush\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			makeIn(t, repo, append([]string{"install"}, args...)...)
			if !bytes.Equal(mustRead(t, defaults), edited) {
				t.Error("make install overwrote an edited /etc/default/kfw_exporter")
			}
			makeIn(t, repo, append([]string{"uninstall"}, args...)...)
			equalTrees(t, "after make uninstall", tree(t, dest), map[string]fs.FileMode{
				"etc/default/kfw_exporter": 0o644,
				"etc/kfw/rules":            0o644,
			})

			// Unedited, the flags file goes too, and the empty etc/kfw.
			makeIn(t, repo, append([]string{"install"}, args...)...)
			os.Remove(defaults)
			os.Remove(filepath.Join(dest, "etc/kfw/rules"))
			makeIn(t, repo, append([]string{"install"}, args...)...)
			makeIn(t, repo, append([]string{"uninstall"}, args...)...)
			equalTrees(t, "after install and uninstall", tree(t, dest), map[string]fs.FileMode{})
			if _, err := os.Stat(filepath.Join(dest, "etc/kfw")); err == nil {
				t.Error("make uninstall left the empty etc/kfw")
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkInstalledUnits checks the placeholders were filled in and, where
// systemd-analyze exists, verifies the units (ExecStart pointing into
// DESTDIR, where the binaries are).
func checkInstalledUnits(t *testing.T, dest, bindir, lib string) {
	t.Helper()
	unitDir := filepath.Join(dest, lib, "systemd/system")
	verifyDir := t.TempDir()
	for _, name := range []string{"kfw_exporter.service", "kfw-rules.service"} {
		data := string(mustRead(t, filepath.Join(unitDir, name)))
		if placeholder.MatchString(data) {
			t.Errorf("%s keeps a placeholder:\n%s", name, data)
		}
		if !strings.Contains(data, "ExecStart="+bindir+"/") {
			t.Errorf("%s: ExecStart not in %s", name, bindir)
		}
		data = strings.ReplaceAll(data, "="+bindir+"/", "="+filepath.Join(dest, bindir)+"/")
		if err := os.WriteFile(filepath.Join(verifyDir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("no systemd-analyze: units not verified")
		return
	}
	units, _ := filepath.Glob(filepath.Join(verifyDir, "*.service"))
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// checkInstalledBinaries runs the installed binaries the way the units and
// the flags file use them.
func checkInstalledBinaries(t *testing.T, dest, bin string) {
	t.Helper()
	exporter := filepath.Join(dest, bin, "kfw_exporter")
	kfwctl := filepath.Join(dest, bin, "kfwctl")
	version := dkmsVersion(t)
	if out, err := exec.Command(exporter, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "version "+version) {
		t.Errorf("kfw_exporter --version: %v: %s (want version %s, from kmod/dkms.conf)", err, out, version)
	}
	for _, args := range [][]string{{"help", "rules", "restore"}, {"help", "rules", "save"}} {
		if out, err := exec.Command(kfwctl, args...).CombinedOutput(); err != nil {
			t.Errorf("kfwctl %s (the command kfw-rules.service runs): %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The example of the flags file names real flags.
	m := regexp.MustCompile(`(?m)^# Example: ARGS="([^"]*)"$`).FindSubmatch(mustRead(t, filepath.Join(dest, "etc/default/kfw_exporter")))
	if m == nil {
		t.Fatal("no example in /etc/default/kfw_exporter")
	}
	args := append(strings.Fields(string(m[1])), "--help")
	if out, err := exec.Command(exporter, args...).CombinedOutput(); err != nil {
		t.Errorf("kfw_exporter %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// dkmsVersion is PACKAGE_VERSION of kmod/dkms.conf, the version of
// everything.
func dkmsVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^PACKAGE_VERSION="([^"]+)"$`).FindSubmatch(mustRead(t, filepath.Join(repoRoot(t), "kmod/dkms.conf")))
	if m == nil {
		t.Fatal("no PACKAGE_VERSION in kmod/dkms.conf")
	}
	return string(m[1])
}

// placeholder matches what make install fills in, such as @BINDIR@.
var placeholder = regexp.MustCompile(`@[A-Z]+@`)
