package harness

import (
	"strings"
	"testing"
)

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/kfwlabs/kfw_exporter/netlinkclient
cpu: AMD EPYC
BenchmarkDecodeBatch/ipv4-2         	   12345	     95000 ns/op	  38.54 MB/s	       993.2 ns/event	         0 allocs/event	        95.00 events/batch	       0 B/op	       0 allocs/op
--- BENCH: BenchmarkSomething
    x_test.go:1: a log line
PASS
pkg: github.com/kfwlabs/kfw_exporter/abi
BenchmarkParseProcStats-2   	  100000	      1234 ns/op	     512 B/op	       7 allocs/op
ok  	github.com/kfwlabs/kfw_exporter/abi	1.2s
`
	bs, err := parseGoBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("%d benchmarks: %+v", len(bs), bs)
	}
	d := bs[0]
	if d.Pkg != "github.com/kfwlabs/kfw_exporter/netlinkclient" || d.Name != "BenchmarkDecodeBatch/ipv4-2" || d.N != 12345 ||
		d.Metrics["ns/event"] != 993.2 || d.Metrics["events/batch"] != 95 || d.Metrics["allocs/op"] != 0 {
		t.Errorf("decode: %+v", d)
	}
	if p := bs[1]; p.Pkg != "github.com/kfwlabs/kfw_exporter/abi" || p.Metrics["ns/op"] != 1234 || p.Metrics["B/op"] != 512 {
		t.Errorf("parse: %+v", p)
	}
}
