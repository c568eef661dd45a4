package labtest

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// Process is a command that a test runs in the background, such as
// kfw_exporter: its stdout and stderr go to Log, it gets SIGKILL if the
// test binary dies, and it is stopped with SIGTERM when the test ends.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  *LockedBuffer // stdout and stderr

	hangLimit time.Duration
	exited    chan struct{}
	exitErr   error // valid once exited is closed
	stopped   bool  // Stop was called
}

// ProcessOptions says how StartProcess starts a command.
type ProcessOptions struct {
	// HangLimit bounds the wait for the exit after SIGTERM.
	HangLimit time.Duration
	// FromLockedThread starts the command from a goroutine locked to its
	// thread for as long as the command runs. Pdeathsig fires when the
	// thread that started the child exits, and the threads of locked
	// goroutines (guest.OnCPU, guest.InNetNS) do: a test that runs such
	// goroutines while the command runs needs this. Without it the
	// command starts on the calling goroutine's thread, in its network
	// namespace.
	FromLockedThread bool
}

// StartProcess starts cmd, named name in messages, and returns at once.
// cmd's SysProcAttr (created if nil) gets Pdeathsig SIGKILL; its
// ExtraFiles are closed once the child has its copies. When the test ends
// the process is stopped (Stop) unless the test did that, and if the test
// failed its log is logged.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd, opts ProcessOptions) *Process {
	t.Helper()
	p := &Process{Name: name, Cmd: cmd, Log: &LockedBuffer{}, hangLimit: opts.HangLimit, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	wait := func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	}
	var err error
	if opts.FromLockedThread {
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			wait()
		}()
		err = <-started
	} else if err = cmd.Start(); err == nil {
		go wait()
	}
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	for _, f := range cmd.ExtraFiles {
		f.Close() // the child has its copy
	}
	t.Cleanup(func() {
		if !p.stopped {
			if err := p.Stop(); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, p.Log.String())
		}
	})
	return p
}

// FatalIfExited fails the test, with the process's log, if it has exited;
// when says when that was unexpected ("at start").
func (p *Process) FatalIfExited(t testing.TB, when string) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("%s exited %s: %v\n%s", p.Name, when, p.exitErr, p.Log.String())
	default:
	}
}

// Stop sends SIGCONT (in case the test left the process stopped) and
// SIGTERM and waits for the exit; an exit status other than 0, or no exit
// within the hang limit (the process is then killed), is an error.
// Stopping a process that already exited reports how it did.
func (p *Process) Stop() error {
	p.stopped = true
	select {
	case <-p.exited:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGCONT)
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(p.hangLimit):
			_ = p.Cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, p.hangLimit)
		}
	}
	if p.exitErr != nil {
		return fmt.Errorf("%s exited with %v after SIGTERM", p.Name, p.exitErr)
	}
	return nil
}
