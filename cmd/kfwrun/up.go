package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// Ports inside the VM; the host ports forwarded to them are flags.
const (
	guestExporterPort = 10170
	guestAgentPort    = 10171
)

// Default host ports: the exporter's own, the agent's next to it, and a
// Prometheus port away from a system Prometheus on 9090.
const (
	defaultExporterPort   = 10170
	defaultAgentPort      = 10171
	defaultPrometheusPort = 19090
)

// guestBinaries are the programs guest.sh runs, from the binary directory.
var guestBinaries = []string{"kfw_exporter", "kfwctl", "kfwtraffic", "kfwrun"}

// config is one bring-up of the lab.
type config struct {
	repo       string
	stateDir   string // build/run: logs, Prometheus data, lock, state
	binDir     string // the guest's binaries; visible to the guest
	kernel     string
	module     string // kfw.ko; default: what make modules built for the kernel
	prometheus string // the Prometheus binary

	exporterPort, agentPort, prometheusPort int // on the host's loopback

	// runFor, when set, makes up check the lab once ready, keep it
	// running this long, check again and stop: the automated test.
	runFor time.Duration
	// events says whether the checks require netlink events: "yes",
	// "no", or "auto": when kfw.ko declares its generic netlink family.
	events  string
	timeout time.Duration // the VM's watchdog

	out io.Writer // progress and instructions
}

// state is what a running kfwrun records for "kfwrun exec" and for people.
type state struct {
	PID            int    `json:"pid"`
	ExporterURL    string `json:"exporter_url"`
	PrometheusURL  string `json:"prometheus_url"`
	AgentAddress   string `json:"agent_address"`
	TokenFile      string `json:"token_file"`
	KernelRelease  string `json:"kernel_release"`
	VMLogDirectory string `json:"vm_logs"`
}

const stateFile = "kfwrun.json"

func (c config) vmDir() string { return filepath.Join(c.stateDir, "vm") }

func (c config) exporterURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(c.exporterPort) + "/metrics"
}

// console serialises the progress lines of kfwrun and of the guest.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func (c *console) say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "kfwrun: [%5.1fs] %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *console) print(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprint(c.w, s)
}

// prefixWriter writes complete lines to a console with a prefix.
type prefixWriter struct {
	c      *console
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		line, rest, ok := strings.Cut(string(p.buf), "\n")
		if !ok {
			return len(b), nil
		}
		p.c.print(p.prefix + line + "\n")
		p.buf = []byte(rest)
	}
}

// session is one bring-up of the lab, from the lock to the stop.
type session struct {
	cfg        config
	con        *console
	kernel     lab.Kernel
	withEvents bool   // the checks require events
	token      string // the agent's
	prom       *prometheus
	vmDone     <-chan error // the VM's end
	http       *http.Client
}

// up brings up the lab, waits until Prometheus scrapes the exporter in the
// VM, prints where to look and then runs until ctx ends (Ctrl-C) or, with
// runFor, until the checks are done. It stops everything it started before
// it returns.
func up(ctx context.Context, cfg config) error {
	s := &session{cfg: cfg, con: &console{w: cfg.out, start: time.Now()}, http: &http.Client{Timeout: 5 * time.Second}}
	if err := os.MkdirAll(cfg.stateDir, 0o755); err != nil {
		return err
	}
	lock, err := lockState(cfg.stateDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := s.preflight(); err != nil {
		return err
	}

	promConfig := filepath.Join(cfg.stateDir, "prometheus.yml")
	if err := os.WriteFile(promConfig, []byte(prometheusConfig(cfg.repo, cfg.exporterPort)), 0o644); err != nil {
		return err
	}
	s.prom, err = startPrometheus(cfg.prometheus, promConfig, filepath.Join(cfg.stateDir, "prometheus"),
		filepath.Join(cfg.stateDir, "prometheus.log"), cfg.prometheusPort)
	if err != nil {
		return err
	}
	defer func() {
		s.prom.stop(10 * time.Second)
		s.con.say("Prometheus stopped")
	}()
	s.con.say("Prometheus starting on %s (config %s)", s.prom.url, rel(cfg.repo, promConfig))

	vm, err := s.bootVM(ctx)
	if err != nil {
		return err
	}
	defer func() {
		vm.Stop()
		s.con.say("VM stopped; its logs: %s", rel(cfg.repo, cfg.vmDir()))
	}()
	st := state{
		PID:            os.Getpid(),
		ExporterURL:    cfg.exporterURL(),
		PrometheusURL:  s.prom.url,
		AgentAddress:   "127.0.0.1:" + strconv.Itoa(cfg.agentPort),
		TokenFile:      filepath.Join(cfg.vmDir(), "token"),
		KernelRelease:  s.kernel.Release,
		VMLogDirectory: cfg.vmDir(),
	}
	if err := writeState(cfg.stateDir, st); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(cfg.stateDir, stateFile))

	w := &waiter{ctx: ctx, con: s.con, vmDone: s.vmDone, prom: s.prom}
	if err := s.waitReady(ctx, w); err != nil {
		return err
	}
	s.con.print(instructions(cfg, st))
	if cfg.runFor > 0 {
		return s.runChecks(ctx, w)
	}
	select {
	case <-ctx.Done():
		s.con.print("\n")
		s.con.say("interrupted: stopping the VM and Prometheus")
		return nil
	case err := <-s.vmDone:
		return err
	case <-s.prom.done:
		return fmt.Errorf("prometheus exited (%v): see %s", s.prom.err, filepath.Join(cfg.stateDir, "prometheus.log"))
	}
}

