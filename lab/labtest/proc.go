package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// ProcPath is the path of a file of /proc/kfw, such as abi.ProcStats.
func ProcPath(name string) string { return filepath.Join("/proc", abi.ProcDir, name) }

// ReadProc returns the content of a /proc/kfw file and fails the test if
// it cannot be read.
func ReadProc(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(ProcPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReadProcStats reads and parses /proc/kfw/stats and fails the test if it
// cannot.
func ReadProcStats(t testing.TB) abi.ModuleStats {
	t.Helper()
	st, err := abi.ParseProcStats(strings.NewReader(ReadProc(t, abi.ProcStats)), abi.ProcStats)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
