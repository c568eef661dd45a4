// Package netdm drives the kernel's drop monitor (net/core/drop_monitor.c,
// generic netlink family NET_DM) in packet mode, the closest thing the
// kernel has to kfw's events: one alert per dropped packet, multicast on the
// "events" group. The constants are those of <linux/net_dropmon.h>.
//
// Packet mode clones every dropped skb into a per-CPU queue of
// NET_DM_ATTR_QUEUE_LEN packets (1000 by default; a full queue counts the
// packet in NET_DM_ATTR_STATS_DROPPED), and a work item sends one netlink
// message per packet. A listener whose socket overflows just loses
// messages: the kernel does not count them, so a caller must know how many
// drops happened to know how many alerts it missed.
package netdm

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Family and group names.
const (
	FamilyName = "NET_DM"
	GroupName  = "events"
)

// Commands.
const (
	cmdStart       = 3
	cmdStop        = 4
	cmdPacketAlert = 5
	cmdConfig      = 2
	cmdStatsGet    = 8
)

// Attributes.
const (
	attrAlertMode    = 1  // u8
	attrTruncLen     = 9  // u32
	attrQueueLen     = 11 // u32
	attrStats        = 12 // nest
	attrSwDrops      = 20 // flag
	attrReason       = 23 // string
	attrStatsDropped = 0  // u64, in attrStats
	alertModePacket  = 1
)

// Monitor is a control connection to NET_DM. Configuring, starting and
// stopping need CAP_NET_ADMIN.
type Monitor struct {
	conn   *genetlink.Conn
	family genetlink.Family
}

// Dial resolves the NET_DM family (the kernel loads drop_monitor on
// demand).
func Dial() (*Monitor, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("netdm: dial: %w", err)
	}
	f, err := c.GetFamily(FamilyName)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("netdm: family %s: %w", FamilyName, err)
	}
	return &Monitor{conn: c, family: f}, nil
}

// Close closes the control connection; it does not stop monitoring.
func (m *Monitor) Close() error { return m.conn.Close() }

// do runs a command. Commands without a reply ask for an acknowledgement;
// one with a reply must not, or the acknowledgement stays queued and the
// next command reads it as its reply.
func (m *Monitor) do(cmd uint8, flags netlink.HeaderFlags, encode func(*netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	ae := netlink.NewAttributeEncoder()
	if encode != nil {
		encode(ae)
	}
	data, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msg := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: m.family.Version}, Data: data}
	return m.conn.Execute(msg, m.family.ID, netlink.Request|flags)
}

// ConfigurePacketMode selects packet alerts, each carrying at most
// truncLen bytes of the packet (0: all of it), with per-CPU queues of
// queueLen packets. It fails with EBUSY while monitoring.
func (m *Monitor) ConfigurePacketMode(truncLen, queueLen uint32) error {
	_, err := m.do(cmdConfig, netlink.Acknowledge, func(ae *netlink.AttributeEncoder) {
		ae.Uint8(attrAlertMode, alertModePacket)
		ae.Uint32(attrTruncLen, truncLen)
		ae.Uint32(attrQueueLen, queueLen)
	})
	if err != nil {
		return fmt.Errorf("netdm: configure packet mode: %w", err)
	}
	return nil
}

// Start starts monitoring software drops.
func (m *Monitor) Start() error {
	if _, err := m.do(cmdStart, netlink.Acknowledge, func(ae *netlink.AttributeEncoder) { ae.Flag(attrSwDrops, true) }); err != nil {
		return fmt.Errorf("netdm: start: %w", err)
	}
	return nil
}

// Stop stops monitoring software drops.
func (m *Monitor) Stop() error {
	if _, err := m.do(cmdStop, netlink.Acknowledge, func(ae *netlink.AttributeEncoder) { ae.Flag(attrSwDrops, true) }); err != nil {
		return fmt.Errorf("netdm: stop: %w", err)
	}
	return nil
}

// QueueDropped returns how many packets the monitor's per-CPU queues
// refused since drop_monitor was loaded.
func (m *Monitor) QueueDropped() (uint64, error) {
	msgs, err := m.do(cmdStatsGet, 0, nil)
	if err != nil {
		return 0, fmt.Errorf("netdm: stats: %w", err)
	}
	for _, msg := range msgs {
		ad, err := netlink.NewAttributeDecoder(msg.Data)
		if err != nil {
			return 0, fmt.Errorf("netdm: stats: %w", err)
		}
		for ad.Next() {
			if ad.Type() != attrStats {
				continue
			}
			var dropped uint64
			var found bool
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == attrStatsDropped {
						dropped, found = nad.Uint64(), true
					}
				}
				return nil
			})
			if err := ad.Err(); err != nil {
				return 0, fmt.Errorf("netdm: stats: %w", err)
			}
			if found {
				return dropped, nil
			}
		}
	}
	return 0, errors.New("netdm: stats reply without NET_DM_ATTR_STATS_DROPPED")
}

// Listener counts the packet alerts of the "events" group.
type Listener struct {
	conn *genetlink.Conn

	// Updated by Run; read them after Run returned, or atomically.
	Alerts    atomic.Uint64 // every packet alert
	Matching  atomic.Uint64 // alerts whose drop reason is the one asked for
	Overruns  atomic.Uint64 // ENOBUFS from the socket: alerts were lost
	reasonArg string
}

// Listen joins the "events" group with a socket of readBuffer bytes
// (SO_RCVBUFFORCE), counting alerts whose reason is reason (for example
// "NETFILTER_DROP") in Matching.
func Listen(readBuffer int, reason string) (*Listener, error) {
	c, err := genetlink.Dial(&netlink.Config{MessageBufferSize: 64 << 10})
	if err != nil {
		return nil, fmt.Errorf("netdm: dial listener: %w", err)
	}
	l := &Listener{conn: c, reasonArg: reason}
	f, err := c.GetFamily(FamilyName)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("netdm: family %s: %w", FamilyName, err)
	}
	var group uint32
	for _, g := range f.Groups {
		if g.Name == GroupName {
			group = g.ID
		}
	}
	if group == 0 {
		c.Close()
		return nil, fmt.Errorf("netdm: family %s has no group %q", FamilyName, GroupName)
	}
	if err := c.SetReadBuffer(readBuffer); err != nil {
		c.Close()
		return nil, fmt.Errorf("netdm: read buffer: %w", err)
	}
	if err := c.JoinGroup(group); err != nil {
		c.Close()
		return nil, fmt.Errorf("netdm: join %s: %w", GroupName, err)
	}
	return l, nil
}

// Run reads alerts until stop is set (checked at least every 100 ms).
func (l *Listener) Run(stop *atomic.Bool) error {
	defer l.conn.Close()
	for !stop.Load() {
		if err := l.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			return fmt.Errorf("netdm: deadline: %w", err)
		}
		msgs, _, err := l.conn.Receive()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case errors.Is(err, unix.ENOBUFS):
			l.Overruns.Add(1)
			continue
		case err != nil:
			return fmt.Errorf("netdm: receive: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Command != cmdPacketAlert {
				continue
			}
			l.Alerts.Add(1)
			if l.reasonArg != "" && alertReason(m.Data) == l.reasonArg {
				l.Matching.Add(1)
			}
		}
	}
	return nil
}

// alertReason returns the NET_DM_ATTR_REASON of an alert, "" if absent.
func alertReason(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == attrReason {
			return ad.String()
		}
	}
	return ""
}
