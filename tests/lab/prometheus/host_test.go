//go:build !labvm

// Package prometheus tests dashboards/ against a real Prometheus: Debian's
// prometheus on the host scrapes kfw_exporter in a lab VM (qemu user
// networking, a port forward) and evaluates the shipped rule files, scaled
// in time (see speedup). The VM runs the guest driver of guest_test.go.
package prometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kfwlabs/kfw_exporter/dashboards/queries"
	"github.com/kfwlabs/kfw_exporter/lab"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hostWait bounds every wait of the host side for the guest or Prometheus;
// nothing is asserted about time.
const hostWait = 3 * time.Minute

// vmTimeout bounds the whole VM run.
const vmTimeout = 15 * time.Minute

// labRun is one run of TestPrometheus.
type labRun struct {
	t       *testing.T
	repo    string
	vm      *lab.VM
	control string // http://127.0.0.1:PORT of the guest driver
	target  string // the exporter as Prometheus scrapes it: 127.0.0.1:PORT
	prom    *promServer
	start   time.Time // when Prometheus started
	queries []queries.Query
}

// TestPrometheus boots a VM with the module, a rule set, paced traffic and
// kfw_exporter, points a Prometheus at it with the shipped rules (scaled),
// and checks through Prometheus's HTTP API that every dashboard query
// returns data, and that alerts fire when the lab provokes what they are
// about, and not before:
//
//   - KfwRulesetChanged and KfwEventsSuppressed: a rule whose hit events are
//     limited to 1/s is added and sent 10 packets/s;
//   - KfwEventsLost: the exporter is stopped (SIGSTOP) while a burst of
//     logged packets overflows its small socket buffer;
//   - KfwDropRateSpike: the drop rate goes from 5/s to 65/s;
//   - KfwModuleReloaded: rmmod and insmod in a row;
//   - KfwModuleDown: rmmod, and the module stays away.
//
// Alerts that nothing provokes must never fire, and every rule must
// evaluate without error.
//
// It runs on the generic kernel only, whatever KFW_LAB_KERNELS asks
// besides: Prometheus runs on the host, and what it sees of the VM does
// not depend on the kernel flavour (the exporter suite runs on all three).
func TestPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a lab VM: not with -short")
	}
	if !wantsGenericKernel() {
		t.Skip("runs on the generic kernel only, which KFW_LAB_KERNELS does not name")
	}
	began := time.Now()
	r := startLab(t)
	booted := time.Now()

	r.waitQuery("Prometheus to record the drop rate", `instance_verdict:kfw_packets:rate5m{verdict="drop"}`)
	r.t.Logf("Prometheus started at %s", r.start.Format("15:04:05"))

	// Suppression: the ruleset changes, then a fifth of the events are
	// refused for good.
	r.checkNeverActive("KfwEventsSuppressed", false)
	r.checkNeverActive("KfwRulesetChanged", false)
	r.step("suppress-start")
	r.waitFiring("KfwRulesetChanged")
	r.waitFiring("KfwEventsSuppressed")
	// Every kind of traffic has flowed for a while: the dashboards.
	r.checkDashboards()
	r.step("suppress-stop")

	r.checkNeverActive("KfwEventsLost", false)
	r.step("loss")
	r.waitFiring("KfwEventsLost")

	// The alert's baseline and the history it needs, scaled like the rules.
	baseline := r.scaled(`3 * avg_over_time(instance_verdict:kfw_packets:rate5m{verdict="drop"}[1h] offset 10m)`)
	r.waitQuery("a drop-rate baseline", baseline)
	r.waitQuery("the history the drop-spike alert needs", r.scaled(`instance_verdict:kfw_packets:rate5m{verdict="drop"} offset 15m`))
	r.checkNeverActive("KfwDropRateSpike", false, `instance_verdict:kfw_packets:rate5m{verdict="drop"}`, baseline)
	r.step("spike-start")
	r.waitFiring("KfwDropRateSpike")
	r.step("spike-stop")

	r.checkNeverActive("KfwModuleReloaded", false)
	r.step("reload")
	r.waitFiring("KfwModuleReloaded")

	// The quick reload above must not have fired it.
	r.checkNeverActive("KfwModuleDown", true)
	r.step("rmmod")
	r.waitFiring("KfwModuleDown")
	r.step("insmod")

	r.checkAnnotations()
	r.checkRecordings()
	for _, name := range []string{"KfwExporterDown", "KfwExporterAbsent", "KfwCollectorFailing",
		"KfwEventsNotSubscribed", "KfwRuleTableNearlyFull", "KfwUnexpectedCounterReset", "KfwRecordingRulesMissing"} {
		r.checkNeverActive(name, true)
	}
	r.checkRuleHealth()
	scenario := time.Now()

	r.step("finish")
	res, err := r.vm.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot and set-up %.0fs, scenario %.0fs, shutdown %.0fs; total %.0fs",
		booted.Sub(began).Seconds(), scenario.Sub(booted).Seconds(), time.Since(scenario).Seconds(), time.Since(began).Seconds())
}

