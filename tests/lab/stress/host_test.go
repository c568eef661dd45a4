//go:build !labvm

package stress

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the stress tests (every other file of this directory) on the
// lab kernels named by $KFW_LAB_KERNELS. The reload test runs the binaries
// the guest finds in $KFW_BIN (bin/kfw_exporter and bin/kfwctl from make
// build). The workloads are sized per kernel (see sizeFor); the debug
// kernel's run takes well over the default VM timeout.
func TestLab(t *testing.T) {
	if !testing.Short() {
		checkBinaryFresh(t, "kfw_exporter", ".")
		checkBinaryFresh(t, "kfwctl", "./cmd/kfwctl")
	}
	lab.RunSuite(t, lab.Suite{Name: "stress", Timeout: 30 * time.Minute})
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
