package netlinkclient

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// Attribute encoding of rules, policies and stats (docs/ABI.md
// "Attributes"). Command replies are few and small, so this side uses
// netlink.AttributeDecoder; its integer accessors reject wrong sizes.

// Counters are a rule's counters, as a dump reports them.
type Counters struct {
	Packets    uint64
	Bytes      uint64
	Events     uint64 // events generated for the rule
	Suppressed uint64 // events its limits suppressed
}

// RuleInfo is a rule of the table with its counters.
type RuleInfo struct {
	Rule     abi.Rule
	Counters Counters
}

// encodeRule writes r's attributes into a KFW_A_RULE nest. Match
// attributes holding "any" are left out, as the ABI allows.
func encodeRule(ae *netlink.AttributeEncoder, r abi.Rule) {
	ae.Nested(abi.AttrRule, func(n *netlink.AttributeEncoder) error {
		n.Uint32(abi.RuleAttrID, uint32(r.ID))
		n.Uint8(abi.RuleAttrAction, uint8(r.Action))
		if r.Family != abi.FamilyAny {
			n.Uint8(abi.RuleAttrFamily, r.Family)
		}
		if r.Hooks != abi.HookMaskAll {
			n.Uint32(abi.RuleAttrHooks, uint32(r.Hooks))
		}
		if r.ProtoSet {
			n.Uint8(abi.RuleAttrProto, r.Proto)
		}
		encodePrefix(n, abi.RuleAttrSrc, abi.RuleAttrSrcPlen, r.Src)
		encodePrefix(n, abi.RuleAttrDst, abi.RuleAttrDstPlen, r.Dst)
		encodePorts(n, abi.RuleAttrSportMin, abi.RuleAttrSportMax, r.Sport)
		encodePorts(n, abi.RuleAttrDportMin, abi.RuleAttrDportMax, r.Dport)
		if r.Iif != "" {
			n.String(abi.RuleAttrIif, r.Iif)
		}
		if r.Oif != "" {
			n.String(abi.RuleAttrOif, r.Oif)
		}
		if r.Log {
			n.Uint8(abi.RuleAttrLog, 1)
		}
		// Burst goes with rate, and alone too, so that the kernel refuses
		// a burst without rate as Rule.Validate does.
		if r.Rate != 0 || r.Burst != 0 {
			n.Uint32(abi.RuleAttrRate, r.Rate)
			n.Uint32(abi.RuleAttrBurst, r.Burst)
		}
		return nil
	})
}

func encodePrefix(n *netlink.AttributeEncoder, addrAttr, plenAttr uint16, p netip.Prefix) {
	if !p.IsValid() {
		return
	}
	n.Bytes(addrAttr, p.Addr().AsSlice())
	n.Uint8(plenAttr, uint8(p.Bits()))
}

func encodePorts(n *netlink.AttributeEncoder, minAttr, maxAttr uint16, p abi.PortRange) {
	if !p.Set {
		return
	}
	n.Uint16(minAttr, p.Min)
	n.Uint16(maxAttr, p.Max)
}

func encodePolicy(ae *netlink.AttributeEncoder, p abi.Policy) {
	ae.Nested(abi.AttrPolicy, func(n *netlink.AttributeEncoder) error {
		n.Uint8(abi.PolicyAttrHook, uint8(p.Hook))
		n.Uint8(abi.PolicyAttrAction, uint8(p.Action))
		return nil
	})
}

// decodeRule reads the attributes nested in a KFW_A_RULE of a dump.
func decodeRule(b []byte) (RuleInfo, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return RuleInfo{}, err
	}
	var (
		ri                       RuleInfo
		r                        = &ri.Rule
		id                       uint32
		hasID, hasBurst          bool
		src, dst                 []byte
		srcPlen, dstPlen         = -1, -1
		hasSportMax, hasDportMax bool
	)
	r.Hooks = abi.HookMaskAll
	for ad.Next() {
		switch ad.Type() {
		case abi.RuleAttrID:
			id, hasID = ad.Uint32(), true
		case abi.RuleAttrAction:
			r.Action = abi.Action(ad.Uint8())
		case abi.RuleAttrFamily:
			r.Family = ad.Uint8()
		case abi.RuleAttrHooks:
			r.Hooks = uint8(ad.Uint32())
		case abi.RuleAttrProto:
			r.Proto, r.ProtoSet = ad.Uint8(), true
		case abi.RuleAttrSrc:
			src = ad.Bytes()
		case abi.RuleAttrSrcPlen:
			srcPlen = int(ad.Uint8())
		case abi.RuleAttrDst:
			dst = ad.Bytes()
		case abi.RuleAttrDstPlen:
			dstPlen = int(ad.Uint8())
		case abi.RuleAttrSportMin:
			r.Sport.Min, r.Sport.Set = ad.Uint16(), true
		case abi.RuleAttrSportMax:
			r.Sport.Max, hasSportMax = ad.Uint16(), true
		case abi.RuleAttrDportMin:
			r.Dport.Min, r.Dport.Set = ad.Uint16(), true
		case abi.RuleAttrDportMax:
			r.Dport.Max, hasDportMax = ad.Uint16(), true
		case abi.RuleAttrIif:
			r.Iif = ad.String()
		case abi.RuleAttrOif:
			r.Oif = ad.String()
		case abi.RuleAttrLog:
			r.Log = ad.Uint8() != 0
		case abi.RuleAttrRate:
			r.Rate = ad.Uint32()
		case abi.RuleAttrBurst:
			r.Burst, hasBurst = ad.Uint32(), true
		case abi.RuleAttrPackets:
			ri.Counters.Packets = ad.Uint64()
		case abi.RuleAttrBytes:
			ri.Counters.Bytes = ad.Uint64()
		case abi.RuleAttrEvents:
			ri.Counters.Events = ad.Uint64()
		case abi.RuleAttrSuppressed:
			ri.Counters.Suppressed = ad.Uint64()
		}
	}
	if err := ad.Err(); err != nil {
		return RuleInfo{}, err
	}
	if !hasID || id < abi.RuleIDMin || id > abi.RuleIDMax {
		return RuleInfo{}, fmt.Errorf("rule id %d missing or out of range", id)
	}
	r.ID = uint16(id)
	if r.Src, err = decodePrefix(src, srcPlen); err != nil {
		return RuleInfo{}, fmt.Errorf("rule %d: src: %w", id, err)
	}
	if r.Dst, err = decodePrefix(dst, dstPlen); err != nil {
		return RuleInfo{}, fmt.Errorf("rule %d: dst: %w", id, err)
	}
	if !hasSportMax {
		r.Sport.Max = r.Sport.Min
	}
	if !hasDportMax {
		r.Dport.Max = r.Dport.Min
	}
	if !hasBurst {
		r.Burst = r.Rate
	}
	return ri, nil
}