// preflight prepares a start: it stops what an earlier run left behind,
// checks the ports and what the run needs, decides about the event checks
// and empties the state directory of the last run's VM logs and data.
func (s *session) preflight() error {
	cfg := s.cfg
	if err := cleanStale(s.con, cfg.stateDir); err != nil {
		return err
	}
	for _, p := range []struct {
		port int
		what string
	}{{cfg.exporterPort, "exporter"}, {cfg.agentPort, "kfwrun agent"}, {cfg.prometheusPort, "Prometheus"}} {
		if err := checkPortFree(p.port, p.what); err != nil {
			return err
		}
	}
	var err error
	if s.kernel, err = checkPrerequisites(cfg); err != nil {
		return err
	}
	ko := cfg.module
	if ko == "" {
		ko = lab.ModulePath(cfg.repo, s.kernel.Release)
	}
	if s.withEvents, err = wantEvents(cfg.events, ko); err != nil {
		return err
	}
	if cfg.runFor > 0 && !s.withEvents {
		s.con.say("the checks leave out events (--events=%s; %s)", cfg.events, rel(cfg.repo, ko))
	}
	s.token, err = prepareStateDir(cfg)
	return err
}

// bootVM starts the lab VM with guest.sh as its payload; s.vmDone reports
// its end.
func (s *session) bootVM(ctx context.Context) (*lab.VM, error) {
	cfg := s.cfg
	env := []string{
		"KFW_RUN_BIN=" + cfg.binDir,
		"KFW_RUN_EXPORTER_PORT=" + strconv.Itoa(guestExporterPort),
		"KFW_RUN_AGENT_PORT=" + strconv.Itoa(guestAgentPort),
		"KFW_RUN_LOGS=" + cfg.vmDir(),
	}
	if cfg.module != "" {
		env = append(env, "KFW_KO="+cfg.module)
	}
	out := &prefixWriter{c: s.con, prefix: "  vm: "}
	vm, err := lab.Start(ctx, lab.Config{
		Kernel:   cfg.kernel,
		Command:  []string{"bash", filepath.Join(cfg.repo, "cmd", "kfwrun", "guest.sh")},
		Dir:      cfg.repo,
		Env:      env,
		Forwards: []lab.Forward{{Host: cfg.exporterPort, Guest: guestExporterPort}, {Host: cfg.agentPort, Guest: guestAgentPort}},
		Timeout:  cfg.timeout,
		LogDir:   cfg.vmDir(),
		Name:     "run",
		Stdout:   out,
		Stderr:   out,
		Repo:     cfg.repo,
	})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		res, err := vm.Wait()
		if err == nil {
			err = errors.New("the lab VM stopped by itself")
			if runErr := res.Err(); runErr != nil {
				err = fmt.Errorf("%w: %w", err, runErr)
			}
		}
		done <- err
	}()
	s.vmDone = done
	s.con.say("booting the lab VM (%s kernel %s) under TCG: about 10-20 s, then the guest sets up", s.kernel.Name, s.kernel.Release)
	return vm, nil
}

