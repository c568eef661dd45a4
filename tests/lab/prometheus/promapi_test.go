//go:build !labvm

package prometheus

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// promServer is a Prometheus server run by the test, on the loopback only.
type promServer struct {
	url     string // http://127.0.0.1:PORT
	logFile string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startPrometheus starts Prometheus with config (YAML text), its data and
// log in dir, and stops it when the test ends.
func startPrometheus(t *testing.T, bin, dir, config string) *promServer {
	t.Helper()
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{logFile: filepath.Join(dir, "prometheus.log"), done: make(chan struct{})}
	log, err := os.Create(p.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close() // the child has its copy
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(labtest.FreePort(t)))
	p.url = "http://" + addr
	p.cmd = exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			if data, err := os.ReadFile(p.logFile); err == nil {
				t.Logf("Prometheus's log:\n%s", lastLines(string(data), 40))
			}
		}
	})
	p.waitReady(t)
	return p
}

// waitReady waits until Prometheus answers /-/ready.
func (p *promServer) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("Prometheus exited at start: see %s", p.logFile)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus did not get ready within a minute")
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// get calls an API path with params and decodes its data into v.
func (p *promServer) get(path string, params url.Values, v any) error {
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(p.url + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("GET %s: HTTP %d, not the API's JSON: %.200s", path, resp.StatusCode, body)
	}
	if r.Status != "success" {
		return fmt.Errorf("GET %s %v: %s", path, params, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// series is one series of a query result with its values: one for an
// instant query, the points of a range query.
type series struct {
	Metric map[string]string
	Times  []time.Time
	Values []float64
}

// finite reports whether a result holds at least one finite value: data a
// panel can show.
func finite(result []series) bool {
	for _, s := range result {
		for _, v := range s.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				return true
			}
		}
	}
	return false
}

func describe(result []series) string {
	var parts []string
	for _, s := range result {
		var points []string
		for i, v := range s.Values {
			points = append(points, fmt.Sprintf("%s %g", s.Times[i].Format("15:04:05"), v))
		}
		parts = append(parts, fmt.Sprintf("%v [%s]", s.Metric, strings.Join(points, ", ")))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

type apiSample [2]any // [unix time, "value"]

func (s apiSample) value() (float64, error) {
	str, _ := s[1].(string)
	return strconv.ParseFloat(str, 64)
}

func (s apiSample) time() time.Time {
	f, _ := s[0].(float64)
	return time.UnixMilli(int64(f * 1000))
}

// query evaluates an instant query at a time.
func (p *promServer) query(q string, at time.Time) ([]series, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	params := url.Values{"query": {q}, "time": {unixString(at)}}
	if err := p.get("/api/v1/query", params, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  apiSample         `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]series, len(vec))
		for i, s := range vec {
			v, err := s.Value.value()
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", q, err)
			}
			out[i] = series{Metric: s.Metric, Times: []time.Time{s.Value.time()}, Values: []float64{v}}
		}
		return out, nil
	case "scalar":
		var s apiSample
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, err
		}
		v, err := s.value()
		return []series{{Times: []time.Time{s.time()}, Values: []float64{v}}}, err
	}
	return nil, fmt.Errorf("query %s: result type %q", q, data.ResultType)
}

// queryRange evaluates a range query, as Grafana does for a time series
// panel.
func (p *promServer) queryRange(q string, start, end time.Time, step time.Duration) ([]series, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values []apiSample       `json:"values"`
		} `json:"result"`
	}
	params := url.Values{"query": {q}, "start": {unixString(start)}, "end": {unixString(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := p.get("/api/v1/query_range", params, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("range query %s: result type %q", q, data.ResultType)
	}
	out := make([]series, len(data.Result))
	for i, s := range data.Result {
		out[i].Metric = s.Metric
		for _, pt := range s.Values {
			v, err := pt.value()
			if err != nil {
				return nil, fmt.Errorf("range query %s: %w", q, err)
			}
			out[i].Times = append(out[i].Times, pt.time())
			out[i].Values = append(out[i].Values, v)
		}
	}
	return out, nil
}

// labelValues lists the values of label in the series matching selector
// between start and end, as a Grafana label_values() variable does.
func (p *promServer) labelValues(label, selector string, start, end time.Time) ([]string, error) {
	var values []string
	params := url.Values{"match[]": {selector}, "start": {unixString(start)}, "end": {unixString(end)}}
	err := p.get("/api/v1/label/"+url.PathEscape(label)+"/values", params, &values)
	return values, err
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"` // pending or firing
	ActiveAt time.Time         `json:"activeAt"`
	Value    string            `json:"value"`
}

func (p *promServer) alerts() ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// ruleHealth is one rule of /api/v1/rules.
type ruleHealth struct {
	Name, Health, LastError string
}

func (p *promServer) rules() ([]ruleHealth, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []ruleHealth
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out = append(out, ruleHealth{Name: r.Name, Health: r.Health, LastError: r.LastError})
		}
	}
	return out, nil
}

func unixString(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
