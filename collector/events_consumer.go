package collector

import (
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

// eventDelayBuckets spans a local pipeline: a worker drains the queues within
// microseconds to milliseconds; seconds mean a stalled reader.
var eventDelayBuckets = []float64{
	.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
}

// ruleOther is the rule key of events whose rule found no free series slot.
const ruleOther = math.MaxUint32

// protoClass is the proto label: a fixed set, so that a sender cannot create
// series by spraying protocol numbers.
type protoClass uint8

const (
	protoOther protoClass = iota
	protoTCP
	protoUDP
	protoICMP
	protoICMPv6
)

var protoClassNames = [...]string{protoOther: "other", protoTCP: "tcp", protoUDP: "udp", protoICMP: "icmp", protoICMPv6: "icmpv6"}

func protoClassOf(p uint8) protoClass {
	switch p {
	case 6:
		return protoTCP
	case 17:
		return protoUDP
	case 1:
		return protoICMP
	case 58:
		return protoICMPv6
	}
	return protoOther
}

// Values outside the ABI are folded into one "unknown" key each, so that two
// keys never produce the same labels.
const (
	familyUnknown = math.MaxUint8
	hookUnknown   = abi.Hook(math.MaxUint8)
)

// eventKey identifies one series of kfw_drop_events_total or kfw_hit_events_total.
type eventKey struct {
	typ    abi.EventType // abi.EventDrop or abi.EventHit
	rule   uint32        // a rule id, abi.RuleIDPolicy or ruleOther
	family uint8         // abi.FamilyIPv4, abi.FamilyIPv6 or familyUnknown
	hook   abi.Hook      // a hook or hookUnknown
	proto  protoClass
}

type eventSeries struct {
	count  uint64
	born   uint64           // prune epoch at creation: younger series survive a prune
	labels []*dto.LabelPair // built once, shared by every scrape
}

// eventConsumer is the netlinkclient.Handler of the events collector. The
// subscriber's goroutine calls it; scrapes read it. All state is guarded by
// mu except the histogram, which is safe on its own.
type eventConsumer struct {
	logger   *slog.Logger
	maxRules int
	now      func() time.Time

	received, dropEvents, hitEvents, lost, overruns, decodeErrors typedDesc
	subscribed, resubscriptions, lastEvent, overLimit             typedDesc
	delay                                                         prometheus.Histogram

	mu              sync.Mutex
	series          map[eventKey]*eventSeries
	rules           map[uint32]int // rule id → its number of series; at most maxRules ids
	epoch           uint64
	receivedByType  [3]uint64 // abi.EventDrop, abi.EventHit, and 0 for unknown types
	lostTotal       uint64
	overrunsTotal   uint64
	decodeTotal     uint64
	resubTotal      uint64
	overLimitTotal  uint64
	isSubscribed    bool
	familyID        uint16
	lastErr         string
	lastEventNs     int64
	instance        uint64
	limitLogged     bool
	lastDecodeLog   time.Time
	decodeLogMissed uint64
}

// decodeLogEvery rate-limits the decode error log line; the counter has them all.
const decodeLogEvery = time.Minute

func newEventConsumer(maxRules int, logger *slog.Logger) *eventConsumer {
	seriesLabels := []string{"rule", "family", "hook", "proto"}
	return &eventConsumer{
		logger:   logger,
		maxRules: maxRules,
		now:      time.Now,
		series:   map[eventKey]*eventSeries{},
		rules:    map[uint32]int{},
		received: newTypedDesc("kfw_events_received_total",
			"Events received from the module over netlink, by type.", prometheus.CounterValue, "type"),
		dropEvents: newTypedDesc("kfw_drop_events_total",
			`Drop events received, by rule ("policy": a hook's default policy; "other": rules beyond --collector.events.max-rules).`,
			prometheus.CounterValue, seriesLabels...),
		hitEvents: newTypedDesc("kfw_hit_events_total",
			`Hit events (accepted by a rule with log=1) received, by rule ("other": rules beyond --collector.events.max-rules).`,
			prometheus.CounterValue, seriesLabels...),
		lost: newTypedDesc("kfw_events_lost_total",
			"Events the module generated that never reached this exporter, counted exactly from sequence numbers.",
			prometheus.CounterValue),
		overruns: newTypedDesc("kfw_netlink_overruns_total",
			"Times the event socket's receive buffer overflowed (ENOBUFS); the lost events are in kfw_events_lost_total.",
			prometheus.CounterValue),
		decodeErrors: newTypedDesc("kfw_netlink_decode_errors_total",
			"Event messages that could not be decoded and were skipped.", prometheus.CounterValue),
		subscribed: newTypedDesc("kfw_netlink_subscribed",
			"Whether the exporter is subscribed to the module's events multicast group (1) or not (0).",
			prometheus.GaugeValue),
		resubscriptions: newTypedDesc("kfw_netlink_resubscriptions_total",
			"Subscriptions to the events group after the first one (module reloaded, socket reopened).",
			prometheus.CounterValue),
		lastEvent: newTypedDesc("kfw_last_event_timestamp_seconds",
			"Kernel timestamp (CLOCK_REALTIME) of the newest event received; absent until the first one.",
			prometheus.GaugeValue),
		overLimit: newTypedDesc("kfw_events_over_rule_limit_total",
			`Events counted under rule="other" because --collector.events.max-rules rules already had series.`,
			prometheus.CounterValue),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kfw_event_delay_seconds",
			Help:    "Time from the kernel timestamp of an event to its receipt by the exporter.",
			Buckets: eventDelayBuckets,
		}),
	}
}

