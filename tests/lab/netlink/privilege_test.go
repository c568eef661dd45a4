//go:build labvm

package netlink

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/mdlayher/genetlink"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// The test binary doubles as the unprivileged client: run with
// $KFW_NETLINK_HELPER set, TestMain runs that helper instead of the tests.
const helperEnv = "KFW_NETLINK_HELPER"

func TestMain(m *testing.M) { labtest.RunHelperOrTests(m, helperEnv, runHelper) }

// errnoName describes an outcome: "ok", or the errno's name.
func errnoName(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// runHelper does what mode says with this process's credentials, all on
// one locked thread: capabilities are per thread, and the kernel checks
// those of the thread that opens the socket and of the one that sends.
func runHelper(mode string) string {
	runtime.LockOSThread()
	if rest, ok := strings.CutPrefix(mode, "nocap-"); ok {
		if err := dropNetAdmin(); err != nil {
			return "drop CAP_NET_ADMIN: " + err.Error()
		}
		mode = rest
	}
	switch mode {
	case "join":
		return errnoName(joinEvents())
	case "read":
		cl, err := netlinkclient.Dial(abi.GenlName)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer cl.Close()
		_, err1 := cl.Stats(context.Background())
		_, err2 := cl.Rules(context.Background())
		_, err3 := cl.Policies(context.Background())
		return fmt.Sprintf("stats:%s rules:%s policy:%s", errnoName(err1), errnoName(err2), errnoName(err3))
	case "mutate":
		cl, err := netlinkclient.Dial(abi.GenlName)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer cl.Close()
		c := context.Background()
		r := abi.Rule{ID: 77, Action: abi.ActionDrop, Hooks: abi.HookMaskAll}
		return fmt.Sprintf("new:%s del:%s flush:%s policy:%s replace:%s",
			errnoName(cl.AddRule(c, r)), errnoName(cl.DelRule(c, 1)), errnoName(cl.Flush(c)),
			errnoName(cl.SetPolicy(c, abi.Policy{Hook: abi.HookInput, Action: abi.ActionDrop})),
			errnoName(cl.Replace(c, nil, []abi.Rule{r})))
	}
	return "unknown helper mode " + mode
}

// joinEvents joins the kfw events group on a fresh socket.
func joinEvents() error {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	fams, err := c.ListFamilies()
	if err != nil {
		return err
	}
	for _, f := range fams {
		if f.Name != abi.GenlName {
			continue
		}
		for _, g := range f.Groups {
			if g.Name == abi.McastGroupEvents {
				return c.JoinGroup(g.ID)
			}
		}
	}
	return errors.New("no kfw events group")
}

// dropNetAdmin removes CAP_NET_ADMIN from the calling thread.
func dropNetAdmin() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	// CAP_NET_ADMIN (12) lives in the first 32-bit word.
	data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
	data[0].Permitted &^= 1 << unix.CAP_NET_ADMIN
	data[0].Inheritable &^= 1 << unix.CAP_NET_ADMIN
	return unix.Capset(&hdr, &data[0])
}

// TestPrivileges checks who may do what: a user and root without
// CAP_NET_ADMIN may read (stats, rules, policies) but neither join the
// events group nor change anything (EPERM); root may do both.
func TestPrivileges(t *testing.T) {
	labtest.LoadModule(t)
	writeRules(t, "add id=1 action=accept")
	bin := labtest.CopyTestBinary(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	before := snapshot(t)

	const refused = "new:EPERM del:EPERM flush:EPERM policy:EPERM replace:EPERM"
	for _, who := range []struct {
		name string
		mode string
		cred *syscall.Credential
	}{
		{"user nobody", "", nobody},
		{"root without CAP_NET_ADMIN", "nocap-", nil},
	} {
		if got := labtest.RunHelper(t, bin, helperEnv, who.mode+"join", who.cred); got != "EPERM" {
			t.Errorf("%s joining events: %s, want EPERM", who.name, got)
		}
		if got := labtest.RunHelper(t, bin, helperEnv, who.mode+"mutate", who.cred); got != refused {
			t.Errorf("%s changing the table: %s, want %s", who.name, got, refused)
		}
		if got := labtest.RunHelper(t, bin, helperEnv, who.mode+"read", who.cred); got != "stats:ok rules:ok policy:ok" {
			t.Errorf("%s reading: %s", who.name, got)
		}
	}
	if after := snapshot(t); after != before {
		t.Fatalf("unprivileged commands changed the table:\n%+v\n->\n%+v", before, after)
	}
	if st := labtest.ReadProcStats(t); st.EventsGenerated != 0 {
		t.Errorf("events generated with no privileged listener: %+v", st)
	}

	if got := labtest.RunHelper(t, bin, helperEnv, "join", nil); got != "ok" {
		t.Errorf("root joining events: %s, want ok", got)
	}
	if got := labtest.RunHelper(t, bin, helperEnv, "mutate", nil); got != "new:ok del:ok flush:ok policy:ok replace:ok" {
		t.Errorf("root changing the table: %s", got)
	}
	if g := labtest.ReadProcStats(t).Generation; g != before.generation+5 {
		t.Errorf("generation %d after five commands from %d", g, before.generation)
	}
	// The helper's policy drops input everywhere: undo it.
	writeRules(t, "policy hook=input action=accept")
}
