package labtest

import (
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
)

// LoadModule loads a fresh kfw with params for the test and unloads it when
// the test ends (unless the test did); the test fails if kfw is already
// loaded (a previous test leaked it) or the kernel logs a problem between
// the load and the end of the test.
func LoadModule(t testing.TB, params ...string) {
	t.Helper()
	requireModuleUnloaded(t)
	CheckKernelLog(t)
	loadModule(t, params)
}

// LoadModuleNoLogCheck is LoadModule without the check of the kernel log,
// for tests that call CheckKernelLog themselves over a longer span (before
// their set-up and across reloads of the module).
func LoadModuleNoLogCheck(t testing.TB, params ...string) {
	t.Helper()
	requireModuleUnloaded(t)
	loadModule(t, params)
}

func requireModuleUnloaded(t testing.TB) {
	t.Helper()
	if guest.ModuleLoaded(guest.ModuleName) {
		t.Fatal("kfw is already loaded: a previous test leaked it")
	}
}

func loadModule(t testing.TB, params []string) {
	t.Helper()
	if err := guest.LoadModule(params...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if guest.ModuleLoaded(guest.ModuleName) {
			if err := guest.UnloadModule(); err != nil {
				t.Error(err)
			}
		}
	})
}

// CheckKernelLog fails the test if the kernel logs a problem (see
// guest.CheckLogSince) after this call and before the test ends. The check
// runs after the cleanups registered later, such as unloading the module.
func CheckKernelLog(t testing.TB) {
	t.Helper()
	mark, err := guest.MarkLog()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guest.CheckLogSince(mark); err != nil {
			t.Error(err)
		}
	})
}
