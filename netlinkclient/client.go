package netlinkclient

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// commandConn is what a Client needs from its socket; *genetlink.Conn has
// it, and so does a genltest fake (whose deadline and buffer setters merely
// fail).
type commandConn interface {
	Execute(m genetlink.Message, family uint16, flags netlink.HeaderFlags) ([]genetlink.Message, error)
	ListFamilies() ([]genetlink.Family, error)
	SetDeadline(t time.Time) error
	SetWriteBuffer(bytes int) error
	Close() error
}

// Client runs kfw commands. It is safe for concurrent use; commands are
// serialised on one socket.
type Client struct {
	mu     sync.Mutex
	conn   commandConn
	family genetlink.Family
}

// Dial opens a generic netlink socket and resolves family ("kfw") with
// ListFamilies, which unlike GetFamily never makes the kernel load the
// module. If the family is not registered the error wraps
// ErrModuleNotLoaded (and os.ErrNotExist).
func Dial(family string) (*Client, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	// Extended acks carry the kernel's reason for refusing a command. Do
	// not set CapAcknowledge: with it, netlink v1.11.2 misreads the capped
	// error message and loses both errno and reason.
	if err := c.SetOption(netlink.ExtendedAcknowledge, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("enable netlink extended acknowledgements: %w", err)
	}
	cl, err := newClient(c, family)
	if err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// newClient resolves family on conn.
func newClient(conn commandConn, family string) (*Client, error) {
	fams, err := conn.ListFamilies()
	if err != nil {
		return nil, fmt.Errorf("list generic netlink families: %w", err)
	}
	f, ok := findFamily(fams, family)
	if !ok {
		return nil, familyNotFound(family)
	}
	if f.Version != abi.GenlVersion {
		return nil, fmt.Errorf("generic netlink family %q has version %d, this program speaks %d: %w",
			family, f.Version, abi.GenlVersion, abi.ErrUnsupportedVersion)
	}
	return &Client{conn: conn, family: f}, nil
}

// Close closes the socket.
func (c *Client) Close() error { return c.conn.Close() }

// FamilyID returns the generic netlink family id the Client resolved.
func (c *Client) FamilyID() uint16 { return c.family.ID }

// largeRequest is the request size beyond which execute raises the
// socket's send buffer, which otherwise caps one message (wmem_default).
const largeRequest = 128 << 10

// execute runs one command. ctx bounds it through the socket deadline, so
// a cancelled ctx unblocks a waiting Execute.
func (c *Client) execute(ctx context.Context, op string, cmd uint8, flags netlink.HeaderFlags, data []byte) ([]genetlink.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()

	// Deadlines are best effort: fakes do not support them, and a real
	// netlink socket answers promptly anyway.
	deadline, _ := ctx.Deadline()
	_ = c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if len(data) > largeRequest {
		if err := c.conn.SetWriteBuffer(len(data) + 4096); err != nil {
			return nil, fmt.Errorf("%s: %s: raise send buffer to %d bytes: %w", c.family.Name, op, len(data), err)
		}
	}

	msgs, err := c.conn.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: abi.GenlVersion},
		Data:   data,
	}, c.family.ID, flags)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, ctx.Err())
		}
		return nil, commandError(c.family.Name, op, err)
	}
	return msgs, nil
}

// do runs a mutating command that answers with an ack.
func (c *Client) do(ctx context.Context, op string, cmd uint8, encode func(*netlink.AttributeEncoder)) error {
	var data []byte
	if encode != nil {
		ae := netlink.NewAttributeEncoder()
		encode(ae)
		var err error
		if data, err = ae.Encode(); err != nil {
			return fmt.Errorf("%s: %s: encode: %w", c.family.Name, op, err)
		}
	}
	_, err := c.execute(ctx, op, cmd, netlink.Request|netlink.Acknowledge, data)
	return err
}

