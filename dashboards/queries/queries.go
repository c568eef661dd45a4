// Package queries finds every PromQL expression that kfw's Prometheus rules
// and Grafana dashboards run, so that tests can check them all: that they
// parse, that they use only documented metrics, and (in the lab) that a real
// Prometheus scraping a real exporter returns data for them.
//
// Load reads the shipped files under the dashboards directory; Expand turns
// an expression that holds Grafana template variables into plain PromQL;
// MetricNames lists the metrics an expression reads.
package queries

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v2"
)

// Kind says where a query comes from.
type Kind string

// The kinds of query.
const (
	KindRecord     Kind = "record"     // a Prometheus recording rule
	KindAlert      Kind = "alert"      // a Prometheus alerting rule
	KindPanel      Kind = "panel"      // a target of a Grafana panel
	KindVariable   Kind = "variable"   // a Grafana query variable
	KindAnnotation Kind = "annotation" // a Grafana annotation query
)

// Query is one PromQL expression and where it was found.
type Query struct {
	// File is the path relative to the dashboards directory, with forward
	// slashes: "prometheus/kfw.rules.yml", "grafana/kfw-overview.json".
	File string
	Kind Kind
	// Name is the recorded metric, the alert name, the panel title, the
	// variable name or the annotation name.
	Name string
	// RefID is the panel target's refId; empty for other kinds.
	RefID string
	// Expr is the PromQL expression as written, Grafana variables included.
	// For a variable it is the series selector of label_values() or the
	// expression of query_result().
	Expr string
	// Label is, for a label_values() variable, the label whose values it
	// lists; empty otherwise.
	Label string
	// Instant is true for a panel target that runs as an instant query.
	Instant bool
}

func (q Query) String() string {
	where := fmt.Sprintf("%s: %s %q", q.File, q.Kind, q.Name)
	if q.RefID != "" {
		where += " target " + q.RefID
	}
	return where
}

// Directories below the dashboards directory that hold the shipped files.
const (
	RulesDir      = "prometheus"
	DashboardsDir = "grafana"
)

// Load returns every query of the rule files (prometheus/*.yml) and
// dashboards (grafana/*.json) below dir, the dashboards directory of the
// repository, in file order.
func Load(dir string) ([]Query, error) {
	ruleFiles, err := filepath.Glob(filepath.Join(dir, RulesDir, "*.yml"))
	if err != nil {
		return nil, fmt.Errorf("listing rule files: %w", err)
	}
	dashFiles, err := filepath.Glob(filepath.Join(dir, DashboardsDir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("listing dashboards: %w", err)
	}
	if len(ruleFiles) == 0 || len(dashFiles) == 0 {
		return nil, fmt.Errorf("%s: no rule files (%s/*.yml) or no dashboards (%s/*.json)", dir, RulesDir, DashboardsDir)
	}
	var all []Query
	for _, path := range ruleFiles {
		qs, err := loadRuleFile(dir, path)
		if err != nil {
			return nil, err
		}
		all = append(all, qs...)
	}
	for _, path := range dashFiles {
		qs, err := loadDashboard(dir, path)
		if err != nil {
			return nil, err
		}
		all = append(all, qs...)
	}
	return all, nil
}

// RuleFile is the part of a Prometheus rule file that holds expressions.
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of a rule file.
type RuleGroup struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording or alerting rule.
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// ReadRuleFile parses a Prometheus rule file.
func ReadRuleFile(path string) (*RuleFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading rule file: %w", err)
	}
	var f RuleFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parsing rule file %s: %w", path, err)
	}
	return &f, nil
}

func loadRuleFile(dir, path string) ([]Query, error) {
	f, err := ReadRuleFile(path)
	if err != nil {
		return nil, err
	}
	rel := relPath(dir, path)
	var qs []Query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			q := Query{File: rel, Expr: strings.TrimSpace(r.Expr)}
			switch {
			case r.Record != "" && r.Alert == "":
				q.Kind, q.Name = KindRecord, r.Record
			case r.Alert != "" && r.Record == "":
				q.Kind, q.Name = KindAlert, r.Alert
			default:
				return nil, fmt.Errorf("%s: group %q: a rule needs exactly one of record and alert", rel, g.Name)
			}
			if q.Expr == "" {
				return nil, fmt.Errorf("%s: %s %q has no expr", rel, q.Kind, q.Name)
			}
			qs = append(qs, q)
		}
	}
	return qs, nil
}

