package netlinkclient

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// fakeKernel plays the generic netlink side for Subscriber tests: a family
// registry answering ListFamilies (through genltest), and listening sockets
// (through nltest) with multicast memberships that a family's removal drops
// silently, as the kernel does. nltest sockets do not support JoinGroup and
// never block in Receive, so fakeConn adds both.
type fakeKernel struct {
	mu       sync.Mutex
	families map[string]genetlink.Family
	conns    []*fakeConn
	joinErr  error // returned by JoinGroup for non-nlctrl groups
	listErr  error // returned by ListFamilies
	lists    int   // ListFamilies calls
	// stats answers KFW_CMD_GET_STATS of the registered kfw family; nil:
	// the request fails, as on a module that does not answer it.
	stats  *abi.ModuleStats
	dialed chan *fakeConn
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{families: map[string]genetlink.Family{}, dialed: make(chan *fakeConn, 16)}
}

func kfwFamily(id uint16, group uint32) genetlink.Family {
	return genetlink.Family{
		ID: id, Version: abi.GenlVersion, Name: abi.GenlName,
		Groups: []genetlink.MulticastGroup{{ID: group, Name: abi.McastGroupEvents}},
	}
}

// subscriber returns a Subscriber wired to k, polling on ticks.
func (k *fakeKernel) subscriber(ticks chan time.Time) *Subscriber {
	s := NewSubscriber(SubscriberConfig{Family: abi.GenlName})
	s.dialEvents = k.dialEvents
	s.dialControl = k.dialControl
	s.ticks = func() (<-chan time.Time, func()) { return ticks, func() {} }
	s.retryDelay = 0
	return s
}

func (k *fakeKernel) dialControl() (controlConn, error) {
	listFamilies := genltest.CheckRequest(unix.GENL_ID_CTRL, unix.CTRL_CMD_GETFAMILY, netlink.Request|netlink.Dump,
		func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.lists++
			if k.listErr != nil {
				return nil, k.listErr
			}
			// nlctrl lists itself first, so a dump is never empty.
			nlctrl := genetlink.Family{ID: ctrlFamilyID, Version: 2, Name: "nlctrl",
				Groups: []genetlink.MulticastGroup{{ID: ctrlNotifyGroup, Name: "notify"}}}
			msgs := []genetlink.Message{{
				Header: genetlink.Header{Command: unix.CTRL_CMD_NEWFAMILY, Version: 2},
				Data:   encodeFamily(nlctrl),
			}}
			for _, f := range k.families {
				msgs = append(msgs, genetlink.Message{
					Header: genetlink.Header{Command: unix.CTRL_CMD_NEWFAMILY, Version: 2},
					Data:   encodeFamily(f),
				})
			}
			return msgs, nil
		})
	return genltest.Dial(func(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
		if nreq.Header.Type == unix.GENL_ID_CTRL {
			return listFamilies(greq, nreq)
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		f, ok := k.families[abi.GenlName]
		if !ok || uint16(nreq.Header.Type) != f.ID || greq.Header.Command != abi.CmdGetStats || k.stats == nil {
			return nil, genltest.Error(int(unix.EOPNOTSUPP))
		}
		return []genetlink.Message{{
			Header: genetlink.Header{Command: abi.CmdGetStats, Version: abi.GenlVersion},
			Data:   encodeStats(*k.stats),
		}}, nil
	}), nil
}

