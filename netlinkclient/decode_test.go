package netlinkclient

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"

	"github.com/kfwlabs/kfw_exporter/abi"
)

func decodeAll(batches ...[]byte) *recorder {
	var d eventDecoder
	r := &recorder{}
	for _, b := range batches {
		d.decodeBatch(b, r)
	}
	return r
}

func TestDecodeEveryAttribute(t *testing.T) {
	v4 := Event{
		Type: abi.EventDrop, Rule: 20, Family: abi.FamilyIPv4, Hook: abi.HookForward, Proto: 17,
		Src: netip.MustParseAddr("10.1.2.3"), Dst: netip.MustParseAddr("10.4.5.6"),
		Sport: 5353, Dport: 53, Iif: 3, Oif: 4, Len: 1500, Timestamp: 1700000000123456789,
		Seq: 41, Suppressed: 7,
	}
	v6 := Event{
		Type: abi.EventHit, Rule: 0, Family: abi.FamilyIPv6, Hook: abi.HookOutput, Proto: 58,
		Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"),
		Oif: 9, Len: 104, Timestamp: -1, Seq: 1 << 40,
	}
	r := decodeAll(
		batch{instance: 0x5f3a9c0d12e4b7a8, cpu: 1, events: []Event{v4}}.encode(),
		batch{instance: 0x5f3a9c0d12e4b7a8, cpu: 3, events: []Event{v6}}.encode(),
	)
	v4.CPU, v4.Instance = 1, 0x5f3a9c0d12e4b7a8
	v6.CPU, v6.Instance = 3, 0x5f3a9c0d12e4b7a8
	if want := []Event{v4, v6}; !slices.Equal(r.events, want) {
		t.Errorf("events:\n got %+v\nwant %+v", r.events, want)
	}
	if len(r.decodeErr) != 0 || len(r.losses) != 0 {
		t.Errorf("unexpected errors %v or losses %v", r.decodeErr, r.losses)
	}
}

// An event reuses the decoder's Event: fields absent from the next event must
// not leak from the previous one.
func TestDecodeResetsAbsentFields(t *testing.T) {
	full := seqEvents(0)[0]
	full.Oif, full.Suppressed = 5, 3
	bare := Event{Type: abi.EventDrop, Family: abi.FamilyIPv4, Seq: 1}
	r := decodeAll(batch{instance: 1, cpu: 0, events: []Event{full, bare}}.encode())
	if len(r.events) != 2 {
		t.Fatalf("got %d events", len(r.events))
	}
	got := r.events[1]
	got.CPU, got.Instance = 0, 0
	// encodeEvent always writes Rule, Hook, Proto, Len, Tstamp, Suppressed;
	// bare has them at zero, so the whole event must equal bare.
	if got != bare {
		t.Errorf("second event %+v, want %+v", got, bare)
	}
}

