// Command gendashboards writes kfw's Grafana dashboards as JSON files:
//
//	go run ./dashboards/internal/cmd/gendashboards -out dashboards/grafana
//
// `go generate ./dashboards` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kfwlabs/kfw_exporter/dashboards/internal/grafanagen"
)

func main() {
	out := flag.String("out", "grafana", "directory to write the dashboards to")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gendashboards:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := grafanagen.Dashboards()
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := grafanagen.Render(f.Dashboard)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, f.Name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