// Stats returns the numbers of /proc/kfw/stats. An ABI version this
// package does not speak is an error wrapping abi.ErrUnsupportedVersion.
func (c *Client) Stats(ctx context.Context) (abi.ModuleStats, error) {
	const op = "get stats"
	msgs, err := c.execute(ctx, op, abi.CmdGetStats, netlink.Request, nil)
	if err != nil {
		return abi.ModuleStats{}, err
	}
	for _, m := range msgs {
		nests, err := nestedOf(m.Data, abi.AttrStats)
		if err != nil {
			return abi.ModuleStats{}, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
		}
		if len(nests) > 0 {
			st, err := decodeStats(nests[0])
			if err != nil {
				return abi.ModuleStats{}, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
			}
			return st, nil
		}
	}
	return abi.ModuleStats{}, fmt.Errorf("%s: %s: reply without KFW_A_STATS", c.family.Name, op)
}

// Rules dumps the rule table in ascending id order, with counters.
func (c *Client) Rules(ctx context.Context) ([]RuleInfo, error) {
	const op = "list rules"
	msgs, err := c.execute(ctx, op, abi.CmdGetRule, netlink.Request|netlink.Dump, nil)
	if err != nil {
		return nil, err
	}
	rules := make([]RuleInfo, 0, len(msgs))
	for _, m := range msgs {
		nests, err := nestedOf(m.Data, abi.AttrRule)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
		}
		for _, n := range nests {
			ri, err := decodeRule(n)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
			}
			rules = append(rules, ri)
		}
	}
	return rules, nil
}

// AddRule adds r to the table.
func (c *Client) AddRule(ctx context.Context, r abi.Rule) error {
	return c.do(ctx, "add rule "+strconv.Itoa(int(r.ID)), abi.CmdNewRule, func(ae *netlink.AttributeEncoder) {
		encodeRule(ae, r)
	})
}

// DelRule deletes rule id; a missing rule is an error wrapping ENOENT.
func (c *Client) DelRule(ctx context.Context, id uint16) error {
	return c.do(ctx, "delete rule "+strconv.Itoa(int(id)), abi.CmdDelRule, func(ae *netlink.AttributeEncoder) {
		ae.Nested(abi.AttrRule, func(n *netlink.AttributeEncoder) error {
			n.Uint32(abi.RuleAttrID, uint32(id))
			return nil
		})
	})
}

// Flush deletes every rule; policies stay.
func (c *Client) Flush(ctx context.Context) error {
	return c.do(ctx, "flush rules", abi.CmdFlush, nil)
}

// SetPolicy sets the default policy of one or more hooks in one
// transaction.
func (c *Client) SetPolicy(ctx context.Context, policies ...abi.Policy) error {
	return c.do(ctx, "set policy", abi.CmdSetPolicy, func(ae *netlink.AttributeEncoder) {
		for _, p := range policies {
			encodePolicy(ae, p)
		}
	})
}

// Policies returns the default policy of every hook, in hook order.
func (c *Client) Policies(ctx context.Context) ([]abi.Policy, error) {
	const op = "get policy"
	msgs, err := c.execute(ctx, op, abi.CmdGetPolicy, netlink.Request, nil)
	if err != nil {
		return nil, err
	}
	var policies []abi.Policy
	for _, m := range msgs {
		nests, err := nestedOf(m.Data, abi.AttrPolicy)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
		}
		for _, n := range nests {
			p, err := decodePolicy(n)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", c.family.Name, op, err)
			}
			policies = append(policies, p)
		}
	}
	return policies, nil
}

// Replace atomically replaces the table: every rule is flushed, the given
// policies are set (hooks not named keep theirs) and rules are added, all
// or nothing. Rules that stay the same keep their counters.
func (c *Client) Replace(ctx context.Context, policies []abi.Policy, rules []abi.Rule) error {
	return c.do(ctx, "replace table", abi.CmdReplace, func(ae *netlink.AttributeEncoder) {
		for _, p := range policies {
			encodePolicy(ae, p)
		}
		for _, r := range rules {
			encodeRule(ae, r)
		}
	})
}
