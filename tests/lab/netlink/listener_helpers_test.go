//go:build labvm

package netlink

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// recorder is a netlinkclient.Handler that keeps a copy of everything a
// Subscriber reports. pause makes HandleEvent block, which stops the
// Subscriber reading its socket: the kernel then overflows it.
type recorder struct {
	mu       sync.Mutex
	events   []netlinkclient.Event
	lost     map[uint64]uint64 // by instance
	overruns int
	errs     []error
	states   []netlinkclient.State
	gate     chan struct{} // non-nil: HandleEvent waits for it to close
}

func newRecorder() *recorder { return &recorder{lost: make(map[uint64]uint64)} }

func (r *recorder) HandleEvent(ev *netlinkclient.Event) {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	if gate != nil {
		<-gate
	}
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
}

func (r *recorder) HandleLoss(instance uint64, cpu uint32, n uint64) {
	r.mu.Lock()
	r.lost[instance] += n
	r.mu.Unlock()
}

func (r *recorder) HandleOverrun() {
	r.mu.Lock()
	r.overruns++
	r.mu.Unlock()
}

func (r *recorder) HandleDecodeError(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *recorder) HandleState(s netlinkclient.State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
}

// pause makes the next HandleEvent block until resume.
func (r *recorder) pause() {
	r.mu.Lock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
	r.mu.Unlock()
}

func (r *recorder) resume() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

// snapshot returns copies of the events matching keep (nil: all).
func (r *recorder) eventsWhere(keep func(*netlinkclient.Event) bool) []netlinkclient.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netlinkclient.Event
	for i := range r.events {
		if keep == nil || keep(&r.events[i]) {
			out = append(out, r.events[i])
		}
	}
	return out
}

// tally is what a listener has seen of one module instance.
type tally struct {
	received uint64
	lost     uint64
	overruns int
	errs     []error
}

func (r *recorder) tally(instance uint64) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	tl := tally{lost: r.lost[instance], overruns: r.overruns, errs: append([]error(nil), r.errs...)}
	for i := range r.events {
		if r.events[i].Instance == instance {
			tl.received++
		}
	}
	return tl
}

// subscriptions counts the State reports that said subscribed.
func (r *recorder) subscriptions() (n int, last netlinkclient.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.states {
		if s.Subscribed {
			n++
		}
	}
	if len(r.states) > 0 {
		last = r.states[len(r.states)-1]
	}
	return n, last
}

// waitSubscriptions waits until the recorder saw n subscriptions and is
// subscribed now.
func (r *recorder) waitSubscriptions(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("subscription %d", n), func() (bool, string) {
		got, last := r.subscriptions()
		return got >= n && last.Subscribed, fmt.Sprintf("%d subscriptions, last state %+v", got, last)
	})
}

// waitEvents waits until at least n events match keep.
func (r *recorder) waitEvents(t *testing.T, what string, n int, keep func(*netlinkclient.Event) bool) []netlinkclient.Event {
	t.Helper()
	var evs []netlinkclient.Event
	waitFor(t, what, func() (bool, string) {
		evs = r.eventsWhere(keep)
		return len(evs) >= n, fmt.Sprintf("%d of %d events", len(evs), n)
	})
	return evs
}

// subscribe runs a Subscriber with cfg for the test and waits until it has
// joined the events group.
func subscribe(t *testing.T, cfg netlinkclient.SubscriberConfig) *recorder {
	t.Helper()
	return subscribeIn(t, "", cfg)
}

// subscribeIn is subscribe in network namespace ns ("": the test's): Run
// opens its sockets on its own goroutine, which stays in ns.
func subscribeIn(t *testing.T, ns string, cfg netlinkclient.SubscriberConfig) *recorder {
	t.Helper()
	rec := newRecorder()
	labtest.RunSubscriber(t, ns, cfg, rec)
	t.Cleanup(rec.resume) // before the Subscriber stops: it may be blocked in HandleEvent
	rec.waitSubscriptions(t, 1)
	return rec
}

// ofRule selects the events of one rule id.
func ofRule(id uint32) func(*netlinkclient.Event) bool {
	return func(ev *netlinkclient.Event) bool { return ev.Rule == id }
}

// onCPUOf selects the events of one instance and CPU.
func onCPUOf(instance uint64, cpu int) func(*netlinkclient.Event) bool {
	return func(ev *netlinkclient.Event) bool { return ev.Instance == instance && ev.CPU == uint32(cpu) }
}

// checkAccounting waits until what the listener received and counted lost
// of instance adds up to the events the kernel generated since base, and
// fails if it overshoots: the exact-accounting promise of docs/ABI.md.
// base is the state at a point where the listener had already received
// every event generated so far.
func checkAccounting(t *testing.T, rec *recorder, instance uint64, base tally, baseGenerated uint64) (generated uint64, tl tally) {
	t.Helper()
	waitFor(t, "received + lost to reach the generated events", func() (bool, string) {
		generated = labtest.ReadProcStats(t).EventsGenerated - baseGenerated
		tl = rec.tally(instance)
		got := tl.received - base.received + tl.lost - base.lost
		return got >= generated, fmt.Sprintf("generated %d, received %d, lost %d",
			generated, tl.received-base.received, tl.lost-base.lost)
	})
	// The kernel is quiet: nothing more can arrive.
	generated = labtest.ReadProcStats(t).EventsGenerated - baseGenerated
	tl = rec.tally(instance)
	if got := tl.received - base.received + tl.lost - base.lost; got != generated {
		t.Errorf("received %d + lost %d = %d, kernel generated %d", tl.received-base.received,
			tl.lost-base.lost, got, generated)
	}
	if len(tl.errs) != 0 {
		t.Errorf("decode errors: %v", tl.errs)
	}
	return generated, tl
}

// checkSequences fails unless every CPU's events of instance arrived in
// strictly increasing sequence order.
func checkSequences(t *testing.T, rec *recorder, instance uint64) {
	t.Helper()
	last := map[uint32]uint64{}
	seen := map[uint32]bool{}
	for _, ev := range rec.eventsWhere(func(ev *netlinkclient.Event) bool { return ev.Instance == instance }) {
		if seen[ev.CPU] && ev.Seq <= last[ev.CPU] {
			t.Errorf("cpu %d: seq %d after %d", ev.CPU, ev.Seq, last[ev.CPU])
		}
		seen[ev.CPU], last[ev.CPU] = true, ev.Seq
	}
}

// eventString describes an event for failure messages.
func eventString(ev *netlinkclient.Event) string {
	return fmt.Sprintf("%s rule=%d %s %s proto=%d %s:%d -> %s:%d iif=%d oif=%d len=%d cpu=%d seq=%d supp=%d",
		ev.Type, ev.Rule, abi.FamilyName(ev.Family), ev.Hook, ev.Proto, ev.Src, ev.Sport, ev.Dst, ev.Dport,
		ev.Iif, ev.Oif, ev.Len, ev.CPU, ev.Seq, ev.Suppressed)
}
