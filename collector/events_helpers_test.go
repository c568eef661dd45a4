package collector

import (
	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// ev is an IPv4 event at the input hook of instance 1, without timestamp.
func ev(typ abi.EventType, rule uint32, proto uint8) netlinkclient.Event {
	return netlinkclient.Event{Type: typ, Rule: rule, Family: abi.FamilyIPv4, Hook: abi.HookInput, Proto: proto, Instance: 1}
}

func drop(rule uint32, proto uint8) netlinkclient.Event { return ev(abi.EventDrop, rule, proto) }
func hit(rule uint32, proto uint8) netlinkclient.Event  { return ev(abi.EventHit, rule, proto) }

func feed(c *eventConsumer, evs ...netlinkclient.Event) {
	for i := range evs {
		c.HandleEvent(&evs[i])
	}
}
