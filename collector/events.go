package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kfwlabs/kfw_exporter/abi"
)

func init() {
	registerCollector("events", true, newEventsCollector)
}

// eventsCollector exports what its consumer counted from the module's
// netlink events. At each scrape it also drops the series of rules that
// left the table, read from /proc/kfw.
type eventsCollector struct {
	proc     *kfwProc
	source   EventSource
	consumer *eventConsumer
	logger   *slog.Logger
	// Delays before restarting a source that stopped on its own.
	retryMin, retryMax time.Duration

	tableMu sync.Mutex // serialises scrapes over table
	table   struct {
		valid      bool
		instance   uint64
		generation uint64
		ids        ruleSet // the rules of that instance and generation
	}
}

func newEventsCollector(cfg Config, logger *slog.Logger) (Collector, error) {
	if cfg.EventSource == nil {
		return nil, errors.New("no event source")
	}
	if cfg.EventsMaxRules < 0 {
		return nil, fmt.Errorf("max rules %d: must not be negative", cfg.EventsMaxRules)
	}
	return &eventsCollector{
		proc:     newKfwProc(cfg.ProcPath),
		source:   cfg.EventSource,
		consumer: newEventConsumer(cfg.EventsMaxRules, logger),
		logger:   logger,
		retryMin: time.Second,
		retryMax: 30 * time.Second,
	}, nil
}

func (c *eventsCollector) Describe(ch chan<- *prometheus.Desc) { c.consumer.describe(ch) }

// Update exports the consumer's counts. A failure to read the rule table
// fails the collector but still exports them: they do not come from /proc.
func (c *eventsCollector) Update(ch chan<- prometheus.Metric) error {
	err := c.pruneDeletedRules()
	c.consumer.collect(ch)
	return err
}

// pruneDeletedRules drops the series of rules that are not in the table. The
// table's rule ids are read again only when the module instance or the
// ruleset generation changed; pruning against them happens at every scrape,
// so that late events of a deleted rule do not bring it back for good.
func (c *eventsCollector) pruneDeletedRules() error {
	c.tableMu.Lock()
	defer c.tableMu.Unlock()
	mark := c.consumer.mark()
	st, err := c.proc.stats()
	if errors.Is(err, ErrNoData) {
		// Not loaded: no table to compare with; keep the series until a
		// module is back.
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the rule table generation: %w", err)
	}
	t := &c.table
	if !t.valid || t.instance != st.Instance || t.generation != st.Generation {
		t.valid = false
		t.ids.clear()
		err := c.proc.ruleStats(func(r abi.ProcRuleCounters) error {
			t.ids.add(r.ID)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the rule ids: %w", err)
		}
		// Tagged with the generation read before the ids: if the table
		// changed in between, the next scrape reads it again.
		t.valid, t.instance, t.generation = true, st.Instance, st.Generation
	}
	c.consumer.prune(&t.ids, mark)
	return nil
}

// Run feeds the consumer from the event source until ctx is cancelled. The
// source resubscribes by itself; should it stop anyway, it is restarted
// after a growing delay.
func (c *eventsCollector) Run(ctx context.Context) error {
	delay := c.retryMin
	for {
		started := time.Now()
		err := c.source.Run(ctx, c.consumer)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("event source stopped")
		}
		c.consumer.setStopped(err)
		if time.Since(started) > c.retryMax {
			delay = c.retryMin
		}
		c.logger.Error("event source stopped; restarting it", "err", err, "delay", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, c.retryMax)
	}
}
