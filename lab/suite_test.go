package lab

import (
	"reflect"
	"testing"
	"time"
)

func TestKernelsFromEnv(t *testing.T) {
	for _, c := range []struct {
		value string
		want  []string
	}{
		{"", []string{Generic}},
		{"rt", []string{RT}},
		{" generic, rt ,debug", []string{Generic, RT, Debug}},
		{"rt,rt", []string{RT}},
	} {
		t.Setenv("KFW_LAB_KERNELS", c.value)
		if got, err := kernelsFromEnv(); err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("KFW_LAB_KERNELS=%q: %q, %v; want %q", c.value, got, err, c.want)
		}
	}
	for _, bad := range []string{"vanilla", "generic,", "generic,Debug"} {
		t.Setenv("KFW_LAB_KERNELS", bad)
		if got, err := kernelsFromEnv(); err == nil {
			t.Errorf("KFW_LAB_KERNELS=%q: %q, want an error", bad, got)
		}
	}
}

func TestSuiteTimeout(t *testing.T) {
	t.Setenv("KFW_LAB_TIMEOUT", "")
	if got, _ := suiteTimeout(Suite{}); got != DefaultTimeout {
		t.Errorf("default timeout %v", got)
	}
	if got, _ := suiteTimeout(Suite{Timeout: time.Minute}); got != time.Minute {
		t.Errorf("suite timeout %v", got)
	}
	t.Setenv("KFW_LAB_TIMEOUT", "25m")
	if got, _ := suiteTimeout(Suite{Timeout: time.Minute}); got != 25*time.Minute {
		t.Errorf("KFW_LAB_TIMEOUT=25m gives %v", got)
	}
	for _, bad := range []string{"10", "-1m", "0s"} {
		t.Setenv("KFW_LAB_TIMEOUT", bad)
		if _, err := suiteTimeout(Suite{}); err == nil {
			t.Errorf("KFW_LAB_TIMEOUT=%q accepted", bad)
		}
	}
}
