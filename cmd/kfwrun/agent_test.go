package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret"

// startAgent serves an agent on a loopback port until the test ends.
func startAgent(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	a := &agent{token: testToken, dir: dir, logf: t.Logf}
	go func() { done <- a.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent.serve: %v", err)
		}
	})
	return ln.Addr().String()
}

type execResult struct {
	code           int
	stdout, stderr string
}

func execAt(t *testing.T, addr, token, stdin string, argv ...string) execResult {
	t.Helper()
	var stdout, stderr strings.Builder
	code, err := remoteExec(context.Background(), addr, token, argv, strings.NewReader(stdin), &stdout, &stderr)
	if err != nil {
		t.Fatalf("remoteExec %q: %v", argv, err)
	}
	return execResult{code, stdout.String(), stderr.String()}
}

func TestAgentRunsCommands(t *testing.T) {
	dir := t.TempDir()
	addr := startAgent(t, dir)
	big := strings.Repeat("0123456789abcdef", 10000) // several frames

	for _, c := range []struct {
		name  string
		stdin string
		argv  []string
		want  execResult
	}{
		{"output and status", "", []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, execResult{3, "out\n", "err\n"}},
		{"stdin", "line 1\nline 2\n", []string{"sh", "-c", "wc -l"}, execResult{0, "2\n", ""}},
		{"large output", big, []string{"cat"}, execResult{0, big, ""}},
		{"working directory", "", []string{"pwd"}, execResult{0, dir + "\n", ""}},
		{"killed by a signal", "", []string{"sh", "-c", "kill -TERM $$"}, execResult{143, "", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := execAt(t, addr, testToken, c.stdin, c.argv...)
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestAgentRefusals(t *testing.T) {
	dir := t.TempDir()
	addr := startAgent(t, dir)
	notExecutable := filepath.Join(dir, "data")
	if err := os.WriteFile(notExecutable, []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token string
		argv        []string
		code        int
		stderr      string
	}{
		{"bad token", "guess", []string{"true"}, exitRefused, "bad token"},
		{"empty command", testToken, []string{}, exitRefused, "bad command"},
		{"not found", testToken, []string{"kfwrun-no-such-command"}, exitNotFound, "executable file not found"},
		{"not executable", testToken, []string{notExecutable}, exitCannotRun, "permission denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := execAt(t, addr, c.token, "", c.argv...)
			if got.code != c.code || !strings.Contains(got.stderr, c.stderr) || got.stdout != "" {
				t.Errorf("got %+v, want status %d and %q on stderr", got, c.code, c.stderr)
			}
		})
	}
}

// TestAgentKillsCommandOfAGoneClient: a client that goes away (Ctrl-C on
// kfwrun exec) must not leave its command running in the VM.
func TestAgentKillsCommandOfAGoneClient(t *testing.T) {
	dir := t.TempDir()
	addr := startAgent(t, dir)
	pidFile := filepath.Join(dir, "pid")
	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncWriter
	stdout.onWrite = func() { cancel() } // the first output: the command runs
	_, err := remoteExec(ctx, addr, testToken, []string{"sh", "-c", "echo $$ >" + pidFile + "; exec yes"}, nil, &stdout, &stdout)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("remoteExec = %v, want context.Canceled", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // against a hang, not a speed requirement
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) still runs after its client left", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncWriter discards output and calls onWrite at the first write.
type syncWriter struct {
	once    sync.Once
	onWrite func()
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.once.Do(w.onWrite)
	return len(p), nil
}

func TestRemoteExecProtocolErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply []byte
		want  string
	}{
		{"closed early", []byte{frameStdout, 0, 0, 0, 2, 'h', 'i'}, "before the command's exit status"},
		{"unknown kind", []byte{9, 0, 0, 0, 0}, "unknown frame kind 9"},
		{"oversized frame", []byte{frameStdout, 0xff, 0, 0, 0}, "frame"},
		{"bad status", []byte{frameExit, 0, 0, 0, 1, 'x'}, "bad exit status"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				conn.Write(c.reply)
			}()
			var out strings.Builder
			_, err = remoteExec(context.Background(), ln.Addr().String(), "t", []string{"x"}, nil, &out, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("remoteExec = %v, want an error containing %q", err, c.want)
			}
		})
	}
	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := remoteExec(context.Background(), addr, "t", []string{"x"}, nil, nil, nil); err == nil {
		t.Errorf("remoteExec to %s with nothing listening succeeded", addr)
	}
}
