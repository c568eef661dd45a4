// Package guest holds helpers for the lab's in-VM tests (build tag labvm):
// the lab's environment, commands, network namespaces and a router
// topology, loading kfw.ko, and reading the kernel log. The tests run as root
// inside a lab VM (see lab/README.md); the helpers change the VM's kernel
// state and are not meant for the host.
package guest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is the lab kernel the VM runs: generic, rt or debug.
func Kernel() string { return os.Getenv("KFW_LAB_KERNEL") }

// ModulePath is kfw.ko built for the running kernel ($KFW_KO); the file
// exists only when make modules built it.
func ModulePath() string { return os.Getenv("KFW_KO") }

// Repo is the repository root ($KFW_REPO), read-only in the VM.
func Repo() string { return os.Getenv("KFW_REPO") }

// Bin returns the path of a binary built into bin/ at the repository root
// ($KFW_BIN), such as kfw_exporter or kfwctl.
func Bin(name string) (string, error) {
	dir := os.Getenv("KFW_BIN")
	if dir == "" {
		return "", fmt.Errorf("no %s: KFW_BIN is not set (no bin/ at the repository root: build the binaries first)", name)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no %s in KFW_BIN: %w", name, err)
	}
	return path, nil
}

// Run runs a command and returns its combined output. The error includes
// the command line and its output.
func Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// RunIn runs a command in the network namespace ns (ip netns exec) and
// returns its combined output.
func RunIn(ns, name string, args ...string) (string, error) {
	return Run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}
