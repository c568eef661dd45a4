//go:build linux

package netlinkclient

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests use real generic netlink sockets of the machine running them,
// under a family name no kernel registers; they need no module and no
// privilege. The kfw module itself is exercised by the in-VM suites.

const absentFamily = "kfw-test-absent"

func dialOrSkip(t *testing.T) eventConn {
	t.Helper()
	c, err := dialListenConn(1<<20, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Skipf("no generic netlink here: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRealMembershipList(t *testing.T) {
	c := dialOrSkip(t)
	ml := c.(membershipLister)
	if member, err := ml.IsMember(ctrlNotifyGroup); err != nil || member {
		t.Fatalf("before joining: member %v, %v", member, err)
	}
	if err := c.JoinGroup(ctrlNotifyGroup); err != nil {
		t.Fatal(err)
	}
	if member, err := ml.IsMember(ctrlNotifyGroup); err != nil || !member {
		t.Errorf("after joining: member %v, %v", member, err)
	}
	if member, err := ml.IsMember(ctrlNotifyGroup + 1); err != nil || member {
		t.Errorf("group 17: member %v, %v", member, err)
	}
	if _, err := ml.IsMember(5000); err == nil {
		t.Error("group beyond the bitmap: no error")
	}
}

// The kernel tells kfw about a full buffer only on sockets that ask for it.
func TestRealBroadcastError(t *testing.T) {
	c := dialOrSkip(t)
	rc, err := c.(listenConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_BROADCAST_ERROR)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil || v != 1 {
		t.Errorf("NETLINK_BROADCAST_ERROR = %d, %v; want 1", v, serr)
	}
}

func TestRealListFamilies(t *testing.T) {
	dialOrSkip(t)
	fams, err := listFamilies(dialControlConn)
	if err != nil {
		t.Fatal(err)
	}
	ctrl, ok := findFamily(fams, "nlctrl")
	if !ok || ctrl.ID != ctrlFamilyID {
		t.Fatalf("nlctrl: %+v, %v", ctrl, ok)
	}
	notify := false
	for _, g := range ctrl.Groups {
		notify = notify || (g.Name == "notify" && g.ID == ctrlNotifyGroup)
	}
	if !notify {
		t.Errorf("nlctrl groups %+v lack notify/%d", ctrl.Groups, ctrlNotifyGroup)
	}
}

func TestRealDialAbsentFamily(t *testing.T) {
	dialOrSkip(t)
	_, err := Dial(absentFamily)
	if !errors.Is(err, ErrModuleNotLoaded) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want ErrModuleNotLoaded", err)
	}
}

// The real Subscriber, with nothing to subscribe to: it reports the family
// missing, and cancelling unblocks its Receive through Close.
func TestRealSubscriberAbsentFamily(t *testing.T) {
	dialOrSkip(t)
	rec := &recorder{notify: make(chan string, 16)}
	s := NewSubscriber(SubscriberConfig{Family: absentFamily})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	<-rec.notify
	rec.mu.Lock()
	st := rec.states[0]
	rec.mu.Unlock()
	if st.Subscribed || !errors.Is(st.Err, ErrModuleNotLoaded) {
		t.Errorf("state %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
}
