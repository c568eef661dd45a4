// Package netlinkclient talks to the kfw kernel module over its generic
// netlink family: it runs the rule and stats commands and consumes the
// "events" multicast group, with exact loss accounting across module reloads.
// The wire format is described in docs/ABI.md; the numbers live in package abi.
package netlinkclient

import (
	"net/netip"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// Event is one decoded kfw event. CPU and Instance come from the batch that
// carried it.
type Event struct {
	Type       abi.EventType
	Rule       uint32 // 0: a default policy
	Family     uint8  // abi.FamilyIPv4 or abi.FamilyIPv6
	Hook       abi.Hook
	Proto      uint8
	Src, Dst   netip.Addr
	Sport      uint16 // 0 when the packet has no ports
	Dport      uint16
	Iif, Oif   uint32 // 0 when absent
	Len        uint32
	Timestamp  int64 // CLOCK_REALTIME, ns
	CPU        uint32
	Seq        uint64
	Instance   uint64
	Suppressed uint32 // events of this rule suppressed since its previous one
}

// Handler receives what a Subscriber sees. The Subscriber calls it from its
// own goroutine, one call at a time.
type Handler interface {
	// HandleEvent is called for every event received. ev is only valid
	// during the call: copy what you keep.
	HandleEvent(ev *Event)
	// HandleLoss reports n events of instance/cpu that were generated but
	// never received, counted exactly from sequence gaps and NEXT_SEQ marks.
	HandleLoss(instance uint64, cpu uint32, n uint64)
	// HandleOverrun reports one ENOBUFS from the socket: the kernel dropped
	// datagrams for us; the exact count follows through HandleLoss.
	HandleOverrun()
	// HandleDecodeError reports a message that could not be decoded; it was
	// skipped and the Subscriber goes on reading.
	HandleDecodeError(err error)
	// HandleState reports subscription changes.
	HandleState(s State)
}

// State is the Subscriber's view of the kernel side.
type State struct {
	Subscribed bool   // a member of the family's "events" group right now
	FamilyID   uint16 // 0 when not subscribed
	// Resubscribed is true when this subscription is not the first one of
	// the Subscriber (the module was reloaded or the socket was reopened).
	Resubscribed bool
	// Err says why the Subscriber is not subscribed (nil when it is).
	Err error
}
