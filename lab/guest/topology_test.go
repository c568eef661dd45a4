package guest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStandardTopologyIsConsistent(t *testing.T) {
	top := StandardTopology()
	if got := strings.Join(top.Namespaces(), " "); got != "kfwc kfwr kfws" {
		t.Errorf("namespaces %s, want kfwc kfwr kfws", got)
	}
	for _, l := range [][2]Endpoint{{top.Client, top.RouterClient}, {top.Server, top.RouterServer}} {
		for _, p := range [][2]string{{l[0].IPv4.String(), l[1].IPv4.String()}, {l[0].IPv6.String(), l[1].IPv6.String()}} {
			a, b := l[0].IPv4, l[1].IPv4
			if strings.Contains(p[0], ":") {
				a, b = l[0].IPv6, l[1].IPv6
			}
			if a.Masked() != b.Masked() || a.Addr() == b.Addr() {
				t.Errorf("link %s-%s: %s and %s are not two addresses of one subnet", l[0].NS, l[1].NS, a, b)
			}
		}
	}
	if top.Client.IPv4.Masked() == top.Server.IPv4.Masked() || top.Client.IPv6.Masked() == top.Server.IPv6.Masked() {
		t.Error("client and server share a subnet: traffic would not need the router")
	}
}

func TestCreateRejectsASplitRouter(t *testing.T) {
	top := StandardTopology()
	top.RouterServer.NS = "elsewhere"
	if err := top.Create(); err == nil || !strings.Contains(err.Error(), "two namespaces") {
		t.Errorf("Create with a split router: %v", err)
	}
}

// hostTopology returns the standard topology under names unique to this
// test process, or skips when this host cannot make network namespaces.
func hostTopology(t *testing.T) Topology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	for _, tool := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	probe := fmt.Sprintf("kfwprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		t.Skipf("cannot create network namespaces here: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "delete", probe).Run()
	top := StandardTopology()
	for _, e := range []*Endpoint{&top.Client, &top.RouterClient, &top.RouterServer, &top.Server} {
		e.NS = fmt.Sprintf("%s-%d", e.NS, os.Getpid())
	}
	return top
}

// TestTopologyOnTheHost builds the topology in the host's kernel (the lab's
// smoke suite does the same in each lab kernel) and pings across it.
func TestTopologyOnTheHost(t *testing.T) {
	top := hostTopology(t)
	if err := top.Create(); err != nil {
		t.Fatal(err)
	}
	destroyed := false
	defer func() {
		if !destroyed {
			top.Destroy()
		}
	}()
	for _, c := range []struct{ from, to string }{
		{top.Client.NS, top.Server.IPv4.Addr().String()},
		{top.Client.NS, top.Server.IPv6.Addr().String()},
		{top.Server.NS, top.Client.IPv6.Addr().String()},
	} {
		out, err := RunIn(c.from, "ping", "-c", "1", "-W", "5", c.to)
		if err != nil {
			t.Errorf("ping %s from %s: %v", c.to, c.from, err)
		} else if !strings.Contains(out, "ttl=63") {
			t.Errorf("ping %s from %s did not cross the router:\n%s", c.to, c.from, out)
		}
	}
	if err := top.Destroy(); err != nil {
		t.Fatal(err)
	}
	destroyed = true
	for _, ns := range top.Namespaces() {
		if _, err := os.Stat(filepath.Join(netnsDir, ns)); !os.IsNotExist(err) {
			t.Errorf("namespace %s remains after Destroy: %v", ns, err)
		}
	}
}

func TestSysctlAndInNetNSOnTheHost(t *testing.T) {
	top := hostTopology(t)
	ns := top.Router()
	if err := AddNetNS(ns); err != nil {
		t.Fatal(err)
	}
	defer DeleteNetNS(ns)
	if err := Sysctl(ns, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	var inside []byte
	err := InNetNS(ns, func() (err error) {
		inside, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	})
	if err != nil || strings.TrimSpace(string(inside)) != "1" {
		t.Errorf("ip_forward inside %s = %q, %v; want 1", ns, inside, err)
	}
	if out, err := RunIn(ns, "cat", "/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("ip netns exec sees ip_forward %q, %v; want 1", out, err)
	}
	if err := InNetNS("kfw-no-such-namespace", func() error { return nil }); err == nil {
		t.Error("InNetNS into a missing namespace succeeded")
	}
}