func TestDecodeIgnoresUnknownAttributes(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint64(abi.AttrInstance, 9)
	ae.Bytes(200, []byte("future top-level attribute"))
	ae.Uint32(abi.AttrCPU, 0)
	ae.Bytes(abi.AttrPad, nil)
	ae.Nested(abi.AttrEvent, func(n *netlink.AttributeEncoder) error {
		n.Bytes(abi.EventAttrPad, nil)
		n.Uint8(abi.EventAttrType, uint8(abi.EventDrop))
		n.Uint64(250, 12345)
		n.Nested(251, func(nn *netlink.AttributeEncoder) error {
			nn.Uint8(1, 1)
			return nil
		})
		n.Uint64(abi.EventAttrSeq, 0)
		return nil
	})
	ae.Nested(201, func(n *netlink.AttributeEncoder) error { return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r := decodeAll(b)
	if len(r.events) != 1 || r.events[0].Type != abi.EventDrop || len(r.decodeErr) != 0 {
		t.Errorf("events %+v, errors %v", r.events, r.decodeErr)
	}
}

// rawAttr builds one attribute by hand, with any length and payload.
func rawAttr(typ uint16, payload []byte) []byte {
	b := make([]byte, 4, 4+len(payload)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(payload)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func nested(typ uint16, attrs ...[]byte) []byte {
	return rawAttr(typ|netlink.Nested, slices.Concat(attrs...))
}

func u64bytes(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }

func u32bytes(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestDecodeMalformed(t *testing.T) {
	hdr := slices.Concat(rawAttr(abi.AttrInstance, u64bytes(7)), rawAttr(abi.AttrCPU, u32bytes(0)))
	seq := rawAttr(abi.EventAttrSeq, u64bytes(0))
	goodEvent := nested(abi.AttrEvent, seq)
	truncatedTail := func(b []byte, n int) []byte { return b[:len(b)-n] }

	tests := []struct {
		name   string
		batch  []byte
		events int // good events that still get through
	}{
		{"batch without instance", slices.Concat(rawAttr(abi.AttrCPU, u32bytes(0)), goodEvent), 0},
		{"batch without cpu", slices.Concat(rawAttr(abi.AttrInstance, u64bytes(1)), goodEvent), 0},
		{"instance of 4 bytes", slices.Concat(rawAttr(abi.AttrInstance, u32bytes(1)), rawAttr(abi.AttrCPU, u32bytes(0)), goodEvent), 0},
		{"cpu of 8 bytes", slices.Concat(rawAttr(abi.AttrInstance, u64bytes(1)), rawAttr(abi.AttrCPU, u64bytes(0)), goodEvent), 0},
		{"next_seq of 2 bytes", slices.Concat(hdr, goodEvent, rawAttr(abi.AttrNextSeq, []byte{1, 0})), 0},
		{"truncated top-level header", slices.Concat(hdr, goodEvent, []byte{8, 0}), 0},
		{"top-level length past the end", slices.Concat(hdr, goodEvent, truncatedTail(rawAttr(abi.AttrNextSeq, u64bytes(1)), 4)), 0},
		{"top-level length below 4", slices.Concat(hdr, goodEvent, []byte{2, 0, 7, 0}), 0},
		{"event without seq", slices.Concat(hdr, nested(abi.AttrEvent, rawAttr(abi.EventAttrType, []byte{1})), goodEvent), 1},
		{"type of 2 bytes", slices.Concat(hdr, nested(abi.AttrEvent, seq, rawAttr(abi.EventAttrType, []byte{1, 0})), goodEvent), 1},
		{"rule of 2 bytes", slices.Concat(hdr, nested(abi.AttrEvent, seq, rawAttr(abi.EventAttrRule, []byte{1, 0})), goodEvent), 1},
		{"sport of 4 bytes", slices.Concat(hdr, nested(abi.AttrEvent, seq, rawAttr(abi.EventAttrSport, u32bytes(1))), goodEvent), 1},
		{"seq of 4 bytes", slices.Concat(hdr, nested(abi.AttrEvent, rawAttr(abi.EventAttrSeq, u32bytes(1))), goodEvent), 1},
		{"timestamp of 0 bytes", slices.Concat(hdr, nested(abi.AttrEvent, seq, rawAttr(abi.EventAttrTstamp, nil)), goodEvent), 1},
		{"address of 5 bytes", slices.Concat(hdr, nested(abi.AttrEvent, seq, rawAttr(abi.EventAttrSaddr, []byte{1, 2, 3, 4, 5})), goodEvent), 1},
		{"IPv6 address in an IPv4 event", slices.Concat(hdr, nested(abi.AttrEvent, seq,
			rawAttr(abi.EventAttrFamily, []byte{abi.FamilyIPv4}), rawAttr(abi.EventAttrDaddr, make([]byte, 16))), goodEvent), 1},
		{"IPv4 address in an IPv6 event", slices.Concat(hdr, nested(abi.AttrEvent, seq,
			rawAttr(abi.EventAttrFamily, []byte{abi.FamilyIPv6}), rawAttr(abi.EventAttrSaddr, make([]byte, 4))), goodEvent), 1},
		{"truncated nested attribute", slices.Concat(hdr, nested(abi.AttrEvent, seq, []byte{12, 0, 14, 0, 1, 2}), goodEvent), 1},
	}
	for _, tt := range tests {
		r := decodeAll(tt.batch)
		if len(r.decodeErr) != 1 {
			t.Errorf("%s: got %d decode errors, want 1 (%v)", tt.name, len(r.decodeErr), r.decodeErr)
		}
		if len(r.events) != tt.events {
			t.Errorf("%s: got %d events, want %d", tt.name, len(r.events), tt.events)
		}
		for _, err := range r.decodeErr {
			var de *decodeError
			if !errors.As(err, &de) {
				t.Errorf("%s: error %v is not a *decodeError", tt.name, err)
			}
		}
	}
}

// A batch of nothing (no attributes at all) lacks instance and cpu.
func TestDecodeEmpty(t *testing.T) {
	if r := decodeAll(nil); len(r.decodeErr) != 1 || len(r.events) != 0 {
		t.Errorf("empty batch: %+v", r)
	}
}

func TestDecodeAccountsGaps(t *testing.T) {
	r := decodeAll(
		batch{instance: 5, cpu: 0, events: seqEvents(0, 1, 2)}.encode(),
		batch{instance: 5, cpu: 0, events: seqEvents(5, 6)}.encode(), // 3, 4 lost
		batch{instance: 5, cpu: 1, events: seqEvents(100)}.encode(),  // first seen on cpu 1
		batch{instance: 5, cpu: 1, events: seqEvents(101, 110)}.encode(),
	)
	want := []loss{{5, 0, 2}, {5, 1, 8}}
	if !slices.Equal(r.losses, want) {
		t.Errorf("losses %v, want %v", r.losses, want)
	}
	if got := r.seqs(); !slices.Equal(got, []uint64{0, 1, 2, 5, 6, 100, 101, 110}) {
		t.Errorf("events %v", got)
	}
}

// A loss is reported before the event that reveals it.
func TestDecodeLossBeforeEvent(t *testing.T) {
	var d eventDecoder
	r := &recorder{notify: make(chan string, 10)}
	d.decodeBatch(batch{instance: 1, cpu: 2, events: seqEvents(0, 3)}.encode(), r)
	close(r.notify)
	var got []string
	for s := range r.notify {
		got = append(got, s)
	}
	if want := []string{"event 2/0", "loss 2/2", "event 2/3"}; !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestDecodeNextSeq(t *testing.T) {
	r := decodeAll(
		// Events 0..2 then a mark of 6: 3, 4, 5 were lost in the queue.
		batch{instance: 5, cpu: 0, events: seqEvents(0, 1, 2), nextSeq: u64p(6)}.encode(),
		// A sync batch saying nothing new.
		batch{instance: 5, cpu: 0, nextSeq: u64p(6)}.encode(),
		// A sync batch after an overflow: 6..9 never arrived.
		batch{instance: 5, cpu: 0, nextSeq: u64p(10)}.encode(),
		// Then traffic resumes where the mark said.
		batch{instance: 5, cpu: 0, events: seqEvents(10, 11), nextSeq: u64p(12)}.encode(),
	)
	want := []loss{{5, 0, 3}, {5, 0, 4}}
	if !slices.Equal(r.losses, want) {
		t.Errorf("losses %v, want %v", r.losses, want)
	}
	if len(r.events) != 5 {
		t.Errorf("%d events, want 5", len(r.events))
	}
}

func TestDecodeBadEventCountsAsLost(t *testing.T) {
	hdr := slices.Concat(rawAttr(abi.AttrInstance, u64bytes(3)), rawAttr(abi.AttrCPU, u32bytes(0)))
	ev := func(s uint64) []byte { return nested(abi.AttrEvent, rawAttr(abi.EventAttrSeq, u64bytes(s))) }
	bad := nested(abi.AttrEvent, rawAttr(abi.EventAttrSeq, u64bytes(1)), rawAttr(abi.EventAttrLen, []byte{1}))
	r := decodeAll(slices.Concat(hdr, ev(0), bad, ev(2)))
	if got := r.seqs(); !slices.Equal(got, []uint64{0, 2}) {
		t.Errorf("events %v", got)
	}
	if !slices.Equal(r.losses, []loss{{3, 0, 1}}) || len(r.decodeErr) != 1 {
		t.Errorf("losses %v, decode errors %v", r.losses, r.decodeErr)
	}
}

func TestDecodeInstanceChangeIsNoLoss(t *testing.T) {
	r := decodeAll(
		batch{instance: 1, cpu: 0, events: seqEvents(0, 1, 2, 3)}.encode(),
		batch{instance: 1, cpu: 1, events: seqEvents(0, 1)}.encode(),
		// Reload: sequences restart from 0 on every CPU.
		batch{instance: 2, cpu: 1, events: seqEvents(0)}.encode(),
		batch{instance: 2, cpu: 0, events: seqEvents(0, 1)}.encode(),
		// and a gap within the new instance is a loss of the new instance.
		batch{instance: 2, cpu: 0, events: seqEvents(4)}.encode(),
	)
	if want := []loss{{2, 0, 2}}; !slices.Equal(r.losses, want) {
		t.Errorf("losses %v, want %v", r.losses, want)
	}
	if r.events[6].Instance != 2 || r.events[6].CPU != 1 {
		t.Errorf("event after reload carries instance %d cpu %d", r.events[6].Instance, r.events[6].CPU)
	}
}
