package main

// The agent runs commands inside the lab VM for "kfwrun exec" on the host,
// through a TCP port that kfwrun forwards from the host's loopback. One
// connection carries one command:
//
//	client -> agent: TOKEN "\n" ARGV "\n" STDIN...   (ARGV: a JSON array of strings;
//	                                                  STDIN until the client half-closes)
//	agent -> client: frames: KIND (1 byte) LENGTH (4 bytes, big endian) DATA
//
// KIND is frameStdout or frameStderr for output, and frameExit, the last
// frame, for the exit status in decimal. As in a shell, a command that is
// not found exits with 127, one that cannot run with 126, and a refused
// request (bad token, bad ARGV) with 125, each with a message on stderr.
// The token, which only root can read on the host, keeps other local users
// from running commands as root in the VM.

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	frameStdout byte = 1
	frameStderr byte = 2
	frameExit   byte = 3
)

// Exit statuses of refused or failed commands, as a shell reports them.
const (
	exitRefused     = 125
	exitCannotRun   = 126
	exitNotFound    = 127
	maxRequestLine  = 64 << 10
	requestDeadline = 30 * time.Second // to send TOKEN and ARGV
)

// maxFrame bounds the data of one frame; longer output is split.
const maxFrame = 32 << 10

// agent serves commands on a listener.
type agent struct {
	token string
	dir   string // working directory of the commands
	logf  func(format string, args ...any)
}

// serve accepts connections until ctx ends or the listener fails.
func (a *agent) serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // a failed handshake concerns one connection
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			a.handle(ctx, conn)
		}()
	}
}

// frameWriter writes one kind of frame to a connection shared with other
// frameWriters.
type frameWriter struct {
	mu     *sync.Mutex
	conn   io.Writer
	kind   byte
	broken func() // called once a write fails: the client is gone
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		if err := writeFrame(w.conn, w.kind, p[:n]); err != nil {
			w.broken()
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func writeFrame(w io.Writer, kind byte, data []byte) error {
	hdr := make([]byte, 5, 5+len(data))
	hdr[0] = kind
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(data)))
	_, err := w.Write(append(hdr, data...))
	return err
}

// handle runs the command of one connection.
func (a *agent) handle(ctx context.Context, conn net.Conn) {
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout := &frameWriter{mu: &mu, conn: conn, kind: frameStdout, broken: cancel}
	stderr := &frameWriter{mu: &mu, conn: conn, kind: frameStderr, broken: cancel}
	exit := func(code int) {
		mu.Lock()
		defer mu.Unlock()
		_ = writeFrame(conn, frameExit, []byte(strconv.Itoa(code)))
	}

	_ = conn.SetReadDeadline(time.Now().Add(requestDeadline))
	r := bufio.NewReaderSize(conn, maxRequestLine)
	argv, err := a.readRequest(r)
	if err != nil {
		a.logf("refused %s: %v", conn.RemoteAddr(), err)
		fmt.Fprintf(stderr, "kfwrun agent: %v\n", err)
		exit(exitRefused)
		return
	}
	_ = conn.SetReadDeadline(time.Time{})

	// A cancelled context (the client went away, or the agent stops)
	// kills the command.
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = a.dir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 5 * time.Second // a background child holding stdout does not hang Wait
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintf(stderr, "kfwrun agent: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT) {
			exit(exitNotFound)
		} else {
			exit(exitCannotRun)
		}
		return
	}
	a.logf("%s: running %q", conn.RemoteAddr(), argv)
	// Not waited for: it ends when the client half-closes or the
	// connection closes after the command.
	go func() {
		_, _ = io.Copy(stdin, r)
		stdin.Close()
	}()
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if err != nil && code == 0 {
		code = exitCannotRun // output could not be delivered
	}
	exit(code)
}

// readRequest reads and checks TOKEN and ARGV.
func (a *agent) readRequest(r *bufio.Reader) ([]string, error) {
	token, err := readLine(r)
	if err != nil {
		return nil, fmt.Errorf("reading the token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		return nil, errors.New("bad token")
	}
	line, err := readLine(r)
	if err != nil {
		return nil, fmt.Errorf("reading the command: %w", err)
	}
	var argv []string
	if err := json.Unmarshal([]byte(line), &argv); err != nil || len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("bad command %q: want a JSON array of strings, the program first", line)
	}
	return argv, nil
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("line too long")
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(line), "\n"), nil
}

// remoteExec runs argv through the agent at addr: it sends stdin (until
// EOF), copies the command's output to stdout and stderr, and returns its
// exit status. Ending ctx closes the connection, which kills the command.
func remoteExec(ctx context.Context, addr, token string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	req, err := json.Marshal(argv)
	if err != nil {
		return 0, err
	}
	if _, err := conn.Write([]byte(token + "\n" + string(req) + "\n")); err != nil {
		return 0, err
	}
	go func() {
		if stdin != nil {
			_, _ = io.Copy(conn, stdin)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()

	r := bufio.NewReader(conn)
	hdr := make([]byte, 5)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("the agent closed the connection before the command's exit status: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxFrame {
			return 0, fmt.Errorf("the agent sent a %d-byte frame (at most %d)", n, maxFrame)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("reading the agent's output: %w", err)
		}
		switch hdr[0] {
		case frameStdout:
			_, _ = stdout.Write(data)
		case frameStderr:
			_, _ = stderr.Write(data)
		case frameExit:
			code, err := strconv.Atoi(string(data))
			if err != nil {
				return 0, fmt.Errorf("the agent sent a bad exit status %q", data)
			}
			return code, nil
		default:
			return 0, fmt.Errorf("the agent sent an unknown frame kind %d", hdr[0])
		}
	}
}