// HandleEvent implements netlinkclient.Handler.
func (c *eventConsumer) HandleEvent(ev *netlinkclient.Event) {
	var delay time.Duration
	if ev.Timestamp > 0 {
		// The kernel stamps CLOCK_REALTIME: a clock step can make it
		// look like the future.
		delay = max(0, time.Duration(c.now().UnixNano()-ev.Timestamp))
	}
	c.mu.Lock()
	c.countLocked(ev)
	c.mu.Unlock()
	if ev.Timestamp > 0 {
		c.delay.Observe(delay.Seconds())
	}
}

func (c *eventConsumer) countLocked(ev *netlinkclient.Event) {
	if ev.Type != abi.EventDrop && ev.Type != abi.EventHit {
		c.receivedByType[0]++
		return
	}
	c.receivedByType[ev.Type]++
	if ev.Instance != c.instance {
		if c.instance != 0 {
			c.logger.Info("kfw module instance changed: module reloaded",
				"old", abi.FormatInstance(c.instance), "new", abi.FormatInstance(ev.Instance))
		}
		c.instance = ev.Instance
	}
	if ev.Timestamp > c.lastEventNs {
		c.lastEventNs = ev.Timestamp
	}
	key := eventKey{typ: ev.Type, rule: c.ruleKeyLocked(ev.Rule), family: ev.Family, hook: ev.Hook, proto: protoClassOf(ev.Proto)}
	if key.family != abi.FamilyIPv4 && key.family != abi.FamilyIPv6 {
		key.family = familyUnknown
	}
	if key.hook > abi.HookOutput {
		key.hook = hookUnknown
	}
	s := c.series[key]
	if s == nil {
		s = c.newSeriesLocked(key)
	}
	s.count++
}

// ruleKeyLocked returns the rule id to count an event under: its own while
// it has or can get series, ruleOther once maxRules ids have series.
func (c *eventConsumer) ruleKeyLocked(rule uint32) uint32 {
	if rule == abi.RuleIDPolicy {
		return rule
	}
	if _, ok := c.rules[rule]; ok || len(c.rules) < c.maxRules {
		return rule
	}
	c.overLimitTotal++
	if !c.limitLogged {
		c.limitLogged = true
		c.logger.Warn(`rule limit of the events collector reached: events of further rules are counted under rule="other"`,
			"rule", rule, "limit", c.maxRules, "flag", "--collector.events.max-rules")
	}
	return ruleOther
}

func (c *eventConsumer) newSeriesLocked(key eventKey) *eventSeries {
	var rule string
	switch key.rule {
	case abi.RuleIDPolicy:
		rule = "policy"
	case ruleOther:
		rule = "other"
	default:
		rule = strconv.FormatUint(uint64(key.rule), 10)
		c.rules[key.rule]++
	}
	s := &eventSeries{born: c.epoch, labels: prometheus.MakeLabelPairs(c.seriesDesc(key.typ),
		[]string{rule, abi.FamilyName(key.family), key.hook.String(), protoClassNames[key.proto]})}
	c.series[key] = s
	return s
}

func (c *eventConsumer) seriesDesc(typ abi.EventType) *prometheus.Desc {
	if typ == abi.EventHit {
		return c.hitEvents.desc
	}
	return c.dropEvents.desc
}

// HandleLoss implements netlinkclient.Handler.
func (c *eventConsumer) HandleLoss(instance uint64, cpu uint32, n uint64) {
	c.mu.Lock()
	c.lostTotal += n
	c.mu.Unlock()
	c.logger.Debug("events lost", "instance", abi.FormatInstance(instance), "cpu", cpu, "lost", n)
}

// HandleOverrun implements netlinkclient.Handler.
func (c *eventConsumer) HandleOverrun() {
	c.mu.Lock()
	c.overrunsTotal++
	c.mu.Unlock()
	c.logger.Debug("event socket overrun (ENOBUFS)")
}

