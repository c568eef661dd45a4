//go:build !labvm

package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the in-VM tests of kfw_exporter (every other file of this
// directory) on the lab kernels named by $KFW_LAB_KERNELS. They run the
// binary the guest finds in $KFW_BIN, bin/kfw_exporter from make build;
// the debug kernel needs well over the default timeout.
func TestLab(t *testing.T) {
	if !testing.Short() {
		checkBinaryFresh(t, "kfw_exporter", ".")
	}
	lab.RunSuite(t, lab.Suite{Name: "exporter", Timeout: 25 * time.Minute})
}

// checkBinaryFresh fails when bin/name is missing or older than a Go file
// of the repository that pkg is built from: the VM would test stale code.
// Stating the sources also makes go test's cache rerun the suite when they
// change.
func checkBinaryFresh(t *testing.T, name, pkg string) {
	t.Helper()
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.Stat(filepath.Join(repo, "bin", name))
	if err != nil {
		t.Fatalf("bin/%s not built: run make build (%v)", name, err)
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.Dir}}", pkg)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	for _, dir := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(repo, dir); err != nil || strings.HasPrefix(rel, "..") {
			continue // the standard library and the module cache
		}
		sources, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range sources {
			if strings.HasSuffix(src, "_test.go") {
				continue
			}
			fi, err := os.Stat(src)
			if err != nil {
				t.Fatal(err)
			}
			if fi.ModTime().After(bin.ModTime()) {
				t.Fatalf("bin/%s is older than %s: run make build", name, src)
			}
		}
	}
}