// decodePrefix builds a prefix from an address attribute and an optional
// prefix length (-1: absent, the full length).
func decodePrefix(addr []byte, plen int) (netip.Prefix, error) {
	if addr == nil {
		if plen >= 0 {
			return netip.Prefix{}, errors.New("prefix length without address")
		}
		return netip.Prefix{}, nil
	}
	a, err := attrAddr(addr)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("address of %d bytes", len(addr))
	}
	if plen < 0 {
		plen = a.BitLen()
	}
	p := netip.PrefixFrom(a, plen)
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("prefix length %d", plen)
	}
	return p, nil
}

// decodePolicy reads the attributes nested in a KFW_A_POLICY.
func decodePolicy(b []byte) (abi.Policy, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return abi.Policy{}, err
	}
	var p abi.Policy
	var hasHook, hasAction bool
	for ad.Next() {
		switch ad.Type() {
		case abi.PolicyAttrHook:
			p.Hook, hasHook = abi.Hook(ad.Uint8()), true
		case abi.PolicyAttrAction:
			p.Action, hasAction = abi.Action(ad.Uint8()), true
		}
	}
	if err := ad.Err(); err != nil {
		return abi.Policy{}, err
	}
	if !hasHook || !hasAction {
		return abi.Policy{}, errors.New("policy without hook or action")
	}
	return p, nil
}

// decodeStats reads the attributes nested in a KFW_A_STATS.
func decodeStats(b []byte) (abi.ModuleStats, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return abi.ModuleStats{}, err
	}
	var st abi.ModuleStats
	hasVersion := false
	for ad.Next() {
		switch ad.Type() {
		case abi.StatsAttrABIVersion:
			st.ABIVersion, hasVersion = ad.Uint32(), true
		case abi.StatsAttrVersion:
			st.Version = ad.String()
		case abi.StatsAttrInstance:
			st.Instance = ad.Uint64()
		case abi.StatsAttrGeneration:
			st.Generation = ad.Uint64()
		case abi.StatsAttrRules:
			st.Rules = ad.Uint32()
		case abi.StatsAttrMaxRules:
			st.MaxRules = ad.Uint32()
		case abi.StatsAttrEventsGenerated:
			st.EventsGenerated = ad.Uint64()
		case abi.StatsAttrEventsSuppressed:
			st.EventsSuppressed = ad.Uint64()
		case abi.StatsAttrEventsQueueOverflows:
			st.EventsQueueOverflows = ad.Uint64()
		case abi.StatsAttrEventsMessagesSent:
			st.EventsMessagesSent = ad.Uint64()
		case abi.StatsAttrEventsNoListener:
			st.EventsNoListener = ad.Uint64()
		case abi.StatsAttrEventsAllocFailures:
			st.EventsAllocFailures = ad.Uint64()
		case abi.StatsAttrEventsNobufs:
			st.EventsNobufs = ad.Uint64()
		}
	}
	if err := ad.Err(); err != nil {
		return abi.ModuleStats{}, err
	}
	if !hasVersion {
		return abi.ModuleStats{}, errors.New("stats without abi_version")
	}
	if st.ABIVersion != abi.Version {
		return abi.ModuleStats{}, fmt.Errorf("abi_version %d: %w", st.ABIVersion, abi.ErrUnsupportedVersion)
	}
	return st, nil
}

// nestedOf returns the payloads of every top-level attribute typ in b.
func nestedOf(b []byte, typ uint16) ([][]byte, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for ad.Next() {
		if ad.Type() == typ {
			out = append(out, ad.Bytes())
		}
	}
	return out, ad.Err()
}
