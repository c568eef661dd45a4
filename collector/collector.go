// Package collector holds the kfw_exporter collectors: one per file, each
// registered under a name that becomes its --collector.<name> flag, in the
// shape of prometheus/node_exporter. The /proc/kfw collectors read their
// file afresh at every scrape; the events collector owns a background
// consumer of the module's netlink events.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

const namespace = "kfw"

var (
	scrapeDurationDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "collector_duration_seconds"),
		"kfw_exporter: duration of a collector scrape.",
		[]string{"collector"}, nil,
	)
	scrapeSuccessDesc = prometheus.NewDesc(
		prometheus.BuildFQName(namespace, "exporter", "collector_success"),
		"kfw_exporter: whether a collector succeeded (1) or failed (0) during the scrape.",
		[]string{"collector"}, nil,
	)
)

// ErrNoData tells that a collector found nothing to collect, such as a
// module that is not loaded: logged at debug level, not as an error.
var ErrNoData = errors.New("collector returned no data")

// Collector is one named collector. Update runs at every scrape; it may send
// metrics and still return an error, which marks it failed for that scrape.
type Collector interface {
	// Describe sends every descriptor Update may use.
	Describe(ch chan<- *prometheus.Desc)
	Update(ch chan<- prometheus.Metric) error
}

// runner is a Collector with a background part, such as the event consumer.
type runner interface {
	// Run works until ctx is cancelled.
	Run(ctx context.Context) error
}

// EventSource delivers kfw events to a handler until ctx is cancelled.
// *netlinkclient.Subscriber is the production source.
type EventSource interface {
	Run(ctx context.Context, h netlinkclient.Handler) error
}

// Config is what the collectors need from the command line.
type Config struct {
	// ProcPath is the procfs mount point; the module's files are in ProcPath/kfw.
	ProcPath string
	// EventSource feeds the events collector.
	EventSource EventSource
	// EventsMaxRules bounds the number of rule ids that get their own event
	// series; events of further rules are counted under rule="other".
	EventsMaxRules int
}

type factory func(cfg Config, logger *slog.Logger) (Collector, error)

// Registration: filled by init functions, read after flag parsing.
var (
	factories        = map[string]factory{}
	collectorState   = map[string]*bool{}
	forcedCollectors = map[string]bool{} // named on the command line
)

// registerCollector makes a collector known and creates its
// --[no-]collector.<name> flag.
func registerCollector(name string, defaultEnabled bool, f factory) {
	state := "disabled"
	if defaultEnabled {
		state = "enabled"
	}
	flag := kingpin.Flag("collector."+name, fmt.Sprintf("Enable the %s collector (default: %s).", name, state)).
		Default(fmt.Sprint(defaultEnabled)).
		Action(func(*kingpin.ParseContext) error {
			forcedCollectors[name] = true
			return nil
		}).Bool()
	collectorState[name] = flag
	factories[name] = f
}

// DisableDefaultCollectors disables every collector that the command line
// did not enable explicitly.
func DisableDefaultCollectors() {
	for name, state := range collectorState {
		if !forcedCollectors[name] {
			*state = false
		}
	}
}

// KfwCollector runs the enabled collectors at each scrape and reports how
// each one did. It implements prometheus.Collector.
type KfwCollector struct {
	Collectors map[string]Collector
	logger     *slog.Logger
}

// NewKfwCollector creates every enabled collector.
func NewKfwCollector(cfg Config, logger *slog.Logger) (*KfwCollector, error) {
	collectors := map[string]Collector{}
	for _, name := range slices.Sorted(maps.Keys(collectorState)) {
		if !*collectorState[name] {
			continue
		}
		c, err := factories[name](cfg, logger.With("collector", name))
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", name, err)
		}
		collectors[name] = c
	}
	return &KfwCollector{Collectors: collectors, logger: logger}, nil
}

// Describe implements prometheus.Collector.
func (k *KfwCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- scrapeDurationDesc
	ch <- scrapeSuccessDesc
	for _, c := range k.Collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector: the collectors run in parallel.
func (k *KfwCollector) Collect(ch chan<- prometheus.Metric) {
	var wg sync.WaitGroup
	for name, c := range k.Collectors {
		wg.Go(func() { k.execute(name, c, ch) })
	}
	wg.Wait()
}

func (k *KfwCollector) execute(name string, c Collector, ch chan<- prometheus.Metric) {
	begin := time.Now()
	err := c.Update(ch)
	duration := time.Since(begin)
	success := 1.0
	switch {
	case errors.Is(err, ErrNoData):
		k.logger.Debug("collector returned no data", "collector", name, "duration_seconds", duration.Seconds(), "err", err)
		success = 0
	case err != nil:
		k.logger.Error("collector failed", "collector", name, "duration_seconds", duration.Seconds(), "err", err)
		success = 0
	default:
		k.logger.Debug("collector succeeded", "collector", name, "duration_seconds", duration.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(scrapeDurationDesc, prometheus.GaugeValue, duration.Seconds(), name)
	ch <- prometheus.MustNewConstMetric(scrapeSuccessDesc, prometheus.GaugeValue, success, name)
}

// Run runs the background part of every collector that has one, until ctx
// is cancelled and all of them returned.
func (k *KfwCollector) Run(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name, c := range k.Collectors {
		r, ok := c.(runner)
		if !ok {
			continue
		}
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("collector %s: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// typedDesc pairs a descriptor with its value type.
type typedDesc struct {
	desc      *prometheus.Desc
	valueType prometheus.ValueType
}

func newTypedDesc(name, help string, valueType prometheus.ValueType, labels ...string) typedDesc {
	return typedDesc{prometheus.NewDesc(name, help, labels, nil), valueType}
}

func (d typedDesc) metric(value float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d.desc, d.valueType, value, labels...)
}
