package netlinkclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Family     string       // generic netlink family name, "kfw"
	ReadBuffer int          // bytes for SO_RCVBUF(FORCE); 0 = DefaultReadBuffer
	Logger     *slog.Logger // nil = discard
}

// Timing of the reconnect machinery. Notifications from nlctrl make changes
// visible at once; the poll is the safety net for notifications lost in an
// overrun.
const (
	pollInterval      = 5 * time.Second
	minResolveGap     = time.Second // at most one extra resolve per second after overruns
	retryDelayInitial = time.Second // after the socket itself failed
	retryDelayMax     = 30 * time.Second
)

// Subscriber receives the kfw "events" multicast group and reports every
// event, loss, overrun and subscription change to a Handler. It keeps
// itself subscribed across module loads and unloads.
type Subscriber struct {
	family     string
	readBuffer int
	log        *slog.Logger

	// Seams for tests; set by NewSubscriber to the real thing.
	dialEvents  func() (eventConn, error)
	dialControl func() (controlConn, error)
	ticks       func() (<-chan time.Time, func())
	afterTick   func() // nil, or called when a tick's resolve is done
	retryDelay  time.Duration
}

// NewSubscriber returns a Subscriber for cfg; nothing happens before Run.
func NewSubscriber(cfg SubscriberConfig) *Subscriber {
	s := &Subscriber{
		family:     cfg.Family,
		readBuffer: cfg.ReadBuffer,
		log:        cfg.Logger,
		retryDelay: retryDelayInitial,
	}
	if s.family == "" {
		s.family = abi.GenlName
	}
	if s.readBuffer <= 0 {
		s.readBuffer = DefaultReadBuffer
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.dialEvents = func() (eventConn, error) { return dialListenConn(s.readBuffer, s.log) }
	s.dialControl = dialControlConn
	s.ticks = func() (<-chan time.Time, func()) {
		t := time.NewTicker(pollInterval)
		return t.C, t.Stop
	}
	return s
}

// Run blocks until ctx is cancelled, then returns nil. Meanwhile it
// subscribes to the family's "events" group, resubscribes after module
// reloads, reopens its socket if that fails, and reports everything to h,
// one call at a time from Run's goroutine.
//
// The module may be absent at start and may come and go at any time: Run
// follows nlctrl's notifications of new and deleted families and also
// polls the family list. While the module is absent, h sees a State with
// Err wrapping ErrModuleNotLoaded.
func (s *Subscriber) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("netlinkclient: Subscriber.Run needs a Handler")
	}
	st := &subscription{s: s, h: h}
	delay := s.retryDelay
	for {
		err := st.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		st.down(err)
		if st.subscribedInSession {
			delay = s.retryDelay
		}
		s.log.Warn("event socket failed; reopening", "err", err, "delay", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, retryDelayMax)
	}
}

// subscription is the state of one Run, across socket sessions.
type subscription struct {
	s   *Subscriber
	h   Handler
	dec eventDecoder

	conn     eventConn // the current session's socket
	active   bool      // a member of the current family's events group
	familyID uint16
	groupID  uint32

	subscriptions       int // successful joins so far, over all sessions
	subscribedInSession bool
	lastResolve         time.Time
	reported            State
	reportedOnce        bool
}

// received is one Receive result, handed from the reading goroutine to the
// session loop.
type received struct {
	msgs  []genetlink.Message
	nmsgs []netlink.Message
	err   error
}

// session runs one listening socket until it fails (returning why) or ctx
// ends (returning nil).
func (st *subscription) session(ctx context.Context) error {
	conn, err := st.s.dialEvents()
	if err != nil {
		return err
	}
	st.conn, st.active, st.subscribedInSession = conn, false, false
	// Join nlctrl's notifications before the first resolve so that no
	// change can slip between the two.
	if err := conn.JoinGroup(ctrlNotifyGroup); err != nil {
		conn.Close()
		return fmt.Errorf("join nlctrl notify group: %w", err)
	}

	sctx, cancel := context.WithCancel(ctx)
	recv := make(chan received, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		readLoop(sctx, conn, recv)
	}()
	defer func() {
		// Close unblocks the reader's Receive; wait for it so that no
		// goroutine outlives the session.
		cancel()
		conn.Close()
		<-readerDone
		st.active = false
	}()

	ticks, stop := st.s.ticks()
	defer stop()

	st.resolve()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
			st.resolve()
			if st.s.afterTick != nil {
				st.s.afterTick()
			}
		case r := <-recv:
			if r.err != nil {
				if ctx.Err() != nil {
					return nil
				}
				switch receiveErrorKind(r.err) {
				case errOverrun:
					st.h.HandleOverrun()
					// nlctrl notifications may have been dropped too.
					if time.Since(st.lastResolve) >= minResolveGap {
						st.resolve()
					}
				case errFatal:
					return fmt.Errorf("receive: %w", r.err)
				default:
					st.h.HandleDecodeError(fmt.Errorf("receive: %w", r.err))
				}
				continue
			}
			for i, m := range r.msgs {
				st.dispatch(r.nmsgs[i].Header.Type, m)
			}
		}
	}
}

