package netlinkclient

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// nlmsgGoodSize is NLMSG_GOODSIZE with 4 KiB pages: the most the kernel packs
// into one batch (minus the netlink and genetlink headers).
const nlmsgGoodSize = 4096 - 320 - 16 - 4

// packedBatch returns a batch filled with events up to nlmsgGoodSize, like
// the kernel's worker under load, and the number of events in it.
func packedBatch(ipv6 bool) ([]byte, int) {
	ev := seqEvents(0)[0]
	ev.Oif = 3
	if ipv6 {
		ev.Family = abi.FamilyIPv6
		ev.Src = netip.MustParseAddr("2001:db8::1")
		ev.Dst = netip.MustParseAddr("2001:db8:ffff::2")
	}
	var evs []Event
	for {
		ev.Seq = uint64(len(evs))
		next := batch{instance: 0x5f3a9c0d12e4b7a8, cpu: 1, events: append(evs, ev), nextSeq: u64p(uint64(len(evs) + 1))}
		if len(next.encode()) > nlmsgGoodSize {
			return batch{instance: 0x5f3a9c0d12e4b7a8, cpu: 1, events: evs, nextSeq: u64p(uint64(len(evs)))}.encode(), len(evs)
		}
		evs = next.events
	}
}

// seqOffsets finds the payload offsets of every KFW_EVENT_A_SEQ and of
// KFW_A_NEXT_SEQ in a batch, so a benchmark can advance them in place.
func seqOffsets(b []byte) []int {
	var offs []int
	walk := func(b []byte, base int, fn func(typ uint16, off, n int)) {
		for off := 0; off+nlaHeaderLen <= len(b); {
			n := int(binary.NativeEndian.Uint16(b[off:]))
			if n < nlaHeaderLen || off+n > len(b) {
				return
			}
			fn(binary.NativeEndian.Uint16(b[off+2:])&nlaTypeMask, base+off+nlaHeaderLen, n-nlaHeaderLen)
			off += (n + 3) &^ 3
		}
	}
	walk(b, 0, func(typ uint16, off, n int) {
		switch typ {
		case abi.AttrNextSeq:
			offs = append(offs, off)
		case abi.AttrEvent:
			walk(b[off:off+n], off, func(typ uint16, off, _ int) {
				if typ == abi.EventAttrSeq {
					offs = append(offs, off)
				}
			})
		}
	})
	return offs
}

type countingHandler struct{ events, lost, errs uint64 }

func (h *countingHandler) HandleEvent(ev *Event)                   { h.events += uint64(ev.Len) }
func (h *countingHandler) HandleLoss(_ uint64, _ uint32, n uint64) { h.lost += n }
func (h *countingHandler) HandleOverrun()                          {}
func (h *countingHandler) HandleDecodeError(error)                 { h.errs++ }
func (h *countingHandler) HandleState(State)                       {}

func TestSeqOffsets(t *testing.T) {
	b, n := packedBatch(false)
	offs := seqOffsets(b)
	if len(offs) != n+1 {
		t.Fatalf("%d offsets for %d events", len(offs), n)
	}
	for i, o := range offs {
		want := uint64(i)
		if i == n {
			want = uint64(n) // NEXT_SEQ
		}
		if got := binary.NativeEndian.Uint64(b[o:]); got != want {
			t.Fatalf("offset %d reads %d, want %d", i, got, want)
		}
	}
}

