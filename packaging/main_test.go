package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// exporterBin is kfw_exporter built from this checkout, for the tests that
// ask it about its flags.
var exporterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kfw-packaging-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "kfw_exporter")
	build := exec.Command("go", "build", "-o", exporterBin, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build kfw_exporter:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
