package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Suite is an in-VM test suite: the Go tests with build tag labvm in
// tests/lab/<Name>, run as root inside a lab VM.
type Suite struct {
	Name string
	// NoModule declares that the suite does not use kfw.ko. Otherwise a
	// kernel without a built kfw.ko fails the suite.
	NoModule bool

	// Timeout bounds each VM run, boot included; $KFW_LAB_TIMEOUT
	// overrides it; default DefaultTimeout. The in-VM test binary gets
	// 4/5 of it as -test.timeout, so a hung test prints its goroutines.
	Timeout    time.Duration
	SMP        int      // default DefaultSMP
	MemoryMB   int      // default DefaultMemoryMB
	KernelArgs []string // extra kernel parameters
	Network    bool     // qemu user-mode network on eth0 (see Config.Network)
	Env        []string // extra KEY=VALUE for the tests
}

// suiteGrace is kept between a VM's timeout and the host test's deadline,
// so the VM is stopped and reported before go test panics.
const suiteGrace = 30 * time.Second

// RunSuite compiles the suite with go test -c -tags labvm and runs it with
// -test.v in one VM per kernel named in $KFW_LAB_KERNELS (comma list of
// generic, rt, debug; default generic), each as a subtest. $KFW_LAB_RUN
// becomes -test.run; $KFW_LAB_ARGS (space separated) adds test flags. A
// subtest fails when the kernel is unavailable, kfw.ko is missing (unless
// NoModule), the VM does not boot or times out, a test fails or the kernel
// reports a problem (see Result.Problems). Logs of failed runs stay under
// build/lab/logs ($KFW_LAB_KEEP=1 keeps all). RunSuite skips with -short.
func RunSuite(t *testing.T, s Suite) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab VM suites do not run with -short")
	}
	repo, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kernels, err := kernelsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	timeout, err := suiteTimeout(s)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildSuite(t, repo, s.Name)
	for _, name := range kernels {
		t.Run(name, func(t *testing.T) { runSuiteOn(t, repo, bin, s, name, timeout) })
	}
}

// kernelsFromEnv returns the kernel names of $KFW_LAB_KERNELS.
func kernelsFromEnv() ([]string, error) {
	value := os.Getenv("KFW_LAB_KERNELS")
	if strings.TrimSpace(value) == "" {
		return []string{Generic}, nil
	}
	var names []string
	for _, name := range strings.Split(value, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(KernelNames(), name) {
			return nil, fmt.Errorf("KFW_LAB_KERNELS=%q: unknown kernel %q (known: %s)",
				value, name, strings.Join(KernelNames(), ", "))
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names, nil
}

func suiteTimeout(s Suite) (time.Duration, error) {
	if value := os.Getenv("KFW_LAB_TIMEOUT"); value != "" {
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("KFW_LAB_TIMEOUT=%q: want a positive duration such as 15m", value)
		}
		return d, nil
	}
	if s.Timeout > 0 {
		return s.Timeout, nil
	}
	return DefaultTimeout, nil
}

// buildSuite compiles the suite's labvm test binary to
// build/lab/suites/<name>.test, where the guest can see it.
func buildSuite(t *testing.T, repo, name string) string {
	t.Helper()
	pkg := "./" + filepath.ToSlash(filepath.Join("tests", "lab", name))
	if !isDir(filepath.Join(repo, pkg)) {
		t.Fatalf("lab suite %q: no directory %s", name, filepath.Join(repo, pkg))
	}
	if err := statInputs(repo, pkg); err != nil {
		t.Fatalf("lab suite %s: %v", name, err)
	}
	bin := filepath.Join(labDir(repo), "suites", name+".test")
	cmd := exec.Command("go", "test", "-c", "-tags", "labvm", "-o", bin, pkg)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab suite %s: go test -c -tags labvm %s: %v\n%s", name, pkg, err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("lab suite %s: go test -c built no test binary (no labvm test files in %s?): %v", name, pkg, err)
	}
	return bin
}

// statInputs stats every file in the repository's package directories that
// the labvm build of pkg depends on. go test caches a passing test unless a
// file the test opened or stated changed; the in-VM tests are built here,
// not by go test, so without this it would not see them change.
func statInputs(repo, pkg string) error {
	cmd := exec.Command("go", "list", "-deps", "-test", "-tags", "labvm", "-f", "{{.Dir}}", pkg)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -deps -test -tags labvm %s: %w", pkg, err)
	}
	for _, dir := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(repo, dir); err != nil || strings.HasPrefix(rel, "..") {
			continue // the standard library and the module cache do not change
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func runSuiteOn(t *testing.T, repo, bin string, s Suite, kernel string, timeout time.Duration) {
	k, err := FindKernel(repo, kernel)
	if err != nil {
		t.Fatal(err)
	}
	if !s.NoModule {
		if _, err := os.Stat(ModulePath(repo, k.Release)); err != nil {
			t.Fatalf("kfw.ko for %s not built: run make modules (%v)", k.Release, err)
		}
	}
	if deadline, ok := t.Deadline(); ok {
		if left := time.Until(deadline) - suiteGrace; left < timeout {
			timeout = left
		}
		if timeout <= 0 {
			t.Fatal("no time left before go test's -timeout to boot a lab VM")
		}
	}
	args := []string{bin, "-test.v", "-test.timeout=" + (timeout * 4 / 5).String()}
	if run := os.Getenv("KFW_LAB_RUN"); run != "" {
		args = append(args, "-test.run="+run)
	}
	args = append(args, strings.Fields(os.Getenv("KFW_LAB_ARGS"))...)

	stdout, stderr := &LineLogger{T: t}, &LineLogger{T: t, Prefix: "stderr: "}
	vm, err := Start(context.Background(), Config{
		Kernel:     kernel,
		Command:    args,
		Dir:        filepath.Join(repo, "tests", "lab", s.Name),
		Env:        s.Env,
		SMP:        s.SMP,
		MemoryMB:   s.MemoryMB,
		KernelArgs: s.KernelArgs,
		Network:    s.Network,
		Timeout:    timeout,
		Name:       s.Name,
		Stdout:     stdout,
		Stderr:     stderr,
		Repo:       repo,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := vm.Wait()
	stdout.Flush()
	stderr.Flush()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab: %s (%s): boot %.1fs, tests and log collection %.1fs",
		k.Name, k.Release, res.Boot.Seconds(), res.Run.Seconds())
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if !keepLogs() {
		os.RemoveAll(res.LogDir)
	}
}

// LineLogger passes a VM's output (Config.Stdout, Config.Stderr) to t.Log
// line by line, each line after Prefix, so it is shown with -v and on
// failure. Flush logs an unfinished last line.
type LineLogger struct {
	T      testing.TB
	Prefix string

	mu  sync.Mutex
	buf []byte
}

func (l *LineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		line, rest, ok := strings.Cut(string(l.buf), "\n")
		if !ok {
			return len(p), nil
		}
		l.T.Log(l.Prefix + line)
		l.buf = []byte(rest)
	}
}

// Flush logs an unfinished last line.
func (l *LineLogger) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.T.Log(l.Prefix + string(l.buf))
		l.buf = nil
	}
}
