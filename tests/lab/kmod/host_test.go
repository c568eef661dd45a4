//go:build !labvm

package kmod

import (
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestLab runs the in-VM tests of the kfw kernel module (every other file
// of this directory) on the lab kernels named by $KFW_LAB_KERNELS.
func TestLab(t *testing.T) { lab.RunSuite(t, lab.Suite{Name: "kmod"}) }
