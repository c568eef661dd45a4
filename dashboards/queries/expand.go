package queries

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Vars maps Grafana template variable names (without "$") to the text that
// replaces them.
type Vars map[string]string

// MatchAllVars returns values under which every dashboard query is valid
// PromQL and selects every kfw target: the dashboard variables match
// anything, Grafana's interval variables are one minute, the range one hour.
// Override job and instance to aim at one target.
func MatchAllVars() Vars {
	return Vars{
		"job":             ".+",
		"instance":        ".+",
		"rule":            ".+",
		"__rate_interval": "1m",
		"__interval":      "1m",
		"__range":         "1h",
		"__range_s":       "3600",
	}
}

// Grafana writes variables as $name, ${name}, ${name:format} or [[name]].
var variableRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]`)

// Expand replaces the Grafana template variables of expr by their values in
// vars. A variable that vars does not define is an error wrapping
// ErrUnknownVariable, so that no query reaches Prometheus half expanded.
func Expand(expr string, vars Vars) (string, error) {
	missing := map[string]bool{}
	out := variableRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := variableRE.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		v, ok := vars[name]
		if !ok {
			missing[name] = true
			return m
		}
		return v
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("%w: %s in %q", ErrUnknownVariable, strings.Join(names, ", "), expr)
	}
	return out, nil
}

// Variables lists the distinct template variables expr uses, sorted.
func Variables(expr string) []string {
	seen := map[string]bool{}
	for _, sub := range variableRE.FindAllStringSubmatch(expr, -1) {
		seen[sub[1]+sub[2]+sub[3]] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
