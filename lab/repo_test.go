package lab

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	clearKFWEnv(t)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "go.mod"), "module "+modulePath+"\n\ngo 1.26\n")
	// A nested module of another name must not stop the search.
	writeFile(t, filepath.Join(root, "tests", "other", "go.mod"), "module example.com/other\n")
	sub := filepath.Join(root, "tests", "other", "deep")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got, err := RepoRoot(); err != nil || got != root {
		t.Errorf("RepoRoot() = %q, %v; want %q", got, err, root)
	}

	t.Setenv("KFW_REPO", "/somewhere/else")
	if got, err := RepoRoot(); err != nil || got != "/somewhere/else" {
		t.Errorf("RepoRoot() with KFW_REPO = %q, %v", got, err)
	}
}

func TestRepoRootOutsideTheRepository(t *testing.T) {
	clearKFWEnv(t)
	t.Chdir(t.TempDir())
	if _, err := RepoRoot(); err == nil {
		t.Error("RepoRoot() outside the repository succeeded")
	}
}