// BenchmarkDecodeBatch decodes full batches as they come under load, with
// sequence numbers advancing as in steady state, and reports the cost per
// event.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		ipv6 bool
	}{{"ipv4", false}, {"ipv6", true}} {
		b.Run(tc.name, func(b *testing.B) {
			data, n := packedBatch(tc.ipv6)
			offs := seqOffsets(data)
			var d eventDecoder
			h := &countingHandler{}
			advance := func() {
				for _, o := range offs {
					binary.NativeEndian.PutUint64(data[o:], binary.NativeEndian.Uint64(data[o:])+uint64(n))
				}
			}
			d.decodeBatch(data, h)
			allocs := testing.AllocsPerRun(100, func() {
				advance()
				d.decodeBatch(data, h)
			})
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				advance()
				d.decodeBatch(data, h)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
			b.ReportMetric(allocs/float64(n), "allocs/event")
			b.ReportMetric(float64(n), "events/batch")
			if h.lost != 0 || h.errs != 0 {
				b.Fatalf("steady state reported %d lost, %d errors", h.lost, h.errs)
			}
		})
	}
}

// TestDecodeAllocations holds the steady-state promise: no allocation per
// batch, hence none per event.
func TestDecodeAllocations(t *testing.T) {
	data, n := packedBatch(true)
	offs := seqOffsets(data)
	var d eventDecoder
	h := &countingHandler{}
	d.decodeBatch(data, h)
	allocs := testing.AllocsPerRun(50, func() {
		for _, o := range offs {
			binary.NativeEndian.PutUint64(data[o:], binary.NativeEndian.Uint64(data[o:])+uint64(n))
		}
		d.decodeBatch(data, h)
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch of %d events", allocs, n)
	}
}

// FuzzDecodeBatch feeds arbitrary bytes to the decoder: it must never panic,
// report only *decodeError values, and whatever it accepts must survive a
// round trip through the encoder.
func FuzzDecodeBatch(f *testing.F) {
	v4, _ := packedBatch(false)
	v6, _ := packedBatch(true)
	f.Add(v4)
	f.Add(v6)
	f.Add(batch{instance: 1, cpu: 0, nextSeq: u64p(5)}.encode())
	f.Add(batch{instance: 1, cpu: 7, events: seqEvents(3, 9)}.encode())
	f.Add(v4[:len(v4)/2])
	f.Add([]byte{})
	f.Add([]byte{4, 0, 5, 0})
	f.Add(slices.Concat(rawAttr(abi.AttrInstance, u64bytes(1)), rawAttr(abi.AttrCPU, u32bytes(0)),
		nested(abi.AttrEvent, rawAttr(abi.EventAttrSeq, u32bytes(1)))))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d eventDecoder
		r := &recorder{}
		d.decodeBatch(data, r)
		for _, err := range r.decodeErr {
			var de *decodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *decodeError: %v", err, err)
			}
		}
		if len(r.events) == 0 {
			return
		}
		hdr, err := scanBatch(data)
		if err != nil {
			t.Fatalf("events delivered from a batch that does not scan: %v", err)
		}
		for _, ev := range r.events {
			if ev.Instance != hdr.instance || ev.CPU != hdr.cpu {
				t.Fatalf("event carries %d/%d, batch is %d/%d", ev.Instance, ev.CPU, hdr.instance, hdr.cpu)
			}
			if !addrMatchesFamily(ev.Src, ev.Family) || !addrMatchesFamily(ev.Dst, ev.Family) {
				t.Fatalf("event with addresses %v %v in family %d", ev.Src, ev.Dst, ev.Family)
			}
		}
		// Every delivered event re-encodes to one that decodes the same.
		var d2 eventDecoder
		r2 := &recorder{}
		d2.decodeBatch(batch{instance: hdr.instance, cpu: hdr.cpu, events: r.events}.encode(), r2)
		if len(r2.decodeErr) != 0 {
			t.Fatalf("re-encoded events fail: %v", r2.decodeErr)
		}
		if len(r2.events) != len(r.events) {
			t.Fatalf("re-encoded %d events, decoded %d", len(r.events), len(r2.events))
		}
		for i := range r.events {
			a, b := r.events[i], r2.events[i]
			// The encoder writes ports only as a pair and omits zero
			// ifindexes and ports, like the kernel.
			if a != b {
				t.Fatalf("event %d: %+v re-decoded as %+v", i, a, b)
			}
		}
	})
}
