package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/internal/kernlog"
)

// Defaults of Config.
const (
	DefaultSMP      = 2
	DefaultMemoryMB = 1024
	DefaultTimeout  = 10 * time.Minute
)

// guestOut is where the guest mounts the run directory.
const guestOut = "/run/kfwlab"

// guestPath is the PATH of the payload.
const guestPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrTimeout is returned (wrapped) by Wait when the watchdog stopped a VM.
var ErrTimeout = errors.New("timed out")

// ErrWedged is returned (wrapped) by Wait when the harness stopped a VM
// whose kernel reported that it is stuck.
var ErrWedged = errors.New("guest kernel wedged")

// Config describes one VM run: boot a kernel, run one payload command in
// the guest, power off.
type Config struct {
	Kernel string // Generic (the default), RT or Debug
	// Command is the payload: a program and its arguments, run as root in
	// the guest with the host's root file system as its (read-only) root.
	// Paths under /tmp and /run are not visible there.
	Command []string
	Dir     string   // working directory of the payload; default "/"
	Env     []string // KEY=VALUE added to (or replacing) the payload's environment

	SMP        int      // virtual CPUs; default DefaultSMP
	MemoryMB   int      // guest memory; default DefaultMemoryMB
	KernelArgs []string // appended to the kernel command line

	// Network gives the guest qemu's user-mode network on eth0
	// (10.0.2.15/24, gateway 10.0.2.2). Forwards implies it.
	Network  bool
	Forwards []Forward

	// Timeout bounds the whole run, boot included; default DefaultTimeout.
	Timeout time.Duration
	// LogDir is the run directory: shared writable with the guest, it
	// receives the payload's stdout and stderr, the console, dmesg and the
	// exit status. Default: a new directory under build/lab/logs named
	// after Name and the kernel.
	LogDir string
	Name   string

	// Stdout, Stderr and Console, when set, receive the payload's output
	// and the serial console while the VM runs.
	Stdout, Stderr, Console io.Writer

	Repo string // repository root; default RepoRoot()
}

// Forward forwards a TCP port of the host's loopback to the guest.
type Forward struct{ Host, Guest int }

// ParseForward parses "HOST:GUEST", two TCP port numbers.
func ParseForward(s string) (Forward, error) {
	host, guest, ok := strings.Cut(s, ":")
	if !ok {
		return Forward{}, fmt.Errorf("port forward %q: want HOST:GUEST", s)
	}
	var f Forward
	var err error
	if f.Host, err = parsePort(host); err == nil {
		f.Guest, err = parsePort(guest)
	}
	if err != nil {
		return Forward{}, fmt.Errorf("port forward %q: %w", s, err)
	}
	return f, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return n, nil
}

// VM is a running lab VM.
type VM struct {
	Kernel Kernel
	LogDir string // the run directory (see Config.LogDir)

	cfg     Config
	cmd     *exec.Cmd
	console *consoleLog
	tails   []*tail
	started time.Time

	exited   chan struct{} // closed when qemu has exited
	exitErr  error         // qemu's exit status, valid after exited
	exitTime time.Time     // when qemu exited, valid after exited
	stopOnce sync.Once
	stopWhy  error // why the harness stopped qemu, set once before killing it

	waitOnce sync.Once
	result   *Result
	err      error
}

