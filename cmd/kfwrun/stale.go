package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockState takes the lock of the state directory, so that one kfwrun
// uses it at a time; the kernel releases it when the process dies, however
// it dies. The lock file holds the owner's pid.
func lockState(dir string) (*os.File, error) {
	path := filepath.Join(dir, "kfwrun.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(owner))
			return nil, fmt.Errorf("the lab is already running (kfwrun pid %s uses %s): stop it with Ctrl-C where it runs, or kill %s", pid, dir, pid)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return f, nil
}

// labRunning reports whether a kfwrun holds the lock of dir.
func labRunning(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "kfwrun.lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// process is a process found in /proc.
type process struct {
	pid  int
	name string // comm
}

func (p process) String() string { return fmt.Sprintf("pid %d (%s)", p.pid, p.name) }

// staleNames are the programs kfwrun starts: only they are ever stopped as
// leftovers.
var staleNames = []string{"qemu-system-x86", "prometheus"} // comm is cut at 15 bytes

// staleProcesses finds the qemu and Prometheus processes that an earlier
// kfwrun using dir left behind (killed with SIGKILL, say): their command
// line names a path under dir. Only call it while holding dir's lock: a
// live kfwrun's children look the same.
func staleProcesses(dir string) ([]process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	marker := filepath.Clean(dir) + "/"
	var found []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue // gone meanwhile
		}
		name := strings.TrimSpace(string(comm))
		if !isStaleName(name) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), marker) {
			continue
		}
		found = append(found, process{pid: pid, name: name})
	}
	return found, nil
}

func isStaleName(name string) bool {
	for _, n := range staleNames {
		if name == n {
			return true
		}
	}
	return false
}

// stopProcess ends a process: SIGTERM, then SIGKILL if it is still there
// after grace. It returns once the process is gone (or no longer ours to
// wait for: a process that is not our child is polled).
func stopProcess(pid int, grace time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		return fmt.Errorf("pid %d survived SIGKILL", pid)
	}
	return nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the state follows the last parenthesis.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// checkPortFree fails when a TCP port of the host's loopback is taken,
// naming the process that listens on it when it can be found.
func checkPortFree(port int, what string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err == nil {
		ln.Close()
		return nil
	}
	owner := "another process"
	if p, ok := portOwner(port); ok {
		owner = p.String()
	}
	return fmt.Errorf("port %d (%s) is in use by %s: stop it or choose another port (kfwrun -h)", port, what, owner)
}

// portOwner finds the process listening on a TCP port, through the
// socket inodes of /proc/net/tcp{,6} and the file descriptors in /proc.
func portOwner(port int) (process, bool) {
	inodes := make(map[string]bool)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, inode := range listeningInodes(file, port) {
			inodes["socket:["+inode+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return process{}, false
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); err == nil && inodes[target] {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return process{pid: pid, name: strings.TrimSpace(string(comm))}, true
			}
		}
	}
	return process{}, false
}

// listeningInodes returns the inodes of the sockets of a /proc/net/tcp
// table that listen on port.
func listeningInodes(file string, port int) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	const listen = "0A"
	suffix := fmt.Sprintf(":%04X", port)
	var inodes []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && strings.HasSuffix(fields[1], suffix) && fields[3] == listen {
			inodes = append(inodes, fields[9])
		}
	}
	return inodes
}