// waitReady waits until the exporter reports kfw_up 1 and Prometheus has
// scraped it.
func (s *session) waitReady(ctx context.Context, w *waiter) error {
	err := w.until("the exporter in the VM to report kfw_up 1", func() bool {
		m, err := scrapeExporter(ctx, s.http, s.cfg.exporterURL())
		if err != nil {
			return false // not up yet (qemu accepts, then closes, until the guest listens)
		}
		v, _ := m.sum("kfw_up")
		return v == 1
	})
	if err != nil {
		return err
	}
	s.con.say("the exporter answers at %s with kfw_up 1", s.cfg.exporterURL())
	pc := newPromClient(s.prom.url)
	err = w.until(`Prometheus to scrape it (up{job="kfw"} == 1)`, func() bool {
		up, err := pc.query(ctx, `up{job="kfw"}`)
		return err == nil && len(up) == 1 && up[0].Value == 1
	})
	if err == nil {
		s.con.say("ready: Prometheus scrapes the exporter")
	}
	return err
}

// runChecks is the automated test of the lab (--for): checks when ready,
// again after cfg.runFor.
func (s *session) runChecks(ctx context.Context, w *waiter) error {
	pc := newPromClient(s.prom.url)
	check := func(history bool) (metrics, error) {
		m, err := scrapeExporter(ctx, s.http, s.cfg.exporterURL())
		if err != nil {
			return nil, err
		}
		return m, errors.Join(checkExporter(m, s.withEvents), checkPrometheus(ctx, pc, history),
			checkAgent(ctx, s.cfg, s.token))
	}
	s.con.say("checking the exporter, Prometheus and the agent")
	m1, err := check(false)
	if err != nil {
		return fmt.Errorf("checks failed:\n%w", err)
	}
	s.con.say("checks passed; running %v more", s.cfg.runFor)
	if err := w.sleep(s.cfg.runFor); err != nil {
		return err
	}
	m2, err := check(s.cfg.runFor >= 2*scrapeInterval)
	if err == nil {
		err = checkGrowth(m1, m2)
	}
	if err != nil {
		return fmt.Errorf("checks after %v failed:\n%w", s.cfg.runFor, err)
	}
	s.con.say("checks passed again after %v: stopping", s.cfg.runFor)
	return nil
}

// checkAgent runs commands in the VM through the agent, as "kfwrun exec"
// does, and checks that the module holds the lab's rule set.
func checkAgent(ctx context.Context, cfg config, token string) error {
	var stdout, stderr strings.Builder
	code, err := remoteExec(ctx, "127.0.0.1:"+strconv.Itoa(cfg.agentPort), token,
		[]string{"cat", "/proc/kfw/rules"}, nil, &stdout, &stderr)
	if err != nil {
		return fmt.Errorf("kfwrun exec cat /proc/kfw/rules: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("kfwrun exec cat /proc/kfw/rules: exit status %d: %s", code, stderr.String())
	}
	want, err := canonicalRules(cfg.repo)
	if err != nil {
		return err
	}
	if stdout.String() != want {
		return fmt.Errorf("/proc/kfw/rules in the VM:\n%s\nwant the canonical form of cmd/kfwrun/rules:\n%s", stdout.String(), want)
	}
	return nil
}

// waiter waits for conditions while watching the VM and Prometheus.
type waiter struct {
	ctx    context.Context
	con    *console
	vmDone <-chan error
	prom   *prometheus
}

// until polls cond every half second until it holds; it fails when ctx
// ends or the VM or Prometheus stops, and says every 15 s what it waits for.
func (w *waiter) until(what string, cond func() bool) error {
	w.con.say("waiting for %s", what)
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	nextNote := start.Add(15 * time.Second)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(nextNote) {
			w.con.say("still waiting for %s (%.0f s)", what, time.Since(start).Seconds())
			nextNote = time.Now().Add(15 * time.Second)
		}
		select {
		case <-tick.C:
		case <-w.ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", what)
		case err := <-w.vmDone:
			return err
		case <-w.prom.done:
			return fmt.Errorf("prometheus exited (%v) while kfwrun waited for %s", w.prom.err, what)
		}
	}
}

// sleep waits d unless something ends first.
func (w *waiter) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-w.ctx.Done():
		return errors.New("interrupted")
	case err := <-w.vmDone:
		return err
	case <-w.prom.done:
		return fmt.Errorf("prometheus exited: %v", w.prom.err)
	}
}

// wantEvents decides whether the checks require events.
func wantEvents(mode, ko string) (bool, error) {
	switch mode {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	case "auto":
		return moduleHasEvents(ko)
	}
	return false, fmt.Errorf("--events=%q: want auto, yes or no", mode)
}

// cleanStale stops the qemu and Prometheus processes of an earlier run
// that died without stopping them.
func cleanStale(con *console, dir string) error {
	procs, err := staleProcesses(dir)
	if err != nil {
		return err
	}
	for _, p := range procs {
		con.say("stopping %s left by an earlier run", p)
		if err := stopProcess(p.pid, 5*time.Second); err != nil {
			return fmt.Errorf("stopping %s: %w", p, err)
		}
	}
	return nil
}

