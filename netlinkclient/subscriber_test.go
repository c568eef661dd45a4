package netlinkclient

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// harness runs a Subscriber against a fakeKernel and lets the test follow
// every Handler call in order.
type harness struct {
	t      *testing.T
	k      *fakeKernel
	rec    *recorder
	ticks  chan time.Time
	polled chan struct{} // a tick's resolve is done
	conn   *fakeConn     // the latest listening socket
}

func startSubscriber(t *testing.T, k *fakeKernel) *harness {
	t.Helper()
	h := &harness{t: t, k: k, rec: &recorder{notify: make(chan string, 256)},
		ticks: make(chan time.Time), polled: make(chan struct{})}
	s := k.subscriber(h.ticks)
	s.afterTick = func() { h.polled <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, h.rec) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	})
	h.conn = <-k.dialed
	return h
}

// expect consumes the next Handler call and checks that it starts with
// prefix.
func (h *harness) expect(prefix string) string {
	h.t.Helper()
	got := <-h.rec.notify
	if !strings.HasPrefix(got, prefix) {
		h.t.Fatalf("next handler call %q, want %q...", got, prefix)
	}
	return got
}

// poll makes the Subscriber poll and waits until the poll is done: a tick
// channel without buffer only takes the second tick once the Subscriber is
// back in its loop.
// poll makes the subscriber resolve the family and returns when it has:
// nothing of the poll overlaps what the test does next.
func (h *harness) poll() {
	h.ticks <- time.Now()
	<-h.polled
}

func (h *harness) lastState() State {
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	return h.rec.states[len(h.rec.states)-1]
}

func (h *harness) quiet() {
	h.t.Helper()
	select {
	case got := <-h.rec.notify:
		h.t.Fatalf("unexpected handler call %q", got)
	default:
	}
}

func TestSubscriberModuleAbsentThenLoaded(t *testing.T) {
	k := newFakeKernel()
	h := startSubscriber(t, k)
	h.expect("state subscribed=false family=0 resubscribed=false err=")
	if err := h.lastState().Err; !errors.Is(err, ErrModuleNotLoaded) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state error %v is not ErrModuleNotLoaded", err)
	}

	f := kfwFamily(30, 5)
	k.register(f, true)
	h.expect("state subscribed=true family=30 resubscribed=false err=<nil>")
	// nlctrl's notify group is joined before the first resolve.
	if got := h.conn.joined(); !slices.Equal(got, []uint32{ctrlNotifyGroup, 5}) {
		t.Errorf("joined %v, want [16 5]", got)
	}

	k.events(f, batch{instance: 1, cpu: 0, events: seqEvents(0, 1)})
	h.expect("event 0/0")
	h.expect("event 0/1")
	h.quiet()
}