// The parts of a Grafana dashboard model that hold queries.
type dashboardJSON struct {
	Title      string      `json:"title"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []variableJSON `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []annotationJSON `json:"list"`
	} `json:"annotations"`
}

type panelJSON struct {
	Title   string       `json:"title"`
	Panels  []panelJSON  `json:"panels"` // a collapsed row's panels
	Targets []targetJSON `json:"targets"`
}

type targetJSON struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
}

type variableJSON struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

type annotationJSON struct {
	Name    string      `json:"name"`
	BuiltIn int         `json:"builtIn"`
	Expr    string      `json:"expr"`
	Target  *targetJSON `json:"target"`
}

func loadDashboard(dir, path string) ([]Query, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading dashboard: %w", err)
	}
	rel := relPath(dir, path)
	var d dashboardJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parsing dashboard %s: %w", rel, err)
	}
	var qs []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, err := variableQuery(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		q.File = rel
		qs = append(qs, q)
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn != 0 {
			continue // Grafana's own annotations and alerts
		}
		expr := a.Expr
		if a.Target != nil && a.Target.Expr != "" {
			expr = a.Target.Expr
		}
		if expr == "" {
			return nil, fmt.Errorf("%s: annotation %q has no expr", rel, a.Name)
		}
		qs = append(qs, Query{File: rel, Kind: KindAnnotation, Name: a.Name, Expr: expr})
	}
	var walk func(panels []panelJSON) error
	walk = func(panels []panelJSON) error {
		for _, p := range panels {
			for _, t := range p.Targets {
				if t.Expr == "" {
					return fmt.Errorf("%s: panel %q target %q has no expr", rel, p.Title, t.RefID)
				}
				qs = append(qs, Query{File: rel, Kind: KindPanel, Name: p.Title, RefID: t.RefID,
					Expr: t.Expr, Instant: t.Instant})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	return qs, nil
}

// variableQuery reads a query variable's definition: a string, or (Grafana
// 10 and later) an object whose "query" member is that string.
func variableQuery(v variableJSON) (Query, error) {
	var text string
	if err := json.Unmarshal(v.Query, &text); err != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &obj); err != nil {
			return Query{}, fmt.Errorf("variable %q: query is neither a string nor an object: %w", v.Name, err)
		}
		text = obj.Query
	}
	q := Query{Kind: KindVariable, Name: v.Name}
	text = strings.TrimSpace(text)
	switch {
	case strings.HasPrefix(text, "label_values(") && strings.HasSuffix(text, ")"):
		args := text[len("label_values(") : len(text)-1]
		i := lastTopLevelComma(args)
		if i < 0 {
			return Query{}, fmt.Errorf("variable %q: label_values needs a series selector and a label: %s", v.Name, text)
		}
		q.Expr, q.Label = strings.TrimSpace(args[:i]), strings.TrimSpace(args[i+1:])
	case strings.HasPrefix(text, "query_result(") && strings.HasSuffix(text, ")"):
		q.Expr = strings.TrimSpace(text[len("query_result(") : len(text)-1])
	default:
		return Query{}, fmt.Errorf("variable %q: unsupported query %q (use label_values(selector, label) or query_result(expr))", v.Name, text)
	}
	if q.Expr == "" {
		return Query{}, fmt.Errorf("variable %q: empty expression in %s", v.Name, text)
	}
	return q, nil
}

// lastTopLevelComma is the index of the last comma of s outside braces,
// parentheses, brackets and strings, or -1.
func lastTopLevelComma(s string) int {
	depth, last := 0, -1
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote != '`' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '{' || c == '(' || c == '[':
			depth++
		case c == '}' || c == ')' || c == ']':
			depth--
		case c == ',' && depth == 0:
			last = i
		}
	}
	return last
}

func relPath(dir, path string) string {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return filepath.ToSlash(path)
	}
	return filepath.ToSlash(rel)
}

// Names returns the distinct names of the queries of kind k, sorted.
func Names(qs []Query, k Kind) []string {
	var names []string
	for _, q := range qs {
		if q.Kind == k && !slices.Contains(names, q.Name) {
			names = append(names, q.Name)
		}
	}
	slices.Sort(names)
	return names
}

// ErrUnknownVariable is returned by Expand for a variable it has no value for.
var ErrUnknownVariable = errors.New("unknown template variable")
