package lab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShellQuote(t *testing.T) {
	words := []string{"", "plain", "two words", "it's", `"double"`, "$HOME", "`id`", "a\nb", `back\slash`, "*", "-n"}
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, shellQuote(w))
	}
	// The shell must read the quoted words back unchanged.
	script := "set -- " + strings.Join(quoted, " ") + `; for w; do printf '%s\0' "$w"; done`
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(got, words) {
		t.Errorf("the shell read back %q, want %q", got, words)
	}
}

func TestPayloadScriptRunsTheCommandInACleanEnvironment(t *testing.T) {
	out, dir := t.TempDir(), t.TempDir()
	t.Setenv("KFW_LAB_TEST_LEAK", "from the host")
	script := payloadScript(out, dir, []string{"PATH=/usr/bin:/bin", "ODD=it's $x"},
		[]string{"sh", "-c", `pwd; env | sort; echo "$1" >&2; exit 7`, "sh", "arg with 'quotes'"})
	cmd := exec.Command("sh", "-c", script)
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Fatalf("payload script: %v, want exit status 7", err)
	}
	stdout, _ := os.ReadFile(filepath.Join(out, "stdout"))
	stderr, _ := os.ReadFile(filepath.Join(out, "stderr"))
	if want := dir + "\nODD=it's $x\nPATH=/usr/bin:/bin\nPWD=" + dir + "\n"; string(stdout) != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	if want := "arg with 'quotes'\n"; string(stderr) != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

// clearKFWEnv unsets the KFW_ variables of the test's environment until the
// test ends.
func clearKFWEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if key, _, _ := strings.Cut(kv, "="); strings.HasPrefix(key, "KFW_") {
			t.Setenv(key, "") // restores the value after the test
			os.Unsetenv(key)
		}
	}
}

