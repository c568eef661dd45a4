package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// modulePath identifies the repository's go.mod.
const modulePath = "github.com/kfwlabs/kfw_exporter"

// RepoRoot returns the repository root: $KFW_REPO when set, else the nearest
// directory at or above the working directory whose go.mod declares the kfw
// module.
func RepoRoot() (string, error) {
	if dir := os.Getenv("KFW_REPO"); dir != "" {
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		ok, err := declaresModule(filepath.Join(dir, "go.mod"))
		if err != nil {
			return "", fmt.Errorf("finding the repository root: %w", err)
		}
		if ok {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("finding the repository root: no go.mod for %s at or above %s", modulePath, wd)
		}
	}
}

// declaresModule reports whether the go.mod at path declares modulePath.
func declaresModule(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath, nil
		}
	}
	return false, sc.Err()
}

// Paths of the lab's build products, relative to the repository root.

// ModulePath is where kfw.ko built for a kernel release lives.
func ModulePath(repo, release string) string {
	return filepath.Join(ModuleBuildDir(repo, release), "kfw.ko")
}

// ModuleBuildDir is the copy of kmod/ that kfw.ko is built in for a release.
func ModuleBuildDir(repo, release string) string {
	return filepath.Join(repo, "build", "kmod", release)
}

// labDir holds the lab's caches, logs and temporary files.
func labDir(repo string) string { return filepath.Join(repo, "build", "lab") }
