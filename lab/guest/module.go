package guest

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ModuleName is the kernel's name for kfw.ko.
const ModuleName = "kfw"

// LoadModule loads kfw.ko ($KFW_KO) with insmod and the given parameters
// ("max_rules=1024").
func LoadModule(params ...string) error {
	ko := ModulePath()
	if ko == "" {
		return errors.New("load kfw: KFW_KO is not set (not in a lab VM?)")
	}
	if _, err := os.Stat(ko); err != nil {
		return fmt.Errorf("load kfw: kfw.ko not built for this kernel (run make modules): %w", err)
	}
	_, err := Run("insmod", append([]string{ko}, params...)...)
	return err
}

// UnloadModule unloads kfw with rmmod.
func UnloadModule() error {
	_, err := Run("rmmod", ModuleName)
	return err
}

// ModuleLoaded reports whether a loadable module is loaded and initialised.
func ModuleLoaded(name string) bool {
	state, err := os.ReadFile("/sys/module/" + sysfsModuleName(name) + "/initstate")
	return err == nil && strings.TrimSpace(string(state)) == "live"
}

// Modprobe loads a module of the running kernel with modprobe. A module
// built into the kernel counts as loaded, whether or not modprobe knows it
// (modules.builtin).
func Modprobe(name string, params ...string) error {
	_, err := Run("modprobe", append([]string{name}, params...)...)
	if err != nil && isDir("/sys/module/"+sysfsModuleName(name)) {
		return nil // built in (or already loaded), and visible in sysfs
	}
	return err
}

// sysfsModuleName is a module's name as /sys/module shows it.
func sysfsModuleName(name string) string { return strings.ReplaceAll(name, "-", "_") }

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
