// Package dashboards holds kfw's Grafana dashboards (grafana/*.json) and
// Prometheus recording and alerting rules (prometheus/*.yml). Its tests run
// promtool on the rules and their unit tests, check every PromQL expression
// of the rules and dashboards against Prometheus's parser and the metrics of
// docs/METRICS.md, and check the dashboards' structure. See README.md.
package dashboards

// The dashboards are built in Go (internal/grafanagen); this writes the
// committed JSON.
//go:generate go run ./internal/cmd/gendashboards -out grafana
