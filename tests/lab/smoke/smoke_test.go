//go:build labvm

// Package smoke proves the lab: it runs inside a lab VM and checks the
// environment every in-VM suite relies on.
package smoke

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

func TestKernelIsTheRequestedOne(t *testing.T) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	if want := os.Getenv("KFW_LAB_RELEASE"); release != want {
		t.Fatalf("running kernel %s, want %s", release, want)
	}
	_, rtErr := os.Stat("/sys/kernel/realtime") // only PREEMPT_RT kernels have it
	_, leakErr := os.Stat("/sys/kernel/debug/kmemleak")
	switch kernel := guest.Kernel(); kernel {
	case "generic":
		if rtErr == nil || leakErr == nil {
			t.Errorf("generic kernel %s is PREEMPT_RT (%v) or has kmemleak (%v)", release, rtErr == nil, leakErr == nil)
		}
	case "rt":
		if rtErr != nil {
			t.Errorf("rt kernel %s is not PREEMPT_RT: %v", release, rtErr)
		}
	case "debug":
		if leakErr != nil {
			t.Errorf("debug kernel %s has no kmemleak in debugfs: %v", release, leakErr)
		}
	default:
		t.Errorf("KFW_LAB_KERNEL=%q", kernel)
	}
}

func TestEnvironmentIsClean(t *testing.T) {
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if key != "PATH" && key != "HOME" && !strings.HasPrefix(key, "KFW_") {
			t.Errorf("unexpected environment variable %s", kv)
		}
	}
	if home := os.Getenv("HOME"); home != "/root" {
		t.Errorf("HOME=%q, want /root", home)
	}
	if os.Getuid() != 0 {
		t.Errorf("uid %d, want root", os.Getuid())
	}
	if _, err := os.Stat(filepath.Join(guest.Repo(), "go.mod")); err != nil {
		t.Errorf("KFW_REPO: %v", err)
	}
	if dir := filepath.Dir(guest.ModulePath()); filepath.Base(dir) != os.Getenv("KFW_LAB_RELEASE") {
		t.Errorf("KFW_KO=%s is not built for %s", guest.ModulePath(), os.Getenv("KFW_LAB_RELEASE"))
	}
}

func TestRootIsReadOnlyAndTmpWritable(t *testing.T) {
	err := os.WriteFile("/etc/kfw-lab-smoke", nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing /etc: %v, want EROFS", err)
	}
	for _, dir := range []string{"/tmp", "/run", "/dev/shm"} {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Errorf("%s is not a tmpfs (magic %#x)", dir, st.Type)
		}
		path := filepath.Join(dir, "kfw-lab-smoke")
		if err := os.WriteFile(path, []byte("ok"), 0o644); err != nil {
			t.Errorf("writing %s: %v", dir, err)
		}
		os.Remove(path)
	}
}

func TestModprobe(t *testing.T) {
	if err := guest.Modprobe("veth"); err != nil {
		t.Errorf("Modprobe(veth): %v", err)
	}
	if err := guest.Modprobe("unix"); err != nil { // built into every lab kernel
		t.Errorf("Modprobe(unix), a built-in module: %v", err)
	}
	if err := guest.Modprobe("kfw_lab_no_such_module"); err == nil {
		t.Error("Modprobe of a missing module succeeded")
	}
}

// TestTopologyRoutesThroughRouter pings both ways over IPv4 and IPv6 and
// checks the hop limit: one less than the sender's proves the router
// forwarded.
func TestTopologyRoutesThroughRouter(t *testing.T) {
	top := labtest.NewTopology(t)
	for _, c := range []struct {
		from guest.Endpoint
		to   string
	}{
		{top.Client, top.Server.IPv4.Addr().String()},
		{top.Client, top.Server.IPv6.Addr().String()},
		{top.Server, top.Client.IPv4.Addr().String()},
		{top.Server, top.Client.IPv6.Addr().String()},
	} {
		out, err := guest.RunIn(c.from.NS, "ping", "-c", "2", "-i", "0.2", "-W", "5", c.to)
		if err != nil {
			t.Errorf("ping from %s to %s: %v", c.from.NS, c.to, err)
			continue
		}
		if !strings.Contains(out, "ttl=63") {
			t.Errorf("ping from %s to %s did not cross one router (want ttl=63):\n%s", c.from.NS, c.to, out)
		}
	}
}