type receiveErrKind int

const (
	errMessage receiveErrKind = iota // a bad datagram, consumed: go on
	errOverrun                       // ENOBUFS: the kernel dropped datagrams for us
	errFatal                         // the socket is unusable
)

// receiveErrorKind sorts Receive errors. Errors from the socket itself
// arrive as *os.SyscallError (or as "closed"); parse errors of a datagram
// that was read are plain errors, and the next Receive reads the next one.
func receiveErrorKind(err error) receiveErrKind {
	var se *os.SyscallError
	switch {
	case errors.Is(err, unix.ENOBUFS):
		return errOverrun
	case errors.As(err, &se), errors.Is(err, os.ErrClosed), errors.Is(err, net.ErrClosed):
		return errFatal
	}
	return errMessage
}

// readLoop receives until the socket fails or ctx ends.
func readLoop(ctx context.Context, conn eventConn, out chan<- received) {
	for {
		msgs, nmsgs, err := conn.Receive()
		select {
		case out <- received{msgs: msgs, nmsgs: nmsgs, err: err}:
		case <-ctx.Done():
			return
		}
		if err != nil && receiveErrorKind(err) == errFatal {
			return
		}
	}
}

// dispatch handles one message: an events batch of the current family, or
// an nlctrl notification.
func (st *subscription) dispatch(typ netlink.HeaderType, m genetlink.Message) {
	switch {
	case typ == ctrlFamilyID:
		st.handleCtrl(m)
	case st.active && uint16(typ) == st.familyID && m.Header.Command == abi.CmdEvents:
		st.dec.decodeBatch(m.Data, st.h)
	default:
		// A late batch of a family id we left, or a command this
		// version does not know: not ours to decode.
		st.s.log.Debug("ignoring message", "type", uint16(typ), "command", m.Header.Command)
	}
}

// handleCtrl follows nlctrl's notifications about our family.
func (st *subscription) handleCtrl(m genetlink.Message) {
	if m.Header.Command != unix.CTRL_CMD_NEWFAMILY && m.Header.Command != unix.CTRL_CMD_DELFAMILY {
		return
	}
	name, id, err := parseCtrlFamily(m.Data)
	if err != nil {
		st.h.HandleDecodeError(fmt.Errorf("nlctrl notification: %w", err))
		st.resolve()
		return
	}
	if name != st.s.family {
		return
	}
	if m.Header.Command == unix.CTRL_CMD_DELFAMILY {
		if st.active && id == st.familyID {
			st.s.log.Info("family unregistered", "family", st.s.family, "id", id)
			st.down(familyNotFound(st.s.family))
		}
		return
	}
	st.s.log.Info("family registered", "family", st.s.family, "id", id)
	st.resolve()
}

// parseCtrlFamily reads the family name and id of an nlctrl notification.
func parseCtrlFamily(b []byte) (string, uint16, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", 0, err
	}
	var name string
	var id uint16
	for ad.Next() {
		switch ad.Type() {
		case unix.CTRL_ATTR_FAMILY_NAME:
			name = ad.String()
		case unix.CTRL_ATTR_FAMILY_ID:
			id = ad.Uint16()
		}
	}
	return name, id, ad.Err()
}