// wantsGenericKernel reports whether KFW_LAB_KERNELS (default: generic)
// names the generic kernel.
func wantsGenericKernel() bool {
	v := os.Getenv("KFW_LAB_KERNELS")
	if strings.TrimSpace(v) == "" {
		return true
	}
	for _, k := range strings.Split(v, ",") {
		if strings.TrimSpace(k) == lab.Generic {
			return true
		}
	}
	return false
}

func repoRoot(t *testing.T) string {
	t.Helper()
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// startLab boots the VM, waits for its driver, and starts Prometheus.
func startLab(t *testing.T) *labRun {
	t.Helper()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: apt-get install prometheus (or scripts/deps.sh)")
	}
	r := &labRun{t: t, repo: repoRoot(t)}
	if r.queries, err = queries.Load(filepath.Join(r.repo, "dashboards")); err != nil {
		t.Fatal(err)
	}
	lab.CheckBinaryFresh(t, "kfw_exporter", ".")
	k, err := lab.FindKernel(r.repo, lab.Generic)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lab.ModulePath(r.repo, k.Release)); err != nil {
		t.Fatalf("kfw.ko for %s not built: run make modules (%v)", k.Release, err)
	}
	driver := buildDriver(t, r.repo)

	exporterPort, controlPort := labtest.FreePort(t), labtest.FreePort(t)
	r.target = net.JoinHostPort("127.0.0.1", strconv.Itoa(exporterPort))
	r.control = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(controlPort))
	timeout := vmTimeout
	if deadline, ok := t.Deadline(); ok {
		timeout = min(timeout, time.Until(deadline)-30*time.Second)
	}
	stdout, stderr := &lab.LineLogger{T: t, Prefix: "guest: "}, &lab.LineLogger{T: t, Prefix: "guest stderr: "}
	r.vm, err = lab.Start(context.Background(), lab.Config{
		Kernel:   lab.Generic,
		Command:  []string{driver, "-test.run=^TestGuestDriver$", "-test.v", "-test.timeout=" + (timeout * 4 / 5).String()},
		Dir:      filepath.Join(r.repo, "tests", "lab", "prometheus"),
		Env:      []string{driverEnv + "=1"},
		Forwards: []lab.Forward{{Host: exporterPort, Guest: guestExporterPort}, {Host: controlPort, Guest: guestControlPort}},
		Timeout:  timeout,
		Name:     "prometheus",
		Stdout:   stdout,
		Stderr:   stderr,
		Repo:     r.repo,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.vm.Stop()
		_, _ = r.vm.Wait() // the output's last lines are logged before the test ends
		stdout.Flush()
		stderr.Flush()
		if t.Failed() {
			t.Logf("VM logs (console, payload output, kfw_exporter.log): %s", r.vm.LogDir)
		} else if os.Getenv("KFW_LAB_KEEP") == "" {
			os.RemoveAll(r.vm.LogDir)
		}
	})
	r.waitDriver()

	dir := t.TempDir()
	rules := writeScaledRules(t, r.repo, dir)
	r.start = time.Now()
	r.prom = startPrometheus(t, promBin, dir, prometheusConfig(rules, r.target))
	return r
}

