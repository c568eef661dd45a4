package netlinkclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// A hand-rolled netlink attribute walker for the event path: it works on the
// received bytes in place and allocates nothing, unlike
// netlink.AttributeDecoder. Errors are fixed values so that the success path
// stays allocation-free; decodeError adds context only when something fails.

const (
	nlaHeaderLen = 4
	nlaTypeMask  = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

var (
	errAttrTruncated = errors.New("truncated attribute")
	errAttrSize      = errors.New("wrong attribute size")
)

// attrIter walks the attributes of one attribute stream.
type attrIter struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

// next advances to the next attribute; it returns false at the end of the
// stream or on a malformed attribute (then err is set).
func (it *attrIter) next() bool {
	b := it.b
	if len(b) < nlaHeaderLen {
		if len(b) != 0 {
			it.err = errAttrTruncated
		}
		return false
	}
	n := int(binary.NativeEndian.Uint16(b))
	if n < nlaHeaderLen || n > len(b) {
		it.err = errAttrTruncated
		return false
	}
	it.typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	it.val = b[nlaHeaderLen:n]
	// The padding after the last attribute may be missing.
	it.b = b[min((n+3)&^3, len(b)):]
	return true
}

func attrU8(v []byte) (uint8, error) {
	if len(v) != 1 {
		return 0, errAttrSize
	}
	return v[0], nil
}

func attrU16(v []byte) (uint16, error) {
	if len(v) != 2 {
		return 0, errAttrSize
	}
	return binary.NativeEndian.Uint16(v), nil
}

func attrU32(v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, errAttrSize
	}
	return binary.NativeEndian.Uint32(v), nil
}

func attrU64(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, errAttrSize
	}
	return binary.NativeEndian.Uint64(v), nil
}

// attrAddr decodes a 4- or 16-byte address in network order.
func attrAddr(v []byte) (netip.Addr, error) {
	switch len(v) {
	case 4:
		return netip.AddrFrom4([4]byte(v)), nil
	case 16:
		return netip.AddrFrom16([16]byte(v)), nil
	}
	return netip.Addr{}, errAttrSize
}

// decodeError says where a decode failed: "event attribute 9: wrong
// attribute size".
type decodeError struct {
	where string
	typ   uint16
	err   error
}

func (e *decodeError) Error() string {
	if e.typ == 0 {
		return fmt.Sprintf("%s: %v", e.where, e.err)
	}
	return fmt.Sprintf("%s attribute %d: %v", e.where, e.typ, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }
