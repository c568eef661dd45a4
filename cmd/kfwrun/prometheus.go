package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scrapeInterval is how often the lab's Prometheus scrapes the exporter
// and evaluates the shipped rules.
const scrapeInterval = 5 * time.Second

// prometheusConfig is the configuration of the lab's Prometheus: the
// exporter in the VM as job kfw (the name the alerts expect) and every rule
// file of dashboards/prometheus.
func prometheusConfig(repo string, exporterPort int) string {
	return fmt.Sprintf(`# Written by kfwrun (make run) at every start; edits are lost.
global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
rule_files:
  - %[2]s
scrape_configs:
  - job_name: kfw
    static_configs:
      - targets: ['127.0.0.1:%[3]d']
`, scrapeInterval, quoteYAML(filepath.Join(repo, "dashboards", "prometheus", "*.yml")), exporterPort)
}

// quoteYAML quotes s as a YAML single-quoted scalar.
func quoteYAML(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// prometheus is a Prometheus server run by kfwrun.
type prometheus struct {
	cmd  *exec.Cmd
	url  string // http://127.0.0.1:PORT
	done chan struct{}
	err  error // exit status, valid after done
}

// startPrometheus starts bin with the configuration file config, its data
// in dataDir and its log in logFile, listening on the loopback only.
func startPrometheus(bin, config, dataDir, logFile string, port int) (*prometheus, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the child has its own copy
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+dataDir,
		"--storage.tsdb.retention.time=1d",
		"--web.listen-address="+addr,
		"--web.external-url=http://"+addr+"/",
	)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group, so that the terminal's Ctrl-C reaches kfwrun
	// only, which stops it after the VM; SIGKILL if kfwrun dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &prometheus{cmd: cmd, url: "http://" + addr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop ends Prometheus (SIGTERM: it flushes its data; SIGKILL after grace)
// and waits for it.
func (p *prometheus) stop(grace time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// promClient queries Prometheus's HTTP API.
type promClient struct {
	url  string
	http *http.Client
}

func newPromClient(baseURL string) *promClient {
	return &promClient{url: baseURL, http: &http.Client{Timeout: 10 * time.Second}}
}

// get fetches an API path and decodes its data field into v.
func (c *promClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
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
		return fmt.Errorf("GET %s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, v)
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates an instant query that returns a vector.
func (c *promClient) query(ctx context.Context, q string) ([]sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := c.get(ctx, "/api/v1/query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %q, want vector", q, data.ResultType)
	}
	out := make([]sample, len(data.Result))
	for i, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: bad value %v", q, r.Value[1])
		}
		out[i] = sample{Metric: r.Metric, Value: v}
	}
	return out, nil
}

// ruleHealth is what /api/v1/rules says about one rule.
type ruleHealth struct {
	Group, Name, Health, LastError string
}

// rules lists the loaded recording and alerting rules.
func (c *promClient) rules(ctx context.Context) ([]ruleHealth, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := c.get(ctx, "/api/v1/rules", &data); err != nil {
		return nil, err
	}
	var out []ruleHealth
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out = append(out, ruleHealth{Group: g.Name, Name: r.Name, Health: r.Health, LastError: r.LastError})
		}
	}
	return out, nil
}
