package netlinkclient

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/mdlayher/netlink"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// Test helpers: an encoder that writes batches the way docs/ABI.md says the
// kernel does, and a Handler that records what it is told.

// encodeEvent appends ev's attributes; optional ones only when set, as the
// kernel leaves them out.
func encodeEvent(ae *netlink.AttributeEncoder, ev Event) {
	ae.Nested(abi.AttrEvent, func(n *netlink.AttributeEncoder) error {
		n.Uint8(abi.EventAttrType, uint8(ev.Type))
		n.Uint32(abi.EventAttrRule, ev.Rule)
		n.Uint8(abi.EventAttrFamily, ev.Family)
		n.Uint8(abi.EventAttrHook, uint8(ev.Hook))
		n.Uint8(abi.EventAttrProto, ev.Proto)
		if ev.Src.IsValid() {
			n.Bytes(abi.EventAttrSaddr, ev.Src.AsSlice())
		}
		if ev.Dst.IsValid() {
			n.Bytes(abi.EventAttrDaddr, ev.Dst.AsSlice())
		}
		if ev.Sport != 0 || ev.Dport != 0 {
			n.Uint16(abi.EventAttrSport, ev.Sport)
			n.Uint16(abi.EventAttrDport, ev.Dport)
		}
		if ev.Iif != 0 {
			n.Uint32(abi.EventAttrIif, ev.Iif)
		}
		if ev.Oif != 0 {
			n.Uint32(abi.EventAttrOif, ev.Oif)
		}
		n.Uint32(abi.EventAttrLen, ev.Len)
		n.Uint64(abi.EventAttrTstamp, uint64(ev.Timestamp))
		n.Uint64(abi.EventAttrSeq, ev.Seq)
		n.Uint32(abi.EventAttrSuppressed, ev.Suppressed)
		return nil
	})
}

// batch describes one KFW_CMD_EVENTS message.
type batch struct {
	instance uint64
	cpu      uint32
	events   []Event
	nextSeq  *uint64
}

func (b batch) encode() []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint64(abi.AttrInstance, b.instance)
	ae.Uint32(abi.AttrCPU, b.cpu)
	for _, ev := range b.events {
		encodeEvent(ae, ev)
	}
	if b.nextSeq != nil {
		ae.Uint64(abi.AttrNextSeq, *b.nextSeq)
	}
	data, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return data
}

func u64p(v uint64) *uint64 { return &v }

// seqEvents returns simple IPv4 drop events with the given sequence numbers.
func seqEvents(seqs ...uint64) []Event {
	evs := make([]Event, len(seqs))
	for i, s := range seqs {
		evs[i] = Event{
			Type: abi.EventDrop, Rule: 20, Family: abi.FamilyIPv4, Hook: abi.HookInput, Proto: 6,
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
			Sport: 40000, Dport: 22, Iif: 2, Len: 60, Timestamp: 1700000000000000000 + int64(s), Seq: s,
		}
	}
	return evs
}

type loss struct {
	instance uint64
	cpu      uint32
	n        uint64
}

// recorder is a Handler that keeps copies of everything; notify, when set,
// receives a short description of every call.
type recorder struct {
	mu        sync.Mutex
	events    []Event
	losses    []loss
	overruns  int
	decodeErr []error
	states    []State
	notify    chan string
}

func (r *recorder) send(what string) {
	if r.notify != nil {
		r.notify <- what
	}
}

func (r *recorder) HandleEvent(ev *Event) {
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
	r.send(fmt.Sprintf("event %d/%d", ev.CPU, ev.Seq))
}

func (r *recorder) HandleLoss(instance uint64, cpu uint32, n uint64) {
	r.mu.Lock()
	r.losses = append(r.losses, loss{instance, cpu, n})
	r.mu.Unlock()
	r.send(fmt.Sprintf("loss %d/%d", cpu, n))
}

func (r *recorder) HandleOverrun() {
	r.mu.Lock()
	r.overruns++
	r.mu.Unlock()
	r.send("overrun")
}

func (r *recorder) HandleDecodeError(err error) {
	r.mu.Lock()
	r.decodeErr = append(r.decodeErr, err)
	r.mu.Unlock()
	r.send("decode error")
}

func (r *recorder) HandleState(s State) {
	r.mu.Lock()
	r.states = append(r.states, s)
	r.mu.Unlock()
	r.send(fmt.Sprintf("state subscribed=%v family=%d resubscribed=%v err=%v", s.Subscribed, s.FamilyID, s.Resubscribed, s.Err))
}

func (r *recorder) totalLost() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n uint64
	for _, l := range r.losses {
		n += l.n
	}
	return n
}

func (r *recorder) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := make([]uint64, len(r.events))
	for i, ev := range r.events {
		s[i] = ev.Seq
	}
	return s
}
