package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/lab"
)

// TestPrometheusConfig checks the generated configuration with promtool,
// which also checks every rule file it names: the shipped ones.
func TestPrometheusConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not installed (apt-get install prometheus, or scripts/deps.sh): %v", err)
	}
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(config, []byte(prometheusConfig(repo, 10170)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "config", config).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	// Each shipped rule file is found and checked.
	files, err := filepath.Glob(filepath.Join(repo, "dashboards", "prometheus", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in dashboards/prometheus: %v", err)
	}
	for _, f := range files {
		if !strings.Contains(string(out), f) {
			t.Errorf("promtool did not check %s:\n%s", f, out)
		}
	}
	for _, want := range []string{"job_name: kfw", "- targets: ['127.0.0.1:10170']", "scrape_interval: 5s"} {
		if !strings.Contains(prometheusConfig(repo, 10170), want) {
			t.Errorf("the configuration lacks %q", want)
		}
	}
}