// encodeStats writes a KFW_CMD_GET_STATS reply's attributes.
func encodeStats(st abi.ModuleStats) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Nested(abi.AttrStats, func(n *netlink.AttributeEncoder) error {
		n.Uint32(abi.StatsAttrABIVersion, abi.Version)
		n.String(abi.StatsAttrVersion, "0.0.0-fake")
		n.Uint64(abi.StatsAttrInstance, st.Instance)
		n.Uint64(abi.StatsAttrEventsGenerated, st.EventsGenerated)
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// encodeFamily writes a family the way nlctrl describes it.
func encodeFamily(f genetlink.Family) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint16(unix.CTRL_ATTR_FAMILY_ID, f.ID)
	ae.String(unix.CTRL_ATTR_FAMILY_NAME, f.Name)
	ae.Uint32(unix.CTRL_ATTR_VERSION, uint32(f.Version))
	if len(f.Groups) > 0 {
		ae.Nested(unix.CTRL_ATTR_MCAST_GROUPS, func(n *netlink.AttributeEncoder) error {
			for i, g := range f.Groups {
				n.Nested(uint16(i+1), func(nn *netlink.AttributeEncoder) error {
					nn.String(unix.CTRL_ATTR_MCAST_GRP_NAME, g.Name)
					nn.Uint32(unix.CTRL_ATTR_MCAST_GRP_ID, g.ID)
					return nil
				})
			}
			return nil
		})
	}
	b, err := ae.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

type delivery struct {
	msgs []netlink.Message
	err  error
}

// fakeConn is one listening socket.
type fakeConn struct {
	*genetlink.Conn // nltest-backed; only Receive is used
	k               *fakeKernel
	inbox           chan delivery
	closed          chan struct{}
	closeOnce       sync.Once
	groups          map[uint32]bool // guarded by k.mu
	joins           []uint32        // guarded by k.mu, in order
}

func (k *fakeKernel) dialEvents() (eventConn, error) {
	c := &fakeConn{k: k, inbox: make(chan delivery, 64), closed: make(chan struct{}), groups: map[uint32]bool{}}
	c.Conn = genetlink.NewConn(nltest.Dial(func([]netlink.Message) ([]netlink.Message, error) {
		select {
		case d := <-c.inbox:
			return d.msgs, d.err
		case <-c.closed:
			return nil, net.ErrClosed
		}
	}))
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	k.dialed <- c
	return c, nil
}

func (c *fakeConn) JoinGroup(group uint32) error {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	if group != ctrlNotifyGroup && c.k.joinErr != nil {
		return c.k.joinErr
	}
	c.groups[group] = true
	c.joins = append(c.joins, group)
	return nil
}

func (c *fakeConn) IsMember(group uint32) (bool, error) {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	return c.groups[group], nil
}

func (c *fakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

func (c *fakeConn) joined() []uint32 {
	c.k.mu.Lock()
	defer c.k.mu.Unlock()
	return append([]uint32(nil), c.joins...)
}

// deliver queues a datagram or an error for Receive.
func (c *fakeConn) deliver(d delivery) { c.inbox <- d }

func genlMessage(typ uint16, cmd uint8, data []byte) netlink.Message {
	b, err := genetlink.Message{Header: genetlink.Header{Command: cmd, Version: 1}, Data: data}.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ)}, Data: b}
}

// multicast sends msg to every socket that is a member of group.
func (k *fakeKernel) multicast(group uint32, msg netlink.Message) {
	k.mu.Lock()
	var to []*fakeConn
	for _, c := range k.conns {
		if c.groups[group] && !c.isClosed() {
			to = append(to, c)
		}
	}
	k.mu.Unlock()
	for _, c := range to {
		c.deliver(delivery{msgs: []netlink.Message{msg}})
	}
}

// events multicasts a batch on f's events group, as f.
func (k *fakeKernel) events(f genetlink.Family, b batch) {
	k.multicast(f.Groups[0].ID, genlMessage(f.ID, abi.CmdEvents, b.encode()))
}

// register adds f; notify says whether nlctrl's notification goes out.
func (k *fakeKernel) register(f genetlink.Family, notify bool) {
	k.mu.Lock()
	k.families[f.Name] = f
	k.mu.Unlock()
	if notify {
		k.multicast(ctrlNotifyGroup, genlMessage(ctrlFamilyID, unix.CTRL_CMD_NEWFAMILY, encodeFamily(f)))
	}
}

// unregister removes the family and drops every membership of its groups
// without telling the members, like genl_unregister_mc_groups.
func (k *fakeKernel) unregister(name string, notify bool) {
	k.mu.Lock()
	f, ok := k.families[name]
	if !ok {
		k.mu.Unlock()
		panic(fmt.Sprintf("unregister of unknown family %q", name))
	}
	delete(k.families, name)
	for _, c := range k.conns {
		for _, g := range f.Groups {
			delete(c.groups, g.ID)
		}
	}
	k.mu.Unlock()
	if notify {
		k.multicast(ctrlNotifyGroup, genlMessage(ctrlFamilyID, unix.CTRL_CMD_DELFAMILY, encodeFamily(f)))
	}
}

var errFakeList = errors.New("fake list failure")