// TestInNetNS serves TCP in the server namespace and dials it from the
// client namespace over IPv4 and IPv6, both from Go through guest.InNetNS.
func TestInNetNS(t *testing.T) {
	top := labtest.NewTopology(t)
	var ln net.Listener
	err := guest.InNetNS(top.Server.NS, func() (err error) {
		ln, err = net.Listen("tcp", "[::]:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %s", top.Server.NS)
			c.Close()
		}
	}()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	for _, addr := range []netip.Addr{top.Server.IPv4.Addr(), top.Server.IPv6.Addr()} {
		var got []byte
		err := guest.InNetNS(top.Client.NS, func() error {
			c, err := net.Dial("tcp", net.JoinHostPort(addr.String(), port))
			if err != nil {
				return err
			}
			defer c.Close()
			got, err = io.ReadAll(c)
			return err
		})
		if err != nil {
			t.Fatalf("dialing %s from %s: %v", addr, top.Client.NS, err)
		}
		if want := "hello from " + top.Server.NS; string(got) != want {
			t.Errorf("got %q from %s, want %q", got, addr, want)
		}
	}
}

// TestInNetNSRestoresTheThread checks that the thread InNetNS ran on
// enters the namespace and comes back.
func TestInNetNSRestoresTheThread(t *testing.T) {
	top := labtest.NewTopology(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	current := func() string {
		ns, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	before := current()
	var inside string
	if err := guest.InNetNS(top.Router(), func() error { inside = current(); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside == before {
		t.Errorf("inside InNetNS the thread is still in %s", before)
	}
	if after := current(); after != before {
		t.Errorf("after InNetNS the thread is in %s, want %s", after, before)
	}
}

// TestNftablesCountsForwardedPackets loads nf_tables through the kernel's
// module autoloading and counts forwarded packets in the router.
func TestNftablesCountsForwardedPackets(t *testing.T) {
	top := labtest.NewTopology(t)
	ruleset := `table inet smoke {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr 10.10.2.2 icmp type echo-request counter
	}
}`
	if _, err := guest.Run("ip", "netns", "exec", top.Router(), "sh", "-c", "echo '"+ruleset+"' | nft -f -"); err != nil {
		t.Fatal(err)
	}
	if _, err := guest.RunIn(top.Client.NS, "ping", "-c", "3", "-i", "0.2", "-W", "5", top.Server.IPv4.Addr().String()); err != nil {
		t.Fatal(err)
	}
	out, err := guest.RunIn(top.Router(), "nft", "list", "chain", "inet", "smoke", "forward")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "counter packets 3 ") {
		t.Errorf("the router's forward chain did not count 3 echo requests:\n%s", out)
	}
}

func TestKernelLog(t *testing.T) {
	mark, err := guest.MarkLog()
	if err != nil {
		t.Fatal(err)
	}
	const line = "kfw lab smoke: kernel log test"
	if err := guest.Kmsg("%s", line); err != nil {
		t.Fatal(err)
	}
	records, err := guest.LogSince(mark)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(records, func(r guest.LogRecord) bool { return r.Message == line }) {
		t.Errorf("LogSince(mark) = %+v, want the line just written", records)
	}
	if err := guest.CheckLogSince(mark); err != nil {
		t.Error(err)
	}
}

// TestKfwModuleLoadsCleanly loads and unloads kfw.ko when it was built.
func TestKfwModuleLoadsCleanly(t *testing.T) {
	if _, err := os.Stat(guest.ModulePath()); err != nil {
		t.Skipf("kfw.ko not built for this kernel: %v", err)
	}
	mark, err := guest.MarkLog()
	if err != nil {
		t.Fatal(err)
	}
	if err := guest.LoadModule(); err != nil {
		t.Fatal(err)
	}
	if !guest.ModuleLoaded(guest.ModuleName) {
		t.Error("kfw is not live after insmod")
	}
	if _, err := os.Stat("/proc/kfw"); err != nil {
		t.Errorf("kfw is loaded but: %v", err)
	}
	if err := guest.UnloadModule(); err != nil {
		t.Fatal(err)
	}
	if guest.ModuleLoaded(guest.ModuleName) {
		t.Error("kfw is still loaded after rmmod")
	}
	if err := guest.CheckLogSince(mark); err != nil {
		t.Error(err)
	}
	if records, err := guest.LogSince(mark); err == nil {
		var log bytes.Buffer
		for _, r := range records {
			fmt.Fprintln(&log, r.Message)
		}
		t.Logf("kernel log of insmod and rmmod:\n%s", log.String())
	}
}
