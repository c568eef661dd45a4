package queries_test

import (
	"fmt"

	"github.com/kfwlabs/kfw_exporter/dashboards/queries"
)

// The lab test's use: run every dashboard query against one target.
func ExampleExpand() {
	vars := queries.MatchAllVars()
	vars["instance"] = "127.0.0.1:10170"
	expr, err := queries.Expand(`rate(kfw_packets_total{instance=~"$instance"}[$__rate_interval])`, vars)
	fmt.Println(expr, err)
	// Output: rate(kfw_packets_total{instance=~"127.0.0.1:10170"}[1m]) <nil>
}