// checkPrerequisites finds the kernel and checks that kfw.ko, the guest's
// binaries and Prometheus exist, saying which make target builds them.
func checkPrerequisites(cfg config) (lab.Kernel, error) {
	k, err := lab.FindKernel(cfg.repo, cfg.kernel)
	if err != nil {
		return k, err
	}
	if cfg.module == "" {
		if _, err := os.Stat(lab.ModulePath(cfg.repo, k.Release)); err != nil {
			return k, fmt.Errorf("kfw.ko for %s is not built (run make modules): %w", k.Release, err)
		}
	} else if err := lab.GuestCanSee(cfg.module); err != nil {
		return k, err
	} else if _, err := os.Stat(cfg.module); err != nil {
		return k, err
	}
	for _, name := range guestBinaries {
		if _, err := os.Stat(filepath.Join(cfg.binDir, name)); err != nil {
			return k, fmt.Errorf("%s is not built (make run builds it): %w", name, err)
		}
	}
	if err := lab.GuestCanSee(cfg.binDir); err != nil {
		return k, err
	}
	if _, err := exec.LookPath(cfg.prometheus); err != nil {
		return k, fmt.Errorf("no Prometheus (apt-get install prometheus, or scripts/deps.sh): %w", err)
	}
	return k, nil
}

// prepareStateDir empties what a run writes (the VM's run directory and
// Prometheus's data) and writes a new agent token, readable by its owner
// only. It returns the token.
func prepareStateDir(cfg config) (string, error) {
	for _, dir := range []string{cfg.vmDir(), filepath.Join(cfg.stateDir, "prometheus")} {
		if err := os.RemoveAll(dir); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(cfg.vmDir(), 0o755); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(cfg.vmDir(), "token"), []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	return token, nil
}

func writeState(dir string, st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stateFile), append(data, '\n'), 0o644)
}

func readState(dir string) (state, error) {
	var st state
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(data, &st)
}

// rel shows path relative to the repository when it is inside it.
func rel(repo, path string) string {
	if r, err := filepath.Rel(repo, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// vmExample is a command the instructions suggest running in the VM.
type vmExample struct {
	argv    []string
	note    string
	endless bool // runs until interrupted
}

// vmExamples are the commands the instructions suggest; TestMakeRun runs
// each of them.
var vmExamples = []vmExample{
	{argv: []string{"kfwctl", "rules", "list"}, note: "any command, run as root in the VM"},
	{argv: []string{"kfwctl", "events"}, note: "live drop and hit events, until Ctrl-C", endless: true},
	{argv: []string{"cat", "/proc/kfw/rule_stats"}},
	{argv: []string{"ip", "netns", "exec", "kfwc", "kfwtraffic", "send", "--udp", "10.10.2.2:7001", "--count", "10"},
		note: "more traffic: the forward policy drops it"},
}

// instructions is what kfwrun prints once the lab is ready.
func instructions(cfg config, st state) string {
	execCmd := "bin/kfwrun exec"
	if cfg.stateDir != filepath.Join(cfg.repo, "build", "run") {
		execCmd += " --state " + cfg.stateDir
	}
	var examples strings.Builder
	for i, ex := range vmExamples {
		label := ""
		if i == 0 {
			label = "In the VM"
		}
		line := fmt.Sprintf("  %-12s %s %s", label, execCmd, strings.Join(ex.argv, " "))
		if ex.note != "" {
			line = fmt.Sprintf("%-60s (%s)", line, ex.note)
		}
		examples.WriteString(line + "\n")
	}
	return fmt.Sprintf(`
The kfw lab is running. Ctrl-C stops it (the VM, the exporter in it and Prometheus).

  Metrics      curl -s localhost:%[1]d/metrics | grep ^kfw_
  Prometheus   %[2]s   (try rate(kfw_rule_packets_total[1m]); alerts: %[2]s/alerts)
%[3]s  Logs         %[4]s/ (exporter.log, traffic-*.log, console.log), %[5]s
  Topology     kfwc 10.10.1.2 fd00:1::2 -> router kfwr -> kfws 10.10.2.2 fd00:2::2; rules: cmd/kfwrun/rules

`, cfg.exporterPort, st.PrometheusURL, examples.String(), rel(cfg.repo, cfg.vmDir()), rel(cfg.repo, filepath.Join(cfg.stateDir, "prometheus.log")))
}
