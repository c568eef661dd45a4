package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// Grafana 11.0 writes schemaVersion 39; the dashboards must be at least
// that recent so that current Grafana imports them without migrating.
const minSchemaVersion = 39

var dashboardUIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// The generic shape of a dashboard, as Grafana reads it.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasourceRef  `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string         `json:"name"`
			BuiltIn    int            `json:"builtIn"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var wantDatasource = datasourceRef{Type: "prometheus", UID: "${datasource}"}

type grafanaPanel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     struct{ X, Y, W, H int }
	Panels      []grafanaPanel `json:"panels"`
	Targets     []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds *struct {
				Steps []struct {
					Value *float64 `json:"value"`
					Color string   `json:"color"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

type dashboardFile struct {
	path string
	raw  []byte
	d    grafanaDashboard
}

func readDashboards(t *testing.T) []dashboardFile {
	t.Helper()
	var out []dashboardFile
	for _, path := range globOrFail(t, filepath.Join("grafana", "*.json")) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d grafanaDashboard
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, dashboardFile{path: path, raw: raw, d: d})
	}
	return out
}

func TestDashboardsAreImportable(t *testing.T) {
	uids := map[string]string{}
	titles := map[string]bool{}
	for _, f := range readDashboards(t) {
		d := f.d
		if !dashboardUIDRE.MatchString(d.UID) {
			t.Errorf("%s: uid %q, want %s", f.path, d.UID, dashboardUIDRE)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q already used by %s", f.path, d.UID, other)
		}
		uids[d.UID] = f.path
		if d.Title == "" || titles[d.Title] {
			t.Errorf("%s: title %q empty or not unique", f.path, d.Title)
		}
		titles[d.Title] = true
		if d.SchemaVersion < minSchemaVersion {
			t.Errorf("%s: schemaVersion %d, want >= %d (Grafana 11 or later)", f.path, d.SchemaVersion, minSchemaVersion)
		}
		checkVariables(t, f)
		checkAnnotations(t, f)
		checkNoFixedDatasource(t, f)
	}
}

func checkVariables(t *testing.T, f dashboardFile) {
	var names []string
	for _, v := range f.d.Templating.List {
		names = append(names, v.Name)
		switch v.Type {
		case "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" {
				t.Errorf("%s: datasource variable %q: query %s, want \"prometheus\"", f.path, v.Name, v.Query)
			}
		case "query":
			if v.Datasource == nil || *v.Datasource != wantDatasource {
				t.Errorf("%s: variable %q: datasource %+v, want %+v", f.path, v.Name, v.Datasource, wantDatasource)
			}
		default:
			t.Errorf("%s: variable %q of unexpected type %q", f.path, v.Name, v.Type)
		}
	}
	if len(names) < 3 || !slices.Equal(names[:3], []string{"datasource", "job", "instance"}) {
		t.Errorf("%s: variables %q, want datasource, job and instance first, in that order", f.path, names)
	}
	if f.d.Templating.List[0].Type != "datasource" {
		t.Errorf("%s: the datasource variable must be of type datasource", f.path)
	}
}

func checkAnnotations(t *testing.T, f dashboardFile) {
	n := 0
	for _, a := range f.d.Annotations.List {
		if a.BuiltIn != 0 {
			continue
		}
		n++
		if a.Datasource == nil || *a.Datasource != wantDatasource {
			t.Errorf("%s: annotation %q: datasource %+v, want %+v", f.path, a.Name, a.Datasource, wantDatasource)
		}
	}
	if n == 0 {
		t.Errorf("%s: no annotation (ruleset changes belong on the graphs)", f.path)
	}
}

// checkNoFixedDatasource walks the whole JSON: any "uid" below the top
// level must be the datasource variable, never an installation's uid.
func checkNoFixedDatasource(t *testing.T, f dashboardFile) {
	var doc map[string]any
	if err := json.Unmarshal(f.raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				if k == "uid" && path != "" && child != "${datasource}" {
					t.Errorf("%s: %s.uid = %v, want ${datasource}", f.path, path, child)
				}
				walk(path+"."+k, child)
			}
		case []any:
			for i, child := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), child)
			}
		}
	}
	walk("", doc)
}

func TestPanelsAreComplete(t *testing.T) {
	for _, f := range readDashboards(t) {
		ids := map[int]bool{}
		var grid []grafanaPanel
		var walk func(panels []grafanaPanel)
		walk = func(panels []grafanaPanel) {
			for _, p := range panels {
				if p.ID <= 0 || ids[p.ID] {
					t.Errorf("%s: panel %q: id %d not positive or not unique", f.path, p.Title, p.ID)
				}
				ids[p.ID] = true
				grid = append(grid, p)
				if p.Type == "row" {
					walk(p.Panels)
					continue
				}
				checkPanel(t, f.path, p)
			}
		}
		walk(f.d.Panels)
		checkGrid(t, f.path, grid)
	}
}

func checkPanel(t *testing.T, path string, p grafanaPanel) {
	where := fmt.Sprintf("%s: panel %q", path, p.Title)
	if p.Title == "" {
		t.Errorf("%s: a %s panel has no title", path, p.Type)
	}
	if p.Description == "" {
		t.Errorf("%s: no description", where)
	}
	if p.Datasource == nil || *p.Datasource != wantDatasource {
		t.Errorf("%s: datasource %+v, want %+v", where, p.Datasource, wantDatasource)
	}
	if p.FieldConfig.Defaults.Unit == "" {
		t.Errorf("%s: no unit", where)
	}
	th := p.FieldConfig.Defaults.Thresholds
	if th == nil || len(th.Steps) == 0 || th.Steps[0].Value != nil || th.Steps[0].Color == "" {
		t.Errorf("%s: thresholds must start with a base color", where)
	}
	if len(p.Targets) == 0 {
		t.Errorf("%s: no query", where)
	}
	refIDs := map[string]bool{}
	for _, q := range p.Targets {
		if q.RefID == "" || refIDs[q.RefID] {
			t.Errorf("%s: refId %q empty or not unique", where, q.RefID)
		}
		refIDs[q.RefID] = true
		if q.Datasource == nil || *q.Datasource != wantDatasource {
			t.Errorf("%s target %s: datasource %+v, want %+v", where, q.RefID, q.Datasource, wantDatasource)
		}
	}
}

// checkGrid checks that panels stay within Grafana's 24 columns and do not
// overlap.
func checkGrid(t *testing.T, path string, panels []grafanaPanel) {
	for i, p := range panels {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: panel %q: gridPos %+v outside the 24-column grid", path, p.Title, g)
		}
		for _, q := range panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("%s: panels %q and %q overlap", path, q.Title, p.Title)
			}
		}
	}
}