// HandleDecodeError implements netlinkclient.Handler.
func (c *eventConsumer) HandleDecodeError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.decodeTotal++
	if now := c.now(); now.Sub(c.lastDecodeLog) >= decodeLogEvery {
		c.logger.Warn("skipped an event message that could not be decoded", "err", err,
			"not_logged_since_last", c.decodeLogMissed)
		c.lastDecodeLog, c.decodeLogMissed = now, 0
	} else {
		c.decodeLogMissed++
	}
}

// HandleState implements netlinkclient.Handler.
func (c *eventConsumer) HandleState(s netlinkclient.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.Subscribed {
		// Counted once per subscription, however often it is reported.
		isNew := !c.isSubscribed || s.FamilyID != c.familyID
		if isNew && s.Resubscribed {
			c.resubTotal++
		}
		if isNew {
			c.logger.Info("subscribed to kfw events", "family_id", s.FamilyID, "resubscribed", s.Resubscribed)
		}
		c.isSubscribed, c.familyID, c.lastErr = true, s.FamilyID, ""
		return
	}
	c.setUnsubscribedLocked(s.Err)
}

// setUnsubscribedLocked records that no events can arrive, logging each
// new reason once.
func (c *eventConsumer) setUnsubscribedLocked(err error) {
	msg := "unknown reason"
	if err != nil {
		msg = err.Error()
	}
	if c.isSubscribed || msg != c.lastErr {
		c.logger.Warn("not subscribed to kfw events", "err", msg)
	}
	c.isSubscribed, c.familyID, c.lastErr = false, 0, msg
}

// setStopped records that the source stopped; the caller logs why.
func (c *eventConsumer) setStopped(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isSubscribed, c.familyID, c.lastErr = false, 0, err.Error()
}

// mark starts a prune: series created from now on survive it, since the
// rule table read after mark may predate their rule.
func (c *eventConsumer) mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	return c.epoch
}

// prune removes the series of rules not in ids that were created before mark.
func (c *eventConsumer) prune(ids *ruleSet, mark uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.series {
		if k.rule == abi.RuleIDPolicy || k.rule == ruleOther || s.born >= mark || ids.has(k.rule) {
			continue
		}
		delete(c.series, k)
		if c.rules[k.rule]--; c.rules[k.rule] == 0 {
			delete(c.rules, k.rule)
		}
	}
	if len(c.rules) < c.maxRules {
		c.limitLogged = false
	}
}

func (c *eventConsumer) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []typedDesc{c.received, c.dropEvents, c.hitEvents, c.lost, c.overruns, c.decodeErrors,
		c.subscribed, c.resubscriptions, c.lastEvent, c.overLimit} {
		ch <- d.desc
	}
	c.delay.Describe(ch)
}

// collect copies the state under the lock and builds the metrics outside
// it, so that a scrape holds up the consumer as little as possible.
func (c *eventConsumer) collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	series := make([]presetCounter, 0, len(c.series))
	for k, s := range c.series {
		series = append(series, presetCounter{c.seriesDesc(k.typ), s.labels, float64(s.count)})
	}
	received := c.receivedByType
	lost, overruns, decodeErrs := c.lostTotal, c.overrunsTotal, c.decodeTotal
	resubs, overLimit, lastEventNs := c.resubTotal, c.overLimitTotal, c.lastEventNs
	subscribed := 0.0
	if c.isSubscribed {
		subscribed = 1
	}
	c.mu.Unlock()

	ch <- c.received.metric(float64(received[abi.EventDrop]), abi.EventDrop.String())
	ch <- c.received.metric(float64(received[abi.EventHit]), abi.EventHit.String())
	if received[0] > 0 {
		ch <- c.received.metric(float64(received[0]), abi.EventUnspec.String())
	}
	for i := range series {
		ch <- &series[i]
	}
	ch <- c.lost.metric(float64(lost))
	ch <- c.overruns.metric(float64(overruns))
	ch <- c.decodeErrors.metric(float64(decodeErrs))
	ch <- c.subscribed.metric(subscribed)
	ch <- c.resubscriptions.metric(float64(resubs))
	ch <- c.overLimit.metric(float64(overLimit))
	if lastEventNs > 0 {
		ch <- c.lastEvent.metric(float64(lastEventNs) / 1e9)
	}
	c.delay.Collect(ch)
}

// ruleSet is a set of rule ids: one bit per possible id.
type ruleSet [(abi.RuleIDMax + 1) / 64]uint64

func (s *ruleSet) add(id uint32) {
	if id <= abi.RuleIDMax {
		s[id/64] |= 1 << (id % 64)
	}
}

func (s *ruleSet) has(id uint32) bool {
	return id <= abi.RuleIDMax && s[id/64]&(1<<(id%64)) != 0
}

func (s *ruleSet) clear() { *s = ruleSet{} }