func TestSubscriberReloadWithNotifications(t *testing.T) {
	k := newFakeKernel()
	f1 := kfwFamily(30, 5)
	k.register(f1, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true family=30 resubscribed=false")
	k.events(f1, batch{instance: 1, cpu: 0, events: seqEvents(0, 1, 2)})
	h.expect("event 0/0")
	h.expect("event 0/1")
	h.expect("event 0/2")

	k.unregister(abi.GenlName, true)
	h.expect("state subscribed=false family=0")
	if err := h.lastState().Err; !errors.Is(err, ErrModuleNotLoaded) {
		t.Errorf("state error %v, want ErrModuleNotLoaded", err)
	}

	// The new registration has a new family id; the group id is reused,
	// as the kernel's first-free allocation usually does.
	f2 := kfwFamily(31, 5)
	k.register(f2, true)
	h.expect("state subscribed=true family=31 resubscribed=true")
	// Sequences restart with the new instance: no loss.
	k.events(f2, batch{instance: 2, cpu: 0, events: seqEvents(0, 1)})
	h.expect("event 0/0")
	h.expect("event 0/1")
	// A late batch under the old family id is not decoded.
	h.conn.deliver(delivery{msgs: []netlink.Message{genlMessage(f1.ID, abi.CmdEvents, batch{instance: 1, cpu: 0, events: seqEvents(9)}.encode())}})
	k.events(f2, batch{instance: 2, cpu: 0, events: seqEvents(2)})
	h.expect("event 0/2")
	h.quiet()
	if lost := h.rec.totalLost(); lost != 0 {
		t.Errorf("lost %d across a reload", lost)
	}
	if got := h.conn.joined(); !slices.Equal(got, []uint32{ctrlNotifyGroup, 5, 5}) {
		t.Errorf("joined %v", got)
	}
}

// Notifications can be lost (an overrun drops them like anything else): the
// poll must notice a reload on its own.
func TestSubscriberReloadNoticedByPoll(t *testing.T) {
	k := newFakeKernel()
	f1 := kfwFamily(30, 5)
	k.register(f1, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true family=30 resubscribed=false")

	// A poll with nothing new says nothing.
	h.poll()
	h.quiet()

	// Reload with a new family id.
	k.unregister(abi.GenlName, false)
	f2 := kfwFamily(40, 5)
	k.register(f2, false)
	h.poll()
	h.expect("state subscribed=true family=40 resubscribed=true")

	// Reload with the same ids: only the dropped membership shows it.
	k.unregister(abi.GenlName, false)
	k.register(f2, false)
	h.poll()
	h.expect("state subscribed=true family=40 resubscribed=true")
	k.events(f2, batch{instance: 3, cpu: 1, events: seqEvents(0)})
	h.expect("event 1/0")

	// Gone for good: the poll reports it once.
	k.unregister(abi.GenlName, false)
	h.poll()
	h.expect("state subscribed=false family=0")
	h.poll()
	h.quiet()
}

func TestSubscriberOverrun(t *testing.T) {
	k := newFakeKernel()
	f := kfwFamily(30, 5)
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true")
	k.events(f, batch{instance: 7, cpu: 0, events: seqEvents(0, 1)})
	h.expect("event 0/0")
	h.expect("event 0/1")

	h.conn.deliver(delivery{err: unix.ENOBUFS})
	h.expect("overrun")
	// The socket keeps being read; the kernel's sync batch tells how many
	// were dropped.
	k.events(f, batch{instance: 7, cpu: 0, nextSeq: u64p(10)})
	h.expect("loss 0/8")
	k.events(f, batch{instance: 7, cpu: 0, events: seqEvents(10)})
	h.expect("event 0/10")
	h.quiet()
}

// TestSubscriberCountsAFreshInstanceFromZero: joined before the module
// generated its first event, the Subscriber owns every sequence number of
// that instance, so a CPU whose first batches overflowed the socket shows
// its loss, learnt from a sync batch. A later instance the Subscriber
// joins after others' events starts at the first number seen again.
func TestSubscriberCountsAFreshInstanceFromZero(t *testing.T) {
	k := newFakeKernel()
	k.stats = &abi.ModuleStats{Instance: 7}
	f := kfwFamily(30, 5)
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true")
	h.conn.deliver(delivery{err: unix.ENOBUFS})
	h.expect("overrun")
	k.events(f, batch{instance: 7, cpu: 1, nextSeq: u64p(5)})
	h.expect("loss 1/5")
	k.events(f, batch{instance: 7, cpu: 0, events: seqEvents(2)})
	h.expect("loss 0/2")
	h.expect("event 0/2")

	k.mu.Lock()
	k.stats = &abi.ModuleStats{Instance: 8, EventsGenerated: 40}
	k.mu.Unlock()
	k.unregister(abi.GenlName, true)
	h.expect("state subscribed=false")
	f2 := kfwFamily(31, 5)
	k.register(f2, true)
	h.expect("state subscribed=true family=31 resubscribed=true")
	k.events(f2, batch{instance: 8, cpu: 1, nextSeq: u64p(20)})
	k.events(f2, batch{instance: 8, cpu: 1, events: seqEvents(21)})
	h.expect("loss 1/1")
	h.expect("event 1/21")
	h.quiet()
}

func TestSubscriberBadMessages(t *testing.T) {
	k := newFakeKernel()
	f := kfwFamily(30, 5)
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true")

	// No room for the genetlink header: Receive itself fails.
	h.conn.deliver(delivery{msgs: []netlink.Message{{Header: netlink.Header{Type: 30}, Data: []byte{9, 1}}}})
	h.expect("decode error")
	// A batch without instance.
	h.conn.deliver(delivery{msgs: []netlink.Message{genlMessage(30, abi.CmdEvents, rawAttr(abi.AttrCPU, u32bytes(0)))}})
	h.expect("decode error")
	// A command of ours this version does not know, and another family:
	// both ignored.
	h.conn.deliver(delivery{msgs: []netlink.Message{genlMessage(30, 77, nil), genlMessage(99, abi.CmdEvents, nil)}})
	// A garbled nlctrl notification: reported, then the family resolved.
	h.conn.deliver(delivery{msgs: []netlink.Message{genlMessage(ctrlFamilyID, unix.CTRL_CMD_NEWFAMILY, []byte{1, 0, 0})}})
	h.expect("decode error")
	k.events(f, batch{instance: 1, cpu: 0, events: seqEvents(0)})
	h.expect("event 0/0")
	h.quiet()
}

func TestSubscriberReopensFailedSocket(t *testing.T) {
	k := newFakeKernel()
	f := kfwFamily(30, 5)
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=true family=30 resubscribed=false")

	first := h.conn
	first.deliver(delivery{err: os.NewSyscallError("recvmsg", unix.EIO)})
	h.expect("state subscribed=false family=0 resubscribed=false err=receive: ")
	h.conn = <-k.dialed
	h.expect("state subscribed=true family=30 resubscribed=true")
	if !first.isClosed() {
		t.Error("the failed socket was not closed")
	}
	k.events(f, batch{instance: 1, cpu: 0, events: seqEvents(4)})
	h.expect("event 0/4")
	h.quiet()
}

func TestSubscriberJoinRefused(t *testing.T) {
	k := newFakeKernel()
	k.joinErr = unix.EPERM
	k.register(kfwFamily(30, 5), false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=false")
	if err := h.lastState().Err; !errors.Is(err, unix.EPERM) || !errors.Is(err, os.ErrPermission) {
		t.Errorf("state error %v, want EPERM", err)
	}
	// Same failure on the next poll: not reported again.
	h.poll()
	h.quiet()

	k.mu.Lock()
	k.joinErr = nil
	k.mu.Unlock()
	h.poll()
	h.expect("state subscribed=true family=30 resubscribed=false")
}

func TestSubscriberRefusesUnknownVersion(t *testing.T) {
	k := newFakeKernel()
	f := kfwFamily(30, 5)
	f.Version = abi.GenlVersion + 1
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect("state subscribed=false family=0 resubscribed=false err=generic netlink family \"kfw\" has version 2")
	if got := h.conn.joined(); !slices.Equal(got, []uint32{ctrlNotifyGroup}) {
		t.Errorf("joined %v despite the version", got)
	}
}

func TestSubscriberFamilyWithoutEventsGroup(t *testing.T) {
	k := newFakeKernel()
	f := kfwFamily(30, 5)
	f.Groups = nil
	k.register(f, false)
	h := startSubscriber(t, k)
	h.expect(`state subscribed=false family=0 resubscribed=false err=generic netlink family "kfw" has no "events" group`)
}

func TestSubscriberListFailure(t *testing.T) {
	k := newFakeKernel()
	k.listErr = errFakeList
	h := startSubscriber(t, k)
	h.expect("state subscribed=false family=0 resubscribed=false err=list generic netlink families")

	// While subscribed, a failed poll changes nothing.
	k.mu.Lock()
	k.listErr = nil
	k.mu.Unlock()
	k.register(kfwFamily(30, 5), false)
	h.poll()
	h.expect("state subscribed=true family=30")
	k.mu.Lock()
	k.listErr = errFakeList
	k.mu.Unlock()
	h.poll()
	h.quiet()
}

func TestSubscriberCancelEndsRun(t *testing.T) {
	k := newFakeKernel()
	k.register(kfwFamily(30, 5), false)
	rec := &recorder{notify: make(chan string, 16)}
	s := k.subscriber(make(chan time.Time))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()
	conn := <-k.dialed
	<-rec.notify // subscribed
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
	if !conn.isClosed() {
		t.Error("socket not closed")
	}
}

func TestSubscriberCancelWhileModuleAbsent(t *testing.T) {
	k := newFakeKernel()
	s := k.subscriber(make(chan time.Time))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx, &recorder{}); err != nil {
		t.Errorf("Run returned %v", err)
	}
}

func TestSubscriberNeedsHandler(t *testing.T) {
	if err := NewSubscriber(SubscriberConfig{}).Run(context.Background(), nil); err == nil {
		t.Error("Run without a handler succeeded")
	}
}

func TestNewSubscriberDefaults(t *testing.T) {
	s := NewSubscriber(SubscriberConfig{})
	if s.family != abi.GenlName || s.readBuffer != DefaultReadBuffer || s.log == nil {
		t.Errorf("defaults: family %q, buffer %d, logger %v", s.family, s.readBuffer, s.log)
	}
}

func TestReceiveErrorKind(t *testing.T) {
	tests := []struct {
		err  error
		want receiveErrKind
	}{
		{&netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}, errOverrun},
		{&netlink.OpError{Op: "receive", Err: unix.ENOBUFS}, errOverrun},
		{&netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", unix.EBADF)}, errFatal},
		{&netlink.OpError{Op: "receive", Err: os.ErrClosed}, errFatal},
		{&netlink.OpError{Op: "receive", Err: errors.New("message truncated")}, errMessage},
	}
	for _, tt := range tests {
		if got := receiveErrorKind(tt.err); got != tt.want {
			t.Errorf("receiveErrorKind(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