func TestPayloadEnv(t *testing.T) {
	clearKFWEnv(t)
	repo := t.TempDir()
	t.Setenv("KFW_BENCH_PACKETS", "500")    // passed through
	t.Setenv("KFW_KO", "/elsewhere/kfw.ko") // replaced by the lab's
	t.Setenv("KFW_BIN", "/elsewhere/bin")   // dropped: repo has no bin/
	t.Setenv("GOFLAGS", "-mod=mod")         // not passed
	k := Kernel{Name: RT, Release: "6.1.0-57-rt-amd64"}
	got := payloadEnv(Config{Repo: repo, Env: []string{"EXTRA=1", "KFW_BENCH_PACKETS=900"}}, k)
	want := []string{
		"EXTRA=1",
		"HOME=/root",
		"KFW_BENCH_PACKETS=900",
		"KFW_KO=" + filepath.Join(repo, "build", "kmod", k.Release, "kfw.ko"),
		"KFW_LAB_KERNEL=rt",
		"KFW_LAB_RELEASE=6.1.0-57-rt-amd64",
		"KFW_REPO=" + repo,
		"PATH=" + guestPath,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("payloadEnv = %q, want %q", got, want)
	}

	if err := os.Mkdir(filepath.Join(repo, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if env := payloadEnv(Config{Repo: repo}, k); !slices.Contains(env, "KFW_BIN="+filepath.Join(repo, "bin")) {
		t.Errorf("payloadEnv with bin/ = %q, want KFW_BIN", env)
	}
}

func TestParseForward(t *testing.T) {
	if f, err := ParseForward("19100:9100"); err != nil || f != (Forward{Host: 19100, Guest: 9100}) {
		t.Errorf("ParseForward(19100:9100) = %+v, %v", f, err)
	}
	for _, bad := range []string{"", "9100", "0:80", "80:65536", "a:80", "80:", "1:2:3"} {
		if _, err := ParseForward(bad); err == nil {
			t.Errorf("ParseForward(%q) succeeded", bad)
		}
	}
}

func TestQemuArgs(t *testing.T) {
	k := Kernel{Name: Debug, Image: "/k/vmlinuz", Args: []string{"acpi=off"}}
	cfg := Config{SMP: 4, MemoryMB: 2048, KernelArgs: []string{"nokaslr"}, LogDir: "/repo/build/lab/logs/a,b",
		Forwards: []Forward{{19100, 9100}, {2222, 22}}}
	args := strings.Join(qemuArgs(cfg, k, "/repo/initrd.cpio"), " ")
	for _, want := range []string{
		"-accel tcg -cpu max -smp 4,sockets=4 -m 2048 -nographic -nodefaults -serial stdio -no-reboot",
		"-kernel /k/vmlinuz -initrd /repo/initrd.cpio",
		"console=ttyS0 loglevel=5 ",
		" acpi=off nokaslr -virtfs",
		"local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"local,path=/repo/build/lab/logs/a,,b,mount_tag=kfwlab,security_model=none,multidevs=remap",
		"-netdev user,id=net0,hostfwd=tcp:127.0.0.1:19100-:9100,hostfwd=tcp:127.0.0.1:2222-:22 -device virtio-net-pci,netdev=net0",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu arguments lack %q:\n%s", want, args)
		}
	}
	if args := strings.Join(qemuArgs(Config{SMP: 2, MemoryMB: 1024}, k, "i"), " "); strings.Contains(args, "-netdev") {
		t.Errorf("qemu has a network without Network or Forwards: %s", args)
	}
}

func TestGuestCanSee(t *testing.T) {
	for _, p := range []string{"/tmp", "/tmp/x", "/run/user/0"} {
		if GuestCanSee(p) == nil {
			t.Errorf("GuestCanSee(%s) accepted a path the guest hides", p)
		}
	}
	for _, p := range []string{"/", "/work/repo", "/tmpfoo", "/runner/x"} {
		if err := GuestCanSee(p); err != nil {
			t.Errorf("GuestCanSee(%s): %v", p, err)
		}
	}
}

func TestResultProblemsAndErr(t *testing.T) {
	debug := Kernel{Name: Debug, Release: "6.1.192", Kmemleak: true}
	generic := Kernel{Name: Generic, Release: "6.1.0-57-amd64"}
	clean := "[    1.0] reboot: Restarting system\n"
	for _, c := range []struct {
		name string
		r    Result
		want []string // substrings of Err(); none: passes
	}{
		{"clean", Result{Kernel: generic, Console: clean, Dmesg: clean, dmesgSaved: true}, nil},
		{"failed payload", Result{Kernel: generic, ExitCode: 2, dmesgSaved: true},
			[]string{"payload exited with status 2"}},
		{"warning in dmesg", Result{Kernel: generic, Dmesg: "[ 5.0] WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1\n", dmesgSaved: true, Tainted: 512},
			[]string{"WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1", "kernel tainted W"}},
		{"oops on the console only", Result{Kernel: generic, Console: "[ 5.0] Oops: 0000 [#1] SMP\r\n"},
			[]string{"Oops: 0000 [#1] SMP"}},
		{"taint without a log line", Result{Kernel: generic, dmesgSaved: true, Tainted: 1<<7 | 1<<12},
			[]string{"kernel tainted D"}},
		{"unsigned module taint is fine", Result{Kernel: generic, dmesgSaved: true, Tainted: 1<<12 | 1<<13}, nil},
		{"clean kmemleak", Result{Kernel: debug, dmesgSaved: true, kmemleakSaved: true}, nil},
		{"kmemleak report", Result{Kernel: debug, dmesgSaved: true, kmemleakSaved: true,
			Kmemleak: "unreferenced object 0xffff8880012c3400 (size 64):\n  comm \"insmod\", pid 90\n"},
			[]string{"kmemleak: unreferenced object 0xffff8880012c3400 (size 64):"}},
		{"kmemleak failure", Result{Kernel: debug, dmesgSaved: true, kmemleakSaved: true, Kmemleak: "kmemleak scan failed\n"},
			[]string{"kmemleak: kmemleak scan failed"}},
		{"kmemleak not run", Result{Kernel: debug, dmesgSaved: true}, []string{"kmemleak: the guest saved no report"}},
	} {
		c.r.LogDir = "/logs/x"
		err := c.r.Err()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: Err() = %v, want nil", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: Err() = nil, want a failure", c.name)
			continue
		}
		for _, w := range append(c.want, "logs: /logs/x") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: Err() = %v, want it to contain %q", c.name, err, w)
			}
		}
	}
}

func TestKeepLogs(t *testing.T) {
	for value, want := range map[string]bool{"": false, "0": false, "1": true, "yes": true} {
		t.Setenv("KFW_LAB_KEEP", value)
		if got := keepLogs(); got != want {
			t.Errorf("KFW_LAB_KEEP=%q: keepLogs() = %v", value, got)
		}
	}
}

func TestStartRejectsBadConfigs(t *testing.T) {
	if _, err := Start(t.Context(), Config{}); err == nil {
		t.Error("Start without a command succeeded")
	}
	repo := t.TempDir()
	if _, err := Start(t.Context(), Config{Repo: repo, Kernel: "vanilla", Command: []string{"true"}, Timeout: time.Second}); err == nil {
		t.Error("Start with an unknown kernel succeeded")
	}
}
