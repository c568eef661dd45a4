// Package scrape runs Prometheus exporters as child processes and scrapes
// them the way Prometheus does, measuring each scrape: wall time, the
// exporter's on-CPU time, the response. kfwbench uses it to compare
// kfw_exporter with node_exporter by one method, in the VM and on the host.
package scrape

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// Server is an exporter process serving /metrics on a loopback port.
type Server struct {
	Name   string
	cmd    *exec.Cmd
	url    string
	stderr bytes.Buffer
	client *http.Client
	exited chan struct{}
}

// Start runs argv plus a --web.listen-address flag and waits until
// it answers on 127.0.0.1:port/metrics.
func Start(name string, port int, argv ...string) (*Server, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{
		Name:   name,
		url:    "http://" + addr + "/metrics",
		client: &http.Client{Timeout: 60 * time.Second},
		exited: make(chan struct{}),
	}
	s.cmd = exec.Command(argv[0], append(argv[1:], "--web.listen-address="+addr)...)
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = &s.stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := s.client.Get(s.url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited at start: %s", name, strings.TrimSpace(s.stderr.String()))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("%s not serving %s after 60s: %v", name, s.url, err)
		}
	}
}

// Stop ends the process with SIGTERM (SIGKILL after 10 s) and waits.
func (s *Server) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Signal sends sig to the process.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Scrape fetches /metrics once, as Prometheus would (the transport asks
// for gzip and inflates it), and returns the body and the wall time from
// request to last byte.
func (s *Server) Scrape(ctx context.Context) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("scrape %s: %w", s.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		return nil, 0, fmt.Errorf("scrape %s: %w", s.Name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("scrape %s: status %s", s.Name, resp.Status)
	}
	return body, took, nil
}

// Metrics scrapes and sums each metric family's samples by name
// (counters and gauges only).
func (s *Server) Metrics(ctx context.Context) (map[string]float64, error) {
	body, _, err := s.Scrape(ctx)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s metrics: %w", s.Name, err)
	}
	sums := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sums[name] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sums[name] += m.GetGauge().GetValue()
			}
		}
	}
	return sums, nil
}

// CPUNanos is the process's on-CPU time: the sum of its threads'
// /proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/schedstat alone is
// the main thread's).
func (s *Server) CPUNanos() (uint64, error) { return ProcessCPUNanos(s.cmd.Process.Pid) }

// ProcessCPUNanos is CPUNanos of any process.
func ProcessCPUNanos(pid int) (uint64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("pid %d: no task schedstat files (%v)", pid, err)
	}
	var total uint64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("%s: empty", t)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		total += n
	}
	return total, nil
}

// Memory returns VmRSS and VmHWM of the process in bytes.
func (s *Server) Memory() (rss, hwm uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val) // "1234 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/PID/status: %q", line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if key == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, errors.New("/proc/PID/status: no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// Compare scrapes a and b n times each, alternating, after one warm-up
// scrape each, and records every scrape's wall time and the exporter's
// on-CPU time during it.
func Compare(ctx context.Context, a, b *Server, n int) (results.ScrapeSample, results.ScrapeSample, error) {
	var out [2]results.ScrapeSample
	for i := -1; i < n; i++ {
		for j, s := range []*Server{a, b} {
			cpu0, err := s.CPUNanos()
			if err != nil {
				return out[0], out[1], err
			}
			body, took, err := s.Scrape(ctx)
			if err != nil {
				return out[0], out[1], err
			}
			cpu1, err := s.CPUNanos()
			if err != nil {
				return out[0], out[1], err
			}
			if i < 0 {
				continue // warm-up
			}
			o := &out[j]
			o.Seconds = append(o.Seconds, took.Seconds())
			o.CPUNanos = append(o.CPUNanos, float64(cpu1-cpu0))
			o.Bytes, o.Series = len(body), countSamples(body)
		}
	}
	return out[0], out[1], nil
}

// countSamples counts the sample lines of a text exposition.
func countSamples(body []byte) int {
	n := 0
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}
