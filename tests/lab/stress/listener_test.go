//go:build labvm

package stress

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// instCPU names one CPU's sequence of one module instance.
type instCPU struct {
	instance uint64
	cpu      uint32
}

// recorder is a netlinkclient.Handler that counts what a Subscriber
// reports, by module instance, and checks that each CPU's events arrive in
// sequence order. It keeps counts, not events: the tests see tens of
// thousands.
type recorder struct {
	mu            sync.Mutex
	received      map[uint64]uint64  // events, by instance
	receivedOnCPU map[instCPU]uint64 // events, by instance and CPU
	lastSeq       map[instCPU]uint64
	lost          map[uint64]uint64 // by instance
	overruns      int
	problems      []string // decode errors and out-of-order events
	subscriptions int      // State reports that said subscribed
	state         netlinkclient.State
}

func newRecorder() *recorder {
	return &recorder{
		received:      map[uint64]uint64{},
		receivedOnCPU: map[instCPU]uint64{},
		lastSeq:       map[instCPU]uint64{},
		lost:          map[uint64]uint64{},
	}
}

func (r *recorder) HandleEvent(ev *netlinkclient.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := instCPU{ev.Instance, ev.CPU}
	if last, ok := r.lastSeq[k]; ok && ev.Seq <= last {
		r.problems = append(r.problems, fmt.Sprintf("instance %016x cpu %d: seq %d after %d", ev.Instance, ev.CPU, ev.Seq, last))
	}
	r.lastSeq[k] = ev.Seq
	r.received[ev.Instance]++
	r.receivedOnCPU[k]++
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
	r.problems = append(r.problems, "decode error: "+err.Error())
	r.mu.Unlock()
}

func (r *recorder) HandleState(s netlinkclient.State) {
	r.mu.Lock()
	if s.Subscribed {
		r.subscriptions++
	}
	r.state = s
	r.mu.Unlock()
}

// tally returns what the recorder has of one instance.
func (r *recorder) tally(instance uint64) (received, lost uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received[instance], r.lost[instance]
}

// eventsOnCPU returns how many events of instance came from cpu.
func (r *recorder) eventsOnCPU(instance uint64, cpu int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.receivedOnCPU[instCPU{instance, uint32(cpu)}]
}

// subscription returns the number of subscriptions so far and the last
// state reported.
func (r *recorder) subscription() (int, netlinkclient.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subscriptions, r.state
}

// checkProblems fails the test on decode errors or events out of order.
func (r *recorder) checkProblems(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error("listener: " + p)
	}
	r.problems = nil
}

// waitSubscriptions waits until the recorder saw n subscriptions and is
// subscribed now.
func (r *recorder) waitSubscriptions(t *testing.T, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("subscription %d of the listener", n), func() (bool, string) {
		got, last := r.subscription()
		return got >= n && last.Subscribed, fmt.Sprintf("%d subscriptions, last state %+v", got, last)
	})
}

// subscribe runs a Subscriber for the test, whether or not the module is
// loaded: it subscribes whenever the family appears.
func subscribe(t *testing.T) *recorder {
	t.Helper()
	rec := newRecorder()
	labtest.RunSubscriber(t, "", netlinkclient.SubscriberConfig{}, rec)
	return rec
}

// checkAccounting waits until the listener has received or counted as
// lost every event instance generated, and fails if it counts more: the
// exact-accounting promise of docs/ABI.md. The listener must have been
// subscribed since before the instance's first event, and the kernel must
// be quiet (no traffic). It returns the generated count.
func checkAccounting(t *testing.T, rec *recorder, instance uint64) uint64 {
	t.Helper()
	var generated, received, lost uint64
	waitFor(t, "received + lost to reach the events generated", func() (bool, string) {
		generated = readStats(t).EventsGenerated
		received, lost = rec.tally(instance)
		return received+lost >= generated, fmt.Sprintf("generated %d, received %d, lost %d", generated, received, lost)
	})
	generated = readStats(t).EventsGenerated
	received, lost = rec.tally(instance)
	if received+lost != generated {
		t.Errorf("instance %016x: received %d + lost %d = %d events, the kernel generated %d",
			instance, received, lost, received+lost, generated)
	}
	rec.checkProblems(t)
	return generated
}
