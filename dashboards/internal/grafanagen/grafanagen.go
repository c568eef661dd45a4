// Package grafanagen builds kfw's Grafana dashboards with the Grafana
// Foundation SDK. The JSON it renders is committed under dashboards/grafana
// (go generate ./dashboards writes it; a test fails when it is stale), so
// users import plain files and reviewers read diffs of both.
package grafanagen

//lint:file-ignore SA1019 The SDK prefers dashboardv2, Grafana 12's experimental resource format, which
// Grafana 11 cannot import; the classic dashboard model imports into both.

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// File is one dashboard and the name of its JSON file.
type File struct {
	Name      string // e.g. "kfw-overview.json"
	Dashboard dashboard.Dashboard
}

// Dashboards builds every kfw dashboard.
func Dashboards() ([]File, error) {
	builders := []struct {
		name  string
		build func() (dashboard.Dashboard, error)
	}{
		{"kfw-overview.json", Overview},
		{"kfw-rules.json", Rules},
	}
	files := make([]File, 0, len(builders))
	for _, b := range builders {
		d, err := b.build()
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", b.name, err)
		}
		files = append(files, File{Name: b.name, Dashboard: d})
	}
	return files, nil
}

// Render returns the JSON of d as committed: indented, with <, > and &
// left readable, ending in a newline.
func Render(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encoding dashboard: %w", err)
	}
	return buf.Bytes(), nil
}
