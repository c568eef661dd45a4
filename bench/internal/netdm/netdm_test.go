package netdm

import (
	"testing"

	"github.com/mdlayher/netlink"
)

func TestAlertReason(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(14, 0) // NET_DM_ATTR_ORIGIN
	ae.Uint64(2, 0xffffffff81000000)
	ae.String(attrReason, "NETFILTER_DROP")
	ae.String(3, "nf_hook_slow+0x41/0xb0")
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got := alertReason(b); got != "NETFILTER_DROP" {
		t.Errorf("reason %q", got)
	}
	if got := alertReason(b[:8]); got != "" {
		t.Errorf("truncated alert: reason %q", got)
	}
}
