//go:build !labvm

package netlink

import (
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the in-VM tests of kfw's generic netlink family and events
// (every other file of this directory) on the lab kernels named by
// $KFW_LAB_KERNELS. The debug kernel needs well over the default timeout.
func TestLab(t *testing.T) { lab.RunSuite(t, lab.Suite{Name: "netlink", Timeout: 30 * time.Minute}) }