// Start boots a VM that runs cfg.Command. The VM stops by itself when the
// payload ends, when cfg.Timeout passes or when ctx is done; Wait collects
// the result.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("lab: qemu-system-x86_64 not found (apt-get install qemu-system-x86): %w", err)
	}
	k, err := FindKernel(cfg.Repo, cfg.Kernel)
	if err != nil {
		return nil, err
	}
	initrd, err := Initramfs(cfg.Repo, k)
	if err != nil {
		return nil, err
	}
	if cfg.LogDir == "" {
		cfg.LogDir, err = newRunDir(cfg.Repo, cfg.Name+"-"+k.Name)
	} else {
		err = os.MkdirAll(cfg.LogDir, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	for _, p := range []string{cfg.Repo, cfg.LogDir, cfg.Dir} {
		if err := GuestCanSee(p); err != nil {
			return nil, err
		}
	}
	vm := &VM{Kernel: k, LogDir: cfg.LogDir, cfg: cfg, exited: make(chan struct{})}
	if err := vm.writeRunFiles(); err != nil {
		return nil, err
	}
	if err := vm.startQemu(qemu, qemuArgs(cfg, k, initrd)); err != nil {
		return nil, err
	}
	go vm.watchdog(ctx)
	return vm, nil
}

// withDefaults checks cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Command) == 0 {
		return cfg, errors.New("lab: no payload command")
	}
	if cfg.Kernel == "" {
		cfg.Kernel = Generic
	}
	if cfg.SMP == 0 {
		cfg.SMP = DefaultSMP
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if cfg.Name == "" {
		cfg.Name = "run"
	}
	if cfg.Repo == "" {
		repo, err := RepoRoot()
		if err != nil {
			return cfg, err
		}
		cfg.Repo = repo
	}
	return cfg, nil
}

// newRunDir creates a new run directory under build/lab/logs.
func newRunDir(repo, prefix string) (string, error) {
	base := filepath.Join(labDir(repo), "logs")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(base, prefix+"-"+time.Now().Format("20060102-150405")+"-")
}

// startQemu starts qemu with its console going to the console log and, when
// asked, the payload's output streamed to the Config's writers.
func (vm *VM) startQemu(qemu string, args []string) error {
	var err error
	if vm.console, err = newConsoleLog(filepath.Join(vm.LogDir, "console.log"), vm.cfg.Console); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	vm.cmd = exec.Command(qemu, args...)
	// Own process group: a terminal's Ctrl-C reaches the harness, which
	// stops qemu itself; Pdeathsig kills qemu if the harness dies.
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := vm.cmd.StdoutPipe()
	if err != nil {
		vm.console.close()
		return fmt.Errorf("lab: %w", err)
	}
	vm.cmd.Stderr = vm.cmd.Stdout // qemu's own errors belong to the console log
	for name, w := range map[string]io.Writer{"stdout": vm.cfg.Stdout, "stderr": vm.cfg.Stderr} {
		if w != nil {
			vm.tails = append(vm.tails, startTail(filepath.Join(vm.LogDir, name), w))
		}
	}
	vm.started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		vm.stopTails()
		vm.console.close()
		return fmt.Errorf("lab: starting qemu: %w", err)
	}
	go func() {
		vm.console.copyFrom(stdout)
		vm.exitErr = vm.cmd.Wait()
		vm.exitTime = time.Now()
		close(vm.exited)
	}()
	return nil
}

// GuestCanSee rejects host paths the guest cannot see: it mounts fresh tmpfs
// file systems over /tmp and /run.
func GuestCanSee(path string) error {
	for _, hidden := range []string{"/tmp", "/run"} {
		if path == hidden || strings.HasPrefix(path, hidden+"/") {
			return fmt.Errorf("lab: %s is under %s, which the guest replaces with a tmpfs; use a path under the repository", path, hidden)
		}
	}
	return nil
}

