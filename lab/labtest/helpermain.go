package labtest

import (
	"fmt"
	"os"
	"testing"
)

// RunHelperOrTests is the TestMain of a suite whose test binary doubles as
// a helper process (see RunHelper): with envVar set it prints what
// runHelper reports for the mode envVar names and exits 0 without running
// a test; otherwise it runs the tests.
func RunHelperOrTests(m *testing.M, envVar string, runHelper func(mode string) string) {
	if mode := os.Getenv(envVar); mode != "" {
		fmt.Print(runHelper(mode))
		os.Exit(0)
	}
	os.Exit(m.Run())
}
