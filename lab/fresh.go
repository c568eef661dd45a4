package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CheckBinaryFresh fails the test when bin/name is missing or older than a
// Go file of the repository that package pkg (a path relative to the
// repository root, such as "." or "./cmd/kfwctl") is built from: a VM
// would test stale code. Stating the sources also makes go test's cache
// rerun the suite when they change. Host-side TestLab functions call it
// for the binaries their guests run.
func CheckBinaryFresh(t testing.TB, name, pkg string) {
	t.Helper()
	repo, err := RepoRoot()
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