// writeRunFiles writes the guest's settings and payload script into the
// run directory.
func (vm *VM) writeRunFiles() error {
	conf := fmt.Sprintf("LAB_HOSTNAME=%s\n", shellQuote("kfwlab-"+vm.Kernel.Name))
	if vm.cfg.Network || len(vm.cfg.Forwards) > 0 {
		conf += "LAB_NET=1\n"
	}
	if vm.Kernel.ModuleRoot != "/" {
		conf += fmt.Sprintf("LAB_MODULES=%s\n", shellQuote(filepath.Join(vm.Kernel.ModuleRoot, "lib", "modules")))
	}
	files := map[string]string{
		"lab.conf":   conf,
		"payload.sh": payloadScript(guestOut, vm.cfg.Dir, payloadEnv(vm.cfg, vm.Kernel), vm.cfg.Command),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(vm.LogDir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	return nil
}

// payloadEnv is the payload's whole environment, sorted: PATH, HOME, the
// host's KFW_* variables, the lab's KFW_* variables and cfg.Env, each
// overriding the ones before.
func payloadEnv(cfg Config, k Kernel) []string {
	env := map[string]string{"PATH": guestPath, "HOME": "/root"}
	for _, kv := range os.Environ() {
		if key, value, _ := strings.Cut(kv, "="); strings.HasPrefix(key, "KFW_") {
			env[key] = value
		}
	}
	env["KFW_REPO"] = cfg.Repo
	env["KFW_KO"] = ModulePath(cfg.Repo, k.Release)
	env["KFW_LAB_KERNEL"] = k.Name
	env["KFW_LAB_RELEASE"] = k.Release
	delete(env, "KFW_BIN")
	if bin := filepath.Join(cfg.Repo, "bin"); isDir(bin) {
		env["KFW_BIN"] = bin
	}
	for _, kv := range cfg.Env {
		key, value, _ := strings.Cut(kv, "=")
		env[key] = value
	}
	list := make([]string, 0, len(env))
	for key, value := range env {
		list = append(list, key+"="+value)
	}
	sort.Strings(list)
	return list
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// payloadScript is the shell script the guest runs in its chroot: the
// payload in dir with exactly env as its environment, its stdout and stderr
// into files of the run directory out.
func payloadScript(out, dir string, env, command []string) string {
	var b strings.Builder
	b.WriteString("# Written by the kfw lab harness; run by the guest's init in the host root.\n")
	fmt.Fprintf(&b, "exec >%s 2>%s\n", shellQuote(out+"/stdout"), shellQuote(out+"/stderr"))
	fmt.Fprintf(&b, "cd %s || exit 127\n", shellQuote(dir))
	b.WriteString("exec env -i")
	for _, word := range append(env, command...) {
		b.WriteString(" " + shellQuote(word))
	}
	b.WriteString("\n")
	return b.String()
}

// shellQuote quotes s as one word for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// qemuArgs is qemu's command line for one run.
func qemuArgs(cfg Config, k Kernel, initrd string) []string {
	kernelArgs := append([]string{
		"console=ttyS0",
		"loglevel=5",        // warnings and worse reach the console
		"printk.devkmsg=on", // tests may log to /dev/kmsg without a rate limit
		"log_buf_len=4M",    // keep the whole log of a long suite for dmesg
		"panic=-1",          // reboot at once on panic; -no-reboot ends qemu
		"no_timer_check",    // under TCG on a busy host the IO-APIC timer check fails: panic
		"rdinit=/init",
	}, k.Args...)
	kernelArgs = append(kernelArgs, cfg.KernelArgs...)
	args := []string{
		"-accel", "tcg", "-cpu", "max",
		// One socket per CPU: with acpi=off the guest reads the MP table,
		// which lists one CPU per socket.
		"-smp", fmt.Sprintf("%d,sockets=%d", cfg.SMP, cfg.SMP), "-m", strconv.Itoa(cfg.MemoryMB),
		"-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
		"-kernel", k.Image, "-initrd", initrd,
		"-append", strings.Join(kernelArgs, " "),
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path=" + qemuEscape(cfg.LogDir) + ",mount_tag=kfwlab,security_model=none,multidevs=remap",
	}
	if cfg.Network || len(cfg.Forwards) > 0 {
		netdev := "user,id=net0"
		for _, f := range cfg.Forwards {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.Host, f.Guest)
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0")
	}
	return args
}

// qemuEscape escapes a value for qemu's comma-separated option syntax.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// wedgedGrace is how long a VM runs on after its kernel said it is stuck
// (a soft lockup, an RCU stall, a hung task, a panic): long enough for the
// reports that follow to reach the console, far shorter than the timeout a
// wedged guest would otherwise wait out. Such a report fails the run anyway.
const wedgedGrace = 30 * time.Second

// watchdog stops qemu when the timeout passes, when ctx is done, or soon
// after the guest kernel reports that it is stuck.
func (vm *VM) watchdog(ctx context.Context) {
	timer := time.NewTimer(vm.cfg.Timeout)
	defer timer.Stop()
	var grace <-chan time.Time
	var report string
	for {
		select {
		case <-vm.exited:
			return
		case <-timer.C:
			vm.kill(fmt.Errorf("%w after %v", ErrTimeout, vm.cfg.Timeout))
			return
		case <-ctx.Done():
			vm.kill(context.Cause(ctx))
			return
		case report = <-vm.console.wedged:
			grace = time.After(wedgedGrace)
		case <-grace:
			vm.kill(fmt.Errorf("%w: the kernel reported %q; stopped %v later", ErrWedged, report, wedgedGrace))
			return
		}
	}
}

// Stop stops the VM at once and waits until qemu has exited.
func (vm *VM) Stop() {
	vm.kill(errors.New("stopped"))
	<-vm.exited
}

// kill ends qemu (SIGTERM, SIGKILL if it lingers) and records why.
func (vm *VM) kill(why error) {
	vm.stopOnce.Do(func() {
		select {
		case <-vm.exited:
			return // finished on its own: nothing to stop, nothing to blame
		default:
		}
		vm.stopWhy = why
		_ = vm.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-vm.exited:
		case <-time.After(5 * time.Second):
			_ = vm.cmd.Process.Kill()
		}
	})
}

// Wait waits for the VM to power off and returns what the run produced.
// The error is non-nil when the run did not complete: qemu failed, the
// watchdog or the context stopped it, or the guest never reported the
// payload's exit status; the Result then holds what was collected. A
// completed run returns a nil error; check Result.Err for the payload's
// status and kernel problems.
func (vm *VM) Wait() (*Result, error) {
	vm.waitOnce.Do(func() {
		<-vm.exited
		vm.stopOnce.Do(func() {}) // a late kill must not blame a finished run
		vm.stopTails()
		vm.console.close()
		vm.result, vm.err = vm.collect()
	})
	return vm.result, vm.err
}

func (vm *VM) stopTails() {
	for _, t := range vm.tails {
		t.stop()
	}
}

// collect reads the run directory after qemu exited.
func (vm *VM) collect() (*Result, error) {
	read := func(name string) (string, bool) {
		data, err := os.ReadFile(filepath.Join(vm.LogDir, name))
		return string(data), err == nil
	}
	r := &Result{Kernel: vm.Kernel, LogDir: vm.LogDir, ExitCode: -1, Tainted: -1}
	r.Console, _ = read("console.log")
	r.Stdout, _ = read("stdout")
	r.Stderr, _ = read("stderr")
	r.Dmesg, r.dmesgSaved = read("dmesg")
	r.Kmemleak, r.kmemleakSaved = read("kmemleak")
	if s, ok := read("tainted"); ok {
		r.Tainted, _ = strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	}
	if payloadStart, ok := vm.console.payloadStart(); ok {
		r.Boot = payloadStart.Sub(vm.started)
		r.Run = vm.exitTime.Sub(payloadStart)
	}
	status, finished := read("exit-status")
	if finished {
		var ok bool
		if r.ExitCode, ok = parseStatus(status); !ok {
			return r, vm.failure(fmt.Errorf("guest wrote a bad exit status %q", status))
		}
	}
	switch {
	case vm.stopWhy != nil:
		return r, vm.failure(vm.stopWhy)
	case !finished && vm.exitErr != nil:
		return r, vm.failure(fmt.Errorf("qemu failed (%v) before the payload finished", vm.exitErr))
	case !finished:
		return r, vm.failure(errors.New("the guest stopped before the payload finished"))
	case !r.dmesgSaved:
		return r, vm.failure(errors.New("the guest stopped before saving dmesg"))
	}
	return r, nil
}

func parseStatus(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	return n, err == nil && n >= 0
}

// failure wraps why a run did not complete with what helps to debug it: the
// kernel's problem reports, the last console and payload lines, the logs.
func (vm *VM) failure(why error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nlast console lines:\n%s", indent(vm.console.tailLines()))
	for _, name := range []string{"stdout", "stderr"} {
		if data, err := os.ReadFile(filepath.Join(vm.LogDir, name)); err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "last payload %s lines:\n%s", name, indent(lastLines(string(data), tailLineCount)))
		}
	}
	fmt.Fprintf(&b, "logs: %s", vm.LogDir)
	return fmt.Errorf("lab VM on %s (%s): %w%s", vm.Kernel.Name, vm.Kernel.Release, why, b.String())
}

