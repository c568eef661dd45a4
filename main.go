// Command kfw_exporter exports the counters of the kfw kernel firewall
// module (/proc/kfw) and the events it multicasts over generic netlink as
// Prometheus metrics. docs/METRICS.md lists every metric.
//
// It needs no root: read access to /proc/kfw (world-readable) and, for the
// events collector, CAP_NET_ADMIN to join the module's "events" group.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"github.com/prometheus/procfs"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/collector"
	"github.com/kfwlabs/kfw_exporter/netlinkclient"
)

const program = "kfw_exporter"

// shutdownTimeout bounds how long in-flight scrapes may delay an exit.
const shutdownTimeout = 5 * time.Second

func main() {
	os.Exit(run())
}

func run() int {
	var (
		metricsPath = kingpin.Flag("web.telemetry-path",
			"Path under which to expose metrics.").Default("/metrics").String()
		disableExporterMetrics = kingpin.Flag("web.disable-exporter-metrics",
			"Exclude metrics about the exporter itself (promhttp_*, process_*, go_*).").Bool()
		maxRequests = kingpin.Flag("web.max-requests",
			"Maximum number of parallel scrape requests. Use 0 to disable.").Default("40").Int()
		disableDefaultCollectors = kingpin.Flag("collector.disable-defaults",
			"Set all collectors to disabled by default.").Bool()
		procPath = kingpin.Flag("path.procfs",
			"procfs mountpoint; the module's files are read from <path.procfs>/kfw.").Default(procfs.DefaultMountPoint).String()
		eventsMaxRules = kingpin.Flag("collector.events.max-rules",
			`Rule ids that get their own event series; events of further rules are counted under rule="other".`).Default("1024").Int()
		netlinkFamily = kingpin.Flag("netlink.family",
			"Generic netlink family of the kfw module.").Default(abi.GenlName).String()
		netlinkReadBuffer = kingpin.Flag("netlink.read-buffer",
			"Receive buffer of the event socket (SO_RCVBUFFORCE with CAP_NET_ADMIN, else capped by net.core.rmem_max).").Default("4MiB").Bytes()
		toolkitFlags = kingpinflag.AddFlags(kingpin.CommandLine, ":10170")
	)
	promslogConfig := &promslog.Config{}
	promslogflag.AddFlags(kingpin.CommandLine, promslogConfig)
	kingpin.Version(version.Print(program))
	kingpin.CommandLine.UsageWriter(os.Stdout)
	kingpin.HelpFlag.Short('h')
	kingpin.Parse()
	logger := promslog.New(promslogConfig)

	if *disableDefaultCollectors {
		collector.DisableDefaultCollectors()
	}
	logger.Info("Starting "+program, "version", version.Info())
	logger.Info("Build context", "build_context", version.BuildContext())
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		logger.Warn(program + " is running as root: it only needs CAP_NET_ADMIN (to join the kfw events group)")
	}
	if _, err := procfs.NewFS(*procPath); err != nil {
		logger.Error("invalid --path.procfs", "err", err)
		return 1
	}
	if *eventsMaxRules < 0 {
		logger.Error("--collector.events.max-rules must not be negative", "value", *eventsMaxRules)
		return 1
	}

	kc, err := collector.NewKfwCollector(collector.Config{
		ProcPath: *procPath,
		EventSource: netlinkclient.NewSubscriber(netlinkclient.SubscriberConfig{
			Family:     *netlinkFamily,
			ReadBuffer: int(*netlinkReadBuffer),
			Logger:     logger.With("component", "netlink"),
		}),
		EventsMaxRules: *eventsMaxRules,
	}, logger)
	if err != nil {
		logger.Error("cannot create the collectors", "err", err)
		return 1
	}
	for name := range kc.Collectors {
		logger.Info("collector enabled", "collector", name)
	}

	mux := http.NewServeMux()
	handler, err := metricsHandler(kc, !*disableExporterMetrics, *maxRequests, logger)
	if err != nil {
		logger.Error("cannot create the metrics handler", "err", err)
		return 1
	}
	mux.Handle(*metricsPath, handler)
	if *metricsPath != "/" {
		landingPage, err := web.NewLandingPage(web.LandingConfig{
			Name:        "kfw exporter",
			Description: "Prometheus exporter for the kfw kernel firewall module",
			Version:     version.Info(),
			Profiling:   "false",
			Links:       []web.LandingLinks{{Address: *metricsPath, Text: "Metrics"}},
		})
		if err != nil {
			logger.Error("cannot create the landing page", "err", err)
			return 1
		}
		mux.Handle("/", landingPage)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	background := make(chan error, 1)
	go func() { background <- kc.Run(ctx) }()

	server := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(server, toolkitFlags, logger) }()

	status := 0
	select {
	case err := <-served:
		logger.Error("cannot serve", "err", err)
		status = 1
	case <-ctx.Done():
		logger.Info("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := server.Shutdown(shutdownCtx); err != nil {
			logger.Warn("scrapes still running at exit", "err", err)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("server failed while shutting down", "err", err)
			status = 1
		}
	}
	stop()
	if err := <-background; err != nil {
		logger.Error("collector background work failed", "err", err)
		status = 1
	}
	return status
}

// metricsHandler serves kc and the build info, plus the exporter's own
// process and Go metrics when includeExporterMetrics is set.
func metricsHandler(kc *collector.KfwCollector, includeExporterMetrics bool, maxRequests int, logger *slog.Logger) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(versioncollector.NewCollector(program)); err != nil {
		return nil, err
	}
	if err := reg.Register(kc); err != nil {
		return nil, fmt.Errorf("register the kfw collectors: %w", err)
	}
	if includeExporterMetrics {
		reg.MustRegister(
			promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}),
			promcollectors.NewGoCollector(),
		)
	}
	var h http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(logger.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxRequests,
		Registry:            reg,
	})
	if includeExporterMetrics {
		h = promhttp.InstrumentMetricHandler(reg, h)
	}
	return h, nil
}
