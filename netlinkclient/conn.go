package netlinkclient

import (
	"errors"
	"fmt"
	"log/slog"
	"unsafe"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The sockets hide behind these small interfaces so that tests can run the
// Subscriber and the Client on nltest/genltest fakes. *genetlink.Conn
// satisfies all of them.

// eventConn is the listening socket of a Subscriber.
type eventConn interface {
	Receive() ([]genetlink.Message, []netlink.Message, error)
	JoinGroup(group uint32) error
	Close() error
}

// membershipLister is an eventConn that can tell which multicast groups it
// is a member of right now (NETLINK_LIST_MEMBERSHIPS). The kernel drops
// memberships silently when a family goes away, so this is how a poll
// notices that a subscription was lost even if every notification was.
type membershipLister interface {
	IsMember(group uint32) (bool, error)
}

// controlConn resolves families and asks the module for its stats; it is
// short-lived and never the listening socket, whose Receive would block
// Execute (see FIELD-NOTES).
type controlConn interface {
	commandConn
}

// nlctrl, the generic netlink controller: its fixed family id and the fixed
// id of its "notify" group (GENL_ID_CTRL for both).
const (
	ctrlFamilyID    = unix.GENL_ID_CTRL
	ctrlNotifyGroup = unix.GENL_ID_CTRL
)

// Buffers of the listening socket.
const (
	// DefaultReadBuffer is the receive buffer a Subscriber asks for when
	// SubscriberConfig.ReadBuffer is 0: room for a few thousand batches.
	DefaultReadBuffer = 8 << 20
	// messageBufferSize is the fixed user-space buffer for one datagram,
	// which spares the MSG_PEEK recvmsg per datagram. A batch is at most
	// NLMSG_GOODSIZE (a page); a larger datagram is lost as truncated.
	messageBufferSize = 64 << 10
)

// listenConn is the real listening socket.
type listenConn struct {
	*genetlink.Conn
}

// dialListenConn opens a generic netlink socket for multicast reception.
// The receive buffer is best effort (SO_RCVBUFFORCE needs CAP_NET_ADMIN, the
// fallback is capped by net.core.rmem_max): a failure is only logged.
//
// NETLINK_BROADCAST_ERROR makes the kernel's multicast fail with ENOBUFS
// when this socket's buffer is full, even if other listeners took the
// batch: that is how kfw learns that it must send sync batches (the
// exact loss count) and counts events_nobufs.
func dialListenConn(readBuffer int, log *slog.Logger) (eventConn, error) {
	c, err := genetlink.Dial(&netlink.Config{MessageBufferSize: messageBufferSize})
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	if err := c.SetOption(netlink.BroadcastError, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("enable NETLINK_BROADCAST_ERROR: %w", err)
	}
	if err := c.SetReadBuffer(readBuffer); err != nil {
		log.Warn("cannot set the receive buffer; overruns are more likely", "bytes", readBuffer, "err", err)
	}
	return listenConn{c}, nil
}

// IsMember reads NETLINK_LIST_MEMBERSHIPS, a bitmap where group g is bit
// g-1.
func (c listenConn) IsMember(group uint32) (bool, error) {
	if group == 0 {
		return false, errors.New("group 0")
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return false, err
	}
	var words [64]uint32 // groups 1..2048; generic netlink uses far fewer
	size := uint32(len(words) * 4)
	var serr error
	err = rc.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_NETLINK, unix.NETLINK_LIST_MEMBERSHIPS,
			uintptr(unsafe.Pointer(&words[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return false, fmt.Errorf("getsockopt NETLINK_LIST_MEMBERSHIPS: %w", err)
	}
	i := (group - 1) / 32
	if i >= uint32(len(words)) {
		return false, fmt.Errorf("group %d beyond the membership bitmap", group)
	}
	if i*4 >= size {
		return false, nil // the socket never had groups that high
	}
	return words[i]&(1<<((group-1)%32)) != 0, nil
}

// dialControlConn opens a short-lived socket to resolve families.
func dialControlConn() (controlConn, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	return c, nil
}

// listFamilies runs one ListFamilies on a fresh control connection. It
// never uses GetFamily: asking for a missing family by name makes the
// kernel load its module, which would undo an administrator's rmmod.
func listFamilies(dial func() (controlConn, error)) ([]genetlink.Family, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fams, err := c.ListFamilies()
	if err != nil {
		return nil, fmt.Errorf("list generic netlink families: %w", err)
	}
	return fams, nil
}

// findFamily picks name out of fams.
func findFamily(fams []genetlink.Family, name string) (genetlink.Family, bool) {
	for _, f := range fams {
		if f.Name == name {
			return f, true
		}
	}
	return genetlink.Family{}, false
}