// indent prefixes each line with two spaces, for messages.
func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// Result is what a completed VM run produced.
type Result struct {
	Kernel   Kernel
	LogDir   string
	ExitCode int // the payload's exit status; -1 when unknown

	Stdout, Stderr string // the payload's output
	Console        string // the serial console: boot, init, kernel warnings
	Dmesg          string // the whole kernel log after the payload
	Kmemleak       string // the kmemleak report (kernels with kmemleak)
	Tainted        int64  // /proc/sys/kernel/tainted after the payload; -1 when unknown

	Boot time.Duration // from qemu's start to the payload's start
	Run  time.Duration // from the payload's start to qemu's exit

	dmesgSaved, kmemleakSaved bool
}

// taintProblems are the taint flags that mean the kernel hit a bug.
var taintProblems = []struct {
	bit  uint
	what string
}{
	{5, "B (bad page)"},
	{7, "D (kernel died: oops or BUG)"},
	{9, "W (a WARN fired)"},
	{14, "L (soft lockup)"},
}

// Problems lists the kernel's reports of bugs during the run: matching
// console and dmesg lines, kmemleak reports and bug taint flags.
func (r *Result) Problems() []string {
	problems := kernlog.Problems(r.Console, r.Dmesg)
	if r.Kernel.Kmemleak && r.dmesgSaved {
		switch report := strings.TrimSpace(r.Kmemleak); {
		case !r.kmemleakSaved:
			problems = append(problems, "kmemleak: the guest saved no report")
		case report != "":
			leaks := kernlog.Problems(report)
			if len(leaks) == 0 {
				leaks = []string{strings.SplitN(report, "\n", 2)[0]}
			}
			for _, l := range leaks {
				problems = append(problems, "kmemleak: "+l)
			}
		}
	}
	for _, t := range taintProblems {
		if r.Tainted > 0 && r.Tainted&(1<<t.bit) != 0 {
			problems = append(problems, "kernel tainted "+t.what)
		}
	}
	return problems
}

// Err reports a failed run: a non-zero exit status of the payload or kernel
// problems (see Problems). Nil means the run passed.
func (r *Result) Err() error {
	var msgs []string
	if r.ExitCode != 0 {
		msgs = append(msgs, fmt.Sprintf("payload exited with status %d", r.ExitCode))
	}
	if p := r.Problems(); len(p) > 0 {
		msgs = append(msgs, "kernel problems:\n"+strings.TrimRight(indent(p), "\n"))
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("lab VM on %s (%s): %s\nlogs: %s", r.Kernel.Name, r.Kernel.Release,
		strings.Join(msgs, "; "), r.LogDir)
}

// keepLogs reports whether $KFW_LAB_KEEP asks to keep the logs of passing
// runs too.
func keepLogs() bool { return slices.Contains([]string{"1", "true", "yes"}, os.Getenv("KFW_LAB_KEEP")) }