// resolve looks the family up on a control connection and makes the
// listening socket a member of its events group if it is not one already.
func (st *subscription) resolve() {
	st.lastResolve = time.Now()
	fams, err := listFamilies(st.s.dialControl)
	if err != nil {
		if !st.active {
			st.down(err)
		}
		st.s.log.Warn("cannot list generic netlink families", "err", err)
		return
	}
	fam, ok := findFamily(fams, st.s.family)
	if !ok {
		st.down(familyNotFound(st.s.family))
		return
	}
	if fam.Version != abi.GenlVersion {
		st.down(fmt.Errorf("generic netlink family %q has version %d, this program speaks %d", fam.Name, fam.Version, abi.GenlVersion))
		return
	}
	var groupID uint32
	for _, g := range fam.Groups {
		if g.Name == abi.McastGroupEvents {
			groupID = g.ID
		}
	}
	if groupID == 0 {
		st.down(fmt.Errorf("generic netlink family %q has no %q group", fam.Name, abi.McastGroupEvents))
		return
	}
	if st.active && fam.ID == st.familyID && groupID == st.groupID && st.stillMember() {
		return
	}
	if err := st.conn.JoinGroup(groupID); err != nil {
		st.down(fmt.Errorf("join %q group %d of family %q: %w", abi.McastGroupEvents, groupID, fam.Name, err))
		return
	}
	st.up(fam.ID, groupID, st.untouchedInstance(fam))
}

// statsTimeout bounds the stats request that follows a join.
const statsTimeout = 5 * time.Second

// untouchedInstance returns the module's instance if it has generated no
// event yet, else 0 (also when it cannot tell). Asked after joining: an
// instance that had generated nothing by then sends every event it will
// ever generate to this listener, so all its sequence numbers, from 0 on
// every CPU, are this listener's to account for (docs/ABI.md, "Loss
// accounting": "0 after a load"). Without this, a CPU whose first
// batches overflowed the socket would start at a later number and hide
// that loss.
func (st *subscription) untouchedInstance(fam genetlink.Family) uint64 {
	c, err := st.s.dialControl()
	if err != nil {
		st.s.log.Debug("cannot ask for the module's stats", "err", err)
		return 0
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	stats, err := (&Client{conn: c, family: fam}).Stats(ctx)
	if err != nil {
		st.s.log.Debug("cannot ask for the module's stats: loss counting starts at the first sequence number seen", "err", err)
		return 0
	}
	if stats.EventsGenerated != 0 {
		return 0
	}
	return stats.Instance
}

// stillMember checks the socket's membership where the socket can tell;
// otherwise it trusts the family id, which changes on every registration.
func (st *subscription) stillMember() bool {
	ml, ok := st.conn.(membershipLister)
	if !ok {
		return true
	}
	member, err := ml.IsMember(st.groupID)
	if err != nil {
		st.s.log.Debug("cannot check group membership", "err", err)
		return true
	}
	if !member {
		st.s.log.Info("membership of the events group was dropped", "group", st.groupID)
	}
	return member
}

// up records a new membership and reports it. untouched, if not 0, is an
// instance that had generated no event when we joined.
func (st *subscription) up(familyID uint16, groupID uint32, untouched uint64) {
	st.active, st.familyID, st.groupID = true, familyID, groupID
	st.subscribedInSession = true
	// Whatever was generated while we were not a member is no loss of ours.
	st.dec.tracker.reset()
	if untouched != 0 {
		st.dec.tracker.ownsFromStart(untouched)
	}
	s := State{Subscribed: true, FamilyID: familyID, Resubscribed: st.subscriptions > 0}
	st.subscriptions++
	st.s.log.Info("subscribed", "family", st.s.family, "id", familyID, "group", groupID, "resubscribed", s.Resubscribed)
	st.report(s, true)
}

// down records that we are not subscribed, and why.
func (st *subscription) down(err error) {
	st.active = false
	st.report(State{Err: err}, false)
}

// report passes s to the handler unless it says nothing new: a new
// subscription is always news, a repeated failure is not.
func (st *subscription) report(s State, always bool) {
	if !always && st.reportedOnce && sameState(st.reported, s) {
		return
	}
	st.reported, st.reportedOnce = s, true
	st.h.HandleState(s)
}

func sameState(a, b State) bool {
	if a.Subscribed != b.Subscribed || a.FamilyID != b.FamilyID || (a.Err == nil) != (b.Err == nil) {
		return false
	}
	return a.Err == nil || a.Err.Error() == b.Err.Error()
}