// prometheusConfig scrapes the exporter as job kfw, the job the alerts
// expect, and loads the rule files.
func prometheusConfig(ruleFiles []string, target string) string {
	quoted := make([]string, len(ruleFiles))
	for i, f := range ruleFiles {
		quoted[i] = strconv.Quote(f)
	}
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[2]s
rule_files: [%[3]s]
scrape_configs:
  - job_name: kfw
    static_configs:
      - targets: [%[4]q]
`, scrapeInterval, evaluationInterval, strings.Join(quoted, ", "), target)
}

// buildDriver compiles the guest driver where the guest can see it. Stating
// its inputs makes go test's cache rerun this test when they change.
func buildDriver(t *testing.T, repo string) string {
	t.Helper()
	pkg := "./tests/lab/prometheus"
	list := exec.Command("go", "list", "-deps", "-test", "-tags", "labvm", "-f", "{{.Dir}}", pkg)
	list.Dir = repo
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	for _, dir := range strings.Fields(string(out)) {
		statRepoDir(t, repo, dir)
	}
	bin := filepath.Join(repo, "build", "lab", "suites", "prometheus-driver.test")
	build := exec.Command("go", "test", "-c", "-tags", "labvm", "-o", bin, pkg)
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c -tags labvm %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// statRepoDir stats the files of dir if it is in the repository.
func statRepoDir(t *testing.T, repo, dir string) []os.FileInfo {
	t.Helper()
	if rel, err := filepath.Rel(repo, dir); err != nil || strings.HasPrefix(rel, "..") {
		return nil // the standard library and the module cache
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var infos []os.FileInfo
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, fi)
	}
	return infos
}

// waitDriver waits until the guest driver answers. qemu accepts on the
// forwarded port before the guest listens and then closes the connection:
// retry until an answer, or until the VM ends.
func (r *labRun) waitDriver() {
	r.t.Helper()
	ended := make(chan error, 1)
	go func() {
		res, err := r.vm.Wait()
		if err == nil {
			err = res.Err()
		}
		if err == nil {
			err = fmt.Errorf("the guest driver exited with status %d", res.ExitCode)
		}
		ended <- err
	}()
	deadline := time.Now().Add(hostWait)
	for {
		resp, err := http.Get(r.control + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-ended:
			r.t.Fatalf("the VM ended before its driver was ready: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the guest driver did not answer at %s within %v", r.control, hostWait)
		}
	}
}

// step asks the guest driver for a scenario step.
func (r *labRun) step(name string) {
	r.t.Helper()
	began := time.Now()
	resp, err := (&http.Client{Timeout: hostWait}).Post(r.control+"/step/"+name, "", nil)
	if err != nil {
		r.t.Fatalf("step %s: %v", name, err)
	}
	defer resp.Body.Close()
	var res stepResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		r.t.Fatalf("step %s: HTTP %d, %v", name, resp.StatusCode, err)
	}
	if res.Failed {
		r.t.Fatalf("step %s failed in the guest: %s", name, res.Result)
	}
	r.t.Logf("[%5.1fs] step %s: %s (%.1fs)", r.since(), name, res.Result, time.Since(began).Seconds())
}

// since is the time since Prometheus started, for the log.
func (r *labRun) since() float64 { return time.Since(r.start).Seconds() }

// scaled is expr with its durations scaled like the rules Prometheus runs.
func (r *labRun) scaled(expr string) string {
	r.t.Helper()
	out, err := rewriteDurations(expr, divideBy(speedup))
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// waitQuery waits until q, evaluated now and shifted in time like a
// dashboard query (see evalShift), returns a finite value.
func (r *labRun) waitQuery(what, q string) {
	r.t.Helper()
	shift := r.evalShift(q)
	deadline := time.Now().Add(hostWait)
	for {
		res, err := r.prom.query(q, time.Now().Add(shift))
		if err != nil {
			r.t.Fatalf("query %s: %v", q, err)
		}
		if finite(res) {
			r.t.Logf("[%5.1fs] %s", r.since(), what)
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("gave up waiting for %s: %s returns %s", what, q, describe(res))
		}
		time.Sleep(time.Second)
	}
}

// waitFiring waits until alertname fires for the exporter's target.
func (r *labRun) waitFiring(alertname string) {
	r.t.Helper()
	began := time.Now()
	deadline := began.Add(hostWait)
	for {
		alerts, err := r.prom.alerts()
		if err != nil {
			r.t.Fatal(err)
		}
		var states []string
		for _, a := range alerts {
			if a.Labels["alertname"] != alertname {
				continue
			}
			if a.State == "firing" && a.Labels["instance"] == r.target && a.Labels["job"] == "kfw" {
				r.t.Logf("[%5.1fs] %s firing (%.0fs after asked for; value %s)", r.since(), alertname, time.Since(began).Seconds(), a.Value)
				return
			}
			states = append(states, fmt.Sprintf("%s %v", a.State, a.Labels))
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s did not fire; it is %v", alertname, states)
		}
		time.Sleep(time.Second)
	}
}

// checkNeverActive fails if alertname was ever pending or firing (firing
// only, if firingOnly) since Prometheus started, as the ALERTS series
// that Prometheus writes for every active alert tells.
func (r *labRun) checkNeverActive(alertname string, firingOnly bool, context ...string) {
	r.t.Helper()
	q := fmt.Sprintf(`ALERTS{alertname=%q}`, alertname)
	if firingOnly {
		q = fmt.Sprintf(`ALERTS{alertname=%q, alertstate="firing"}`, alertname)
	}
	res, err := r.prom.queryRange(q, r.start, time.Now(), evaluationInterval)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(res) > 0 {
		r.t.Errorf("%s was active before the lab provoked it: %s", alertname, describe(res))
		for _, q := range context {
			if res, err := r.prom.queryRange(q, r.start, time.Now(), scrapeInterval); err == nil {
				r.t.Logf("%s: %s", q, describe(res))
			}
		}
	}
}

// dashboardVars are the Grafana variables of the dashboards set to the
// lab's target. The instance is used as a regular expression unescaped:
// its dots match themselves too, and no other target exists.
func (r *labRun) dashboardVars() queries.Vars {
	vars := queries.MatchAllVars()
	vars["job"] = "kfw"
	vars["instance"] = r.target
	return vars
}

// evalShift is how far in the future to evaluate a dashboard query. A
// query whose selectors all look back by an offset (the drop-rate
// baseline: 1h ending 10m ago) can only return data once its data is
// that old; evaluated that much later, it sees the data the lab has.
func (r *labRun) evalShift(expr string) time.Duration {
	r.t.Helper()
	ds, err := offsets(expr)
	if err != nil {
		r.t.Fatal(err)
	}
	var shift time.Duration
	for _, d := range ds {
		shift = max(shift, d)
	}
	return shift
}

// checkDashboards runs every panel query of the dashboards as Grafana
// would (instant or range, variables expanded) and every label_values
// variable, and fails for each that returns no data.
func (r *labRun) checkDashboards() {
	r.t.Helper()
	vars := r.dashboardVars()
	now := time.Now()
	var panels, variables int
	for _, q := range r.queries {
		expr, err := queries.Expand(q.Expr, vars)
		if err != nil {
			r.t.Errorf("%s: %v", q, err)
			continue
		}
		switch q.Kind {
		case queries.KindPanel:
			panels++
			shift := r.evalShift(expr)
			var res []series
			if q.Instant {
				res, err = r.prom.query(expr, now.Add(shift))
			} else {
				res, err = r.prom.queryRange(expr, r.start.Add(shift), now.Add(shift), scrapeInterval)
			}
			if err != nil {
				r.t.Errorf("%s: %s: %v", q, expr, err)
			} else if !finite(res) {
				r.t.Errorf("%s: %s returns no data: %s", q, expr, describe(res))
			}
		case queries.KindVariable:
			variables++
			values, err := r.prom.labelValues(q.Label, expr, r.start, now)
			if err != nil {
				r.t.Errorf("%s: %v", q, err)
				continue
			}
			want := map[string]string{"job": "kfw", "instance": r.target, "rule": "90"}[q.Label]
			if !slices.Contains(values, want) {
				r.t.Errorf("%s: label_values(%s, %s) = %q, want %q among them", q, expr, q.Label, values, want)
			}
		}
	}
	r.t.Logf("[%5.1fs] %d panel queries and %d variables return data", r.since(), panels, variables)
}

// checkAnnotations runs the dashboards' annotation queries over the whole
// run: the ruleset changed and the module was reloaded.
func (r *labRun) checkAnnotations() {
	r.t.Helper()
	vars := r.dashboardVars()
	n := 0
	for _, q := range r.queries {
		if q.Kind != queries.KindAnnotation {
			continue
		}
		n++
		expr, err := queries.Expand(q.Expr, vars)
		if err != nil {
			r.t.Errorf("%s: %v", q, err)
			continue
		}
		res, err := r.prom.queryRange(expr, r.start, time.Now(), scrapeInterval)
		if err != nil {
			r.t.Errorf("%s: %v", q, err)
		} else if !finite(res) {
			r.t.Errorf("%s: %s marks nothing over the run", q, expr)
		}
	}
	r.t.Logf("[%5.1fs] %d annotation queries mark the run", r.since(), n)
}

// checkRecordings checks that every recording rule recorded something for
// the target during the run.
func (r *labRun) checkRecordings() {
	r.t.Helper()
	names := queries.Names(r.queries, queries.KindRecord)
	for _, name := range names {
		q := fmt.Sprintf(`%s{instance=%q}`, name, r.target)
		res, err := r.prom.queryRange(q, r.start, time.Now(), scrapeInterval)
		if err != nil {
			r.t.Errorf("recording %s: %v", name, err)
		} else if !finite(res) {
			r.t.Errorf("recording %s recorded nothing over the run", name)
		}
	}
	r.t.Logf("[%5.1fs] %d recording rules recorded data", r.since(), len(names))
}

// checkRuleHealth fails for every rule Prometheus could not evaluate.
func (r *labRun) checkRuleHealth() {
	r.t.Helper()
	rules, err := r.prom.rules()
	if err != nil {
		r.t.Fatal(err)
	}
	shipped := 0
	for _, q := range r.queries {
		if q.Kind == queries.KindRecord || q.Kind == queries.KindAlert {
			shipped++
		}
	}
	if len(rules) != shipped {
		r.t.Errorf("Prometheus has %d rules loaded, the rule files %d", len(rules), shipped)
	}
	for _, rh := range rules {
		if rh.Health != "ok" {
			r.t.Errorf("rule %s: health %q: %s", rh.Name, rh.Health, rh.LastError)
		}
	}
}
