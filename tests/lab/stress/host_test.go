//go:build !labvm

package stress

import (
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
		lab.CheckBinaryFresh(t, "kfw_exporter", ".")
		lab.CheckBinaryFresh(t, "kfwctl", "./cmd/kfwctl")
	}
	lab.RunSuite(t, lab.Suite{Name: "stress", Timeout: 30 * time.Minute})
}
