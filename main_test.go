package main

// End-to-end tests in the spirit of node_exporter's: build the binary, run
// it against the fixture trees in collector/fixtures and scrape it over HTTP.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite "+goldenPath+" from the binary's output")

const (
	goldenPath = "collector/fixtures/e2e-output.txt"
	// A family no kernel registers: the events collector runs, cannot
	// subscribe, and exports its zero state.
	absentFamily = "kfw_e2e_absent"
)

var exporterBinary string // built once by TestMain

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "kfw_exporter_e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBinary = filepath.Join(dir, "kfw_exporter")
	const v = "github.com/prometheus/common/version."
	build := exec.Command("go", "build", "-o", exporterBinary,
		"-ldflags", "-X "+v+"Version=0.0.0-e2e -X "+v+"Revision=e2e -X "+v+"Branch=e2e", ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kfw_exporter:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// exporter is a running kfw_exporter.
type exporter struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string // host:port it listens on
	logs *syncBuffer
	done chan struct{} // closed when its stderr is drained
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// startExporter runs the binary on a free port (the kernel picks it: the
// address comes from the log) and stops it with SIGTERM when the test ends,
// checking that it exits cleanly.
func startExporter(t *testing.T, args ...string) *exporter {
	t.Helper()
	cmd := exec.Command(exporterBinary, append([]string{"--web.listen-address=127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &exporter{t: t, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		defer close(e.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(e.logs, line)
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
		close(addrc)
	}()
	t.Cleanup(e.stop)
	addr, ok := <-addrc
	if !ok {
		<-e.done
		t.Fatalf("kfw_exporter exited before listening: %v\n%s", cmd.Wait(), e.logs)
	}
	e.addr = addr
	return e
}

func (e *exporter) stop() {
	if e.cmd.ProcessState != nil {
		return
	}
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		e.t.Errorf("SIGTERM: %v", err)
	}
	<-e.done
	if err := e.cmd.Wait(); err != nil {
		e.t.Errorf("kfw_exporter did not exit cleanly on SIGTERM: %v\n%s", err, e.logs)
	}
	if !strings.Contains(e.logs.String(), `msg="shutting down"`) {
		e.t.Errorf("no shutdown log:\n%s", e.logs)
	}
}

func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

func (e *exporter) scrape(t *testing.T) string {
	t.Helper()
	status, body := get(t, httpClient, "http://"+e.addr+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", status, body)
	}
	return body
}

// stableOutput drops what changes from run to run or machine to machine:
// collector durations and the Go version and architecture of the build.
func stableOutput(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(l, "kfw_exporter_collector_duration_seconds{") {
			continue
		}
		b.WriteString(l)
	}
	return regexp.MustCompile(`(goversion|goarch)="[^"]*"`).ReplaceAllString(b.String(), `$1="STRIPPED"`)
}

// TestEndToEnd compares the whole /metrics output on the proc fixture with
// collector/fixtures/e2e-output.txt; -update rewrites it.
func TestEndToEnd(t *testing.T) {
	e := startExporter(t, "--path.procfs=collector/fixtures/proc", "--netlink.family="+absentFamily,
		"--web.disable-exporter-metrics")
	got := stableOutput(e.scrape(t))
	if *update {
		if err := os.WriteFile(goldenPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("/metrics differs from %s (run go test . -run TestEndToEnd -update to accept):\n%s",
			goldenPath, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if count[l] > 0 {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if count[l] < 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}

func TestEndToEndLandingPageAndFlags(t *testing.T) {
	e := startExporter(t, "--path.procfs=collector/fixtures/proc", "--no-collector.events",
		"--web.telemetry-path=/kfw")
	status, body := get(t, httpClient, "http://"+e.addr+"/")
	if status != http.StatusOK || !strings.Contains(body, `href="/kfw"`) || !strings.Contains(body, "0.0.0-e2e") {
		t.Errorf("landing page: %d\n%s", status, body)
	}
	if status, _ := get(t, httpClient, "http://"+e.addr+"/metrics"); status != http.StatusNotFound {
		t.Errorf("GET /metrics with --web.telemetry-path=/kfw: %d, want 404", status)
	}
	status, body = get(t, httpClient, "http://"+e.addr+"/kfw")
	if status != http.StatusOK {
		t.Fatalf("GET /kfw: %d", status)
	}
	for _, want := range []string{"kfw_up 1", "go_goroutines ", "process_start_time_seconds ",
		"promhttp_metric_handler_requests_total", `kfw_exporter_build_info{branch="e2e"`} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in the output", want)
		}
	}
	if strings.Contains(body, "kfw_netlink_") || strings.Contains(body, `collector="events"`) {
		t.Errorf("--no-collector.events still exports the events collector")
	}
}

// TestEndToEndBrokenModule: whatever /proc/kfw holds, the scrape succeeds
// and kfw_up and kfw_exporter_collector_success tell what happened.
func TestEndToEndBrokenModule(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		want    []string
	}{
		{"", []string{"kfw_up 0", `kfw_exporter_collector_success{collector="stats"} 1`,
			`kfw_exporter_collector_success{collector="hooks"} 0`}},
		{"abi2", []string{"kfw_up 0", `kfw_exporter_collector_success{collector="stats"} 0`}},
		{"garbled/hooks-truncated", []string{"kfw_up 1", `kfw_exporter_collector_success{collector="hooks"} 0`,
			`kfw_exporter_collector_success{collector="rules"} 1`}},
		{"garbled/stats-garbled-line", []string{"kfw_up 0", `kfw_exporter_collector_success{collector="rules"} 0`}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			procfs := t.TempDir()
			if tc.fixture != "" {
				procfs = filepath.Join("collector/fixtures", tc.fixture)
			}
			e := startExporter(t, "--path.procfs="+procfs, "--netlink.family="+absentFamily)
			body := e.scrape(t)
			for _, w := range tc.want {
				if !strings.Contains(body, w+"\n") {
					t.Errorf("no %q in the output", w)
				}
			}
		})
	}
}

func TestInvalidProcfsPath(t *testing.T) {
	out, err := exec.Command(exporterBinary, "--path.procfs=/nonexistent/kfw-e2e").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "invalid --path.procfs") {
		t.Errorf("got %v\n%s\nwant exit status 1 and a clear message", err, out)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kfw_exporter e2e"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, b := range map[string][]byte{
		"cert.pem": certPEM,
		"key.pem":  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}

func TestTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	roots := selfSignedCert(t, dir)
	// bcrypt (cost 4) of "kfw-e2e-secret".
	config := `tls_server_config:
  cert_file: cert.pem
  key_file: key.pem
basic_auth_users:
  prometheus: $2a$04$mGAtPVlllBC7Q2Pw7XXON.sxU4Kn19ZkbVROOHxjRrY8ohsG22OeG
`
	if err := os.WriteFile(filepath.Join(dir, "web-config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, "--path.procfs=collector/fixtures/proc", "--no-collector.events",
		"--web.config.file="+filepath.Join(dir, "web-config.yml"))
	url := "https://" + e.addr + "/metrics"
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	request := func(user, password string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, _ := request("", ""); status != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", status)
	}
	if status, _ := request("prometheus", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", status)
	}
	if status, _ := request("nobody", "kfw-e2e-secret"); status != http.StatusUnauthorized {
		t.Errorf("unknown user: %d, want 401", status)
	}
	status, body := request("prometheus", "kfw-e2e-secret")
	if status != http.StatusOK || !strings.Contains(body, "kfw_up 1\n") {
		t.Errorf("right credentials: %d\n%s", status, body)
	}

	// Neither plain HTTP nor a client that does not trust the certificate
	// gets the metrics.
	if status, _ := get(t, httpClient, "http://"+e.addr+"/metrics"); status == http.StatusOK {
		t.Error("plain HTTP to the TLS port got the metrics")
	}
	if _, err := (&http.Client{Timeout: 30 * time.Second}).Get(url); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}
