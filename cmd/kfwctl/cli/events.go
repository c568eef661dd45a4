package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// events prints events until ctx ends or --count events were printed.
func (c *ctl) events(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loc := c.env.Location
	if loc == nil {
		loc = time.Local
	}
	p := &eventPrinter{
		out: c.env.Stdout, diag: c.env.Stderr, json: c.output == "json", loc: loc,
		family: c.family, limit: c.count, stop: cancel,
	}
	src := c.env.Subscribe(netlinkclient.SubscriberConfig{Family: c.family, ReadBuffer: c.readBuffer, Logger: c.logger()})
	if err := src.Run(ctx, p); err != nil {
		return err
	}
	return p.err
}

// eventPrinter is the Handler of "kfwctl events": one line per event on
// stdout, like conntrack -E or dropwatch, and one per loss or overrun;
// subscription changes and decode errors go to stderr.
type eventPrinter struct {
	out, diag io.Writer
	json      bool
	loc       *time.Location
	family    string
	limit     uint64 // 0: no limit
	printed   uint64
	stop      func()
	buf       []byte
	err       error // first write error; printing stops there
}

func (p *eventPrinter) write(b []byte) {
	if p.err != nil {
		return
	}
	if _, err := p.out.Write(b); err != nil {
		p.err = fmt.Errorf("write events: %w", err)
		p.stop()
	}
}

func (p *eventPrinter) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		p.err = err
		p.stop()
		return
	}
	p.write(append(b, '\n'))
}

func (p *eventPrinter) HandleEvent(ev *netlinkclient.Event) {
	if p.limit > 0 && p.printed >= p.limit {
		return
	}
	p.printed++
	if p.json {
		p.writeJSON(newJSONEvent(ev))
	} else {
		p.buf = appendEventLine(p.buf[:0], ev, p.loc)
		p.write(p.buf)
	}
	if p.limit > 0 && p.printed == p.limit {
		p.stop()
	}
}

func (p *eventPrinter) HandleLoss(instance uint64, cpu uint32, n uint64) {
	if p.json {
		p.writeJSON(jsonLoss{Type: "loss", Lost: n, CPU: cpu, Instance: abi.FormatInstance(instance)})
		return
	}
	p.write(fmt.Appendf(p.buf[:0], "lost %d events on cpu %d (instance %s)\n", n, cpu, abi.FormatInstance(instance)))
}

func (p *eventPrinter) HandleOverrun() {
	if p.json {
		p.writeJSON(jsonLoss{Type: "overrun"})
		return
	}
	p.write(append(p.buf[:0], "overrun: receive buffer full, the kernel dropped events (count follows)\n"...))
}

func (p *eventPrinter) HandleDecodeError(err error) {
	fmt.Fprintf(p.diag, "kfwctl: skipped a message: %v\n", err)
}

func (p *eventPrinter) HandleState(s netlinkclient.State) {
	switch {
	case s.Subscribed && s.Resubscribed:
		fmt.Fprintf(p.diag, "kfwctl: resubscribed to %s events (family id %d)\n", p.family, s.FamilyID)
	case s.Subscribed:
		fmt.Fprintf(p.diag, "kfwctl: subscribed to %s events (family id %d)\n", p.family, s.FamilyID)
	default:
		fmt.Fprintf(p.diag, "kfwctl: not subscribed: %v\n", s.Err)
	}
}

// appendEventLine formats one event:
//
//	2024-05-01T12:00:00.000123+02:00 drop rule=20 ipv4 input tcp 10.0.0.1:4000 -> 10.0.0.2:22 iif=2 len=60
func appendEventLine(b []byte, ev *netlinkclient.Event, loc *time.Location) []byte {
	b = time.Unix(0, ev.Timestamp).In(loc).AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	b = append(b, ' ')
	b = append(b, ev.Type.String()...)
	if ev.Rule == abi.RuleIDPolicy {
		b = append(b, " policy"...)
	} else {
		b = append(b, " rule="...)
		b = strconv.AppendUint(b, uint64(ev.Rule), 10)
	}
	b = append(b, ' ')
	b = append(b, abi.FamilyName(ev.Family)...)
	b = append(b, ' ')
	b = append(b, ev.Hook.String()...)
	b = append(b, ' ')
	b = append(b, abi.ProtoName(ev.Proto)...)
	b = append(b, ' ')
	b = appendEndpoint(b, ev.Src, ev.Sport, ev.Sport != 0 || ev.Dport != 0)
	b = append(b, " -> "...)
	b = appendEndpoint(b, ev.Dst, ev.Dport, ev.Sport != 0 || ev.Dport != 0)
	if ev.Iif != 0 {
		b = append(b, " iif="...)
		b = strconv.AppendUint(b, uint64(ev.Iif), 10)
	}
	if ev.Oif != 0 {
		b = append(b, " oif="...)
		b = strconv.AppendUint(b, uint64(ev.Oif), 10)
	}
	b = append(b, " len="...)
	b = strconv.AppendUint(b, uint64(ev.Len), 10)
	if ev.Suppressed != 0 {
		b = append(b, " suppressed="...)
		b = strconv.AppendUint(b, uint64(ev.Suppressed), 10)
	}
	return append(b, '\n')
}

// appendEndpoint writes addr, addr:port or [addr6]:port.
func appendEndpoint(b []byte, a netip.Addr, port uint16, withPort bool) []byte {
	switch {
	case !a.IsValid():
		return append(b, '?')
	case withPort:
		return netip.AddrPortFrom(a, port).AppendTo(b)
	}
	return a.AppendTo(b)
}

type jsonEvent struct {
	Time       string `json:"time"`
	Type       string `json:"type"`
	Rule       uint32 `json:"rule"`
	Family     string `json:"family"`
	Hook       string `json:"hook"`
	Proto      string `json:"proto"`
	Src        string `json:"src,omitempty"`
	Sport      uint16 `json:"sport,omitempty"`
	Dst        string `json:"dst,omitempty"`
	Dport      uint16 `json:"dport,omitempty"`
	Iif        uint32 `json:"iif,omitempty"`
	Oif        uint32 `json:"oif,omitempty"`
	Len        uint32 `json:"len"`
	Suppressed uint32 `json:"suppressed"`
	CPU        uint32 `json:"cpu"`
	Seq        uint64 `json:"seq"`
	Instance   string `json:"instance"`
}

func newJSONEvent(ev *netlinkclient.Event) jsonEvent {
	j := jsonEvent{
		Time: time.Unix(0, ev.Timestamp).UTC().Format(time.RFC3339Nano),
		Type: ev.Type.String(), Rule: ev.Rule, Family: abi.FamilyName(ev.Family), Hook: ev.Hook.String(),
		Proto: abi.ProtoName(ev.Proto), Sport: ev.Sport, Dport: ev.Dport, Iif: ev.Iif, Oif: ev.Oif,
		Len: ev.Len, Suppressed: ev.Suppressed, CPU: ev.CPU, Seq: ev.Seq, Instance: abi.FormatInstance(ev.Instance),
	}
	if ev.Src.IsValid() {
		j.Src = ev.Src.String()
	}
	if ev.Dst.IsValid() {
		j.Dst = ev.Dst.String()
	}
	return j
}

// jsonLoss is a "loss" or "overrun" line of -o json.
type jsonLoss struct {
	Type     string `json:"type"`
	Lost     uint64 `json:"lost,omitempty"`
	CPU      uint32 `json:"cpu,omitempty"`
	Instance string `json:"instance,omitempty"`
}
