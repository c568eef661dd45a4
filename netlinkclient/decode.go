package netlinkclient

import (
	"errors"
	"net/netip"

	"github.com/kfwlabs/kfw_exporter/abi"
)

var (
	errBatchNoInstance = errors.New("batch without KFW_A_INSTANCE")
	errBatchNoCPU      = errors.New("batch without KFW_A_CPU")
	errEventNoSeq      = errors.New("event without KFW_EVENT_A_SEQ")
	errEventAddrFamily = errors.New("address size does not match the event's family")
)

// eventDecoder turns KFW_CMD_EVENTS batches into Handler calls: one Event
// reused for every event, and the sequence tracking of docs/ABI.md "Loss
// accounting". It is not safe for concurrent use.
type eventDecoder struct {
	ev      Event
	tracker lossTracker
}

// batchHeader holds a batch's top-level scalars.
type batchHeader struct {
	instance   uint64
	cpu        uint32
	nextSeq    uint64
	hasNextSeq bool
}

// scanBatch reads the top-level attributes of a batch and checks that the
// whole batch is well framed, so that a batch is either decoded or rejected
// before any of its events is reported.
func scanBatch(b []byte) (batchHeader, error) {
	var hdr batchHeader
	var hasInstance, hasCPU bool
	it := attrIter{b: b}
	for it.next() {
		var err error
		switch it.typ {
		case abi.AttrInstance:
			hdr.instance, err = attrU64(it.val)
			hasInstance = true
		case abi.AttrCPU:
			hdr.cpu, err = attrU32(it.val)
			hasCPU = true
		case abi.AttrNextSeq:
			hdr.nextSeq, err = attrU64(it.val)
			hdr.hasNextSeq = true
		}
		if err != nil {
			return batchHeader{}, &decodeError{where: "batch", typ: it.typ, err: err}
		}
	}
	switch {
	case it.err != nil:
		return batchHeader{}, &decodeError{where: "batch", err: it.err}
	case !hasInstance:
		return batchHeader{}, &decodeError{where: "batch", err: errBatchNoInstance}
	case !hasCPU:
		return batchHeader{}, &decodeError{where: "batch", err: errBatchNoCPU}
	}
	return hdr, nil
}

// decodeBatch decodes the attributes of one KFW_CMD_EVENTS message and
// reports its events and losses to h. A malformed batch is reported as one
// decode error; a malformed event inside a good batch is reported and
// skipped, and its sequence number then counts as lost.
func (d *eventDecoder) decodeBatch(b []byte, h Handler) {
	hdr, err := scanBatch(b)
	if err != nil {
		h.HandleDecodeError(err)
		return
	}
	seq := d.tracker.cpu(hdr.instance, hdr.cpu)
	it := attrIter{b: b}
	for it.next() {
		if it.typ != abi.AttrEvent {
			continue
		}
		if err := decodeEvent(it.val, &d.ev); err != nil {
			h.HandleDecodeError(err)
			continue
		}
		d.ev.CPU = hdr.cpu
		d.ev.Instance = hdr.instance
		if lost := seq.event(d.ev.Seq); lost > 0 {
			h.HandleLoss(hdr.instance, hdr.cpu, lost)
		}
		h.HandleEvent(&d.ev)
	}
	if hdr.hasNextSeq {
		if lost := seq.nextSeq(hdr.nextSeq); lost > 0 {
			h.HandleLoss(hdr.instance, hdr.cpu, lost)
		}
	}
}

// decodeEvent decodes the attributes nested in one KFW_A_EVENT into ev,
// which it overwrites. Unknown attributes are skipped; a known attribute of
// the wrong size is an error.
func decodeEvent(b []byte, ev *Event) error {
	*ev = Event{}
	hasSeq := false
	it := attrIter{b: b}
	for it.next() {
		var err error
		v := it.val
		switch it.typ {
		case abi.EventAttrType:
			var t uint8
			t, err = attrU8(v)
			ev.Type = abi.EventType(t)
		case abi.EventAttrRule:
			ev.Rule, err = attrU32(v)
		case abi.EventAttrFamily:
			ev.Family, err = attrU8(v)
		case abi.EventAttrHook:
			var hk uint8
			hk, err = attrU8(v)
			ev.Hook = abi.Hook(hk)
		case abi.EventAttrProto:
			ev.Proto, err = attrU8(v)
		case abi.EventAttrSaddr:
			ev.Src, err = attrAddr(v)
		case abi.EventAttrDaddr:
			ev.Dst, err = attrAddr(v)
		case abi.EventAttrSport:
			ev.Sport, err = attrU16(v)
		case abi.EventAttrDport:
			ev.Dport, err = attrU16(v)
		case abi.EventAttrIif:
			ev.Iif, err = attrU32(v)
		case abi.EventAttrOif:
			ev.Oif, err = attrU32(v)
		case abi.EventAttrLen:
			ev.Len, err = attrU32(v)
		case abi.EventAttrTstamp:
			var ts uint64
			ts, err = attrU64(v)
			ev.Timestamp = int64(ts)
		case abi.EventAttrSeq:
			ev.Seq, err = attrU64(v)
			hasSeq = true
		case abi.EventAttrSuppressed:
			ev.Suppressed, err = attrU32(v)
		}
		if err != nil {
			return &decodeError{where: "event", typ: it.typ, err: err}
		}
	}
	if it.err != nil {
		return &decodeError{where: "event", err: it.err}
	}
	if !hasSeq {
		return &decodeError{where: "event", err: errEventNoSeq}
	}
	if !addrMatchesFamily(ev.Src, ev.Family) || !addrMatchesFamily(ev.Dst, ev.Family) {
		return &decodeError{where: "event", err: errEventAddrFamily}
	}
	return nil
}

func addrMatchesFamily(a netip.Addr, family uint8) bool {
	switch {
	case !a.IsValid():
		return true
	case family == abi.FamilyIPv4:
		return a.Is4()
	case family == abi.FamilyIPv6:
		return a.Is6()
	}
	return true
}
