//go:build !labvm

package exporter

import (
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
		lab.CheckBinaryFresh(t, "kfw_exporter", ".")
	}
	lab.RunSuite(t, lab.Suite{Name: "exporter", Timeout: 25 * time.Minute})
}
