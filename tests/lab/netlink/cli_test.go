//go:build labvm

package netlink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/cmd/kfwctl/cli"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// kfwctl runs kfwctl's cli.Run against the real kernel.
func kfwctl(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cli.DefaultEnv()
	env.Stdin, env.Stdout, env.Stderr = strings.NewReader(stdin), &out, &errOut
	code = cli.Run(context.Background(), args, env)
	return code, out.String(), errOut.String()
}

// mustKfwctl runs kfwctl and fails unless it succeeds.
func mustKfwctl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := kfwctl(t, stdin, args...)
	if code != cli.ExitOK {
		t.Fatalf("kfwctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestKfwctl drives the kernel with kfwctl's commands: what it saves is
// what /proc/kfw/rules says, what it restores (larger than a page) is what
// /proc then says, and the kernel's refusals come out with their message
// and exit code 1.
func TestKfwctl(t *testing.T) {
	labtest.LoadModule(t)
	mustKfwctl(t, "", "rules", "add", "id=20", "action=drop", "proto=tcp", "dport=22", "hooks=input,forward", "log=1", "rate=100")
	mustKfwctl(t, "", "rules", "add", "action=accept", "id=10", "src=10.0.0.0/8")
	mustKfwctl(t, "", "policy", "forward", "drop")
	if got, want := mustKfwctl(t, "", "rules", "save"), labtest.ReadProc(t, abi.ProcRules); got != want {
		t.Errorf("kfwctl rules save:\n%s\n/proc/kfw/rules:\n%s", got, want)
	}
	if got := mustKfwctl(t, "", "policy"); got != "policy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n" {
		t.Errorf("kfwctl policy:\n%s", got)
	}

	var st struct {
		Instance   string `json:"instance"`
		Generation uint64 `json:"generation"`
		Rules      uint32 `json:"rules"`
	}
	if err := json.Unmarshal([]byte(mustKfwctl(t, "", "stats", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if proc := labtest.ReadProcStats(t); st.Instance != abi.FormatInstance(proc.Instance) || st.Generation != 3 || st.Rules != 2 {
		t.Errorf("kfwctl stats %+v, /proc/kfw/stats %+v", st, proc)
	}

	code, _, errOut := kfwctl(t, "", "rules", "del", "999")
	if code != cli.ExitFailure || !strings.Contains(errOut, "id: no such rule") {
		t.Errorf("kfwctl rules del 999: exit %d, %q", code, errOut)
	}

	// A saved table of more than a page restores in one transaction.
	var text strings.Builder
	text.WriteString("flush\npolicy hook=input action=accept\npolicy hook=forward action=accept\npolicy hook=output action=accept\n")
	for _, r := range bigTable(200) {
		text.WriteString("add " + r.String() + "\n")
	}
	if text.Len() <= abi.MaxProcWriteBytes {
		t.Fatalf("the table is only %d bytes", text.Len())
	}
	file := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(file, []byte(text.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	gen := labtest.ReadProcStats(t).Generation
	mustKfwctl(t, "", "rules", "restore", file)
	if got := labtest.ReadProc(t, abi.ProcRules); got != text.String() {
		t.Errorf("/proc/kfw/rules after kfwctl rules restore (%d bytes) differs from the file (%d bytes)", len(got), text.Len())
	}
	if g := labtest.ReadProcStats(t).Generation; g != gen+1 {
		t.Errorf("restore took generation %d -> %d, want one transaction", gen, g)
	}
	// Restoring what save prints changes nothing but the generation.
	saved := mustKfwctl(t, "", "rules", "save")
	mustKfwctl(t, saved, "rules", "restore", "-")
	if got := labtest.ReadProc(t, abi.ProcRules); got != saved {
		t.Error("restoring a saved table changed it")
	}

	list := mustKfwctl(t, "", "rules", "list", "-o", "json")
	var rules []struct {
		ID   uint16 `json:"id"`
		Rule string `json:"rule"`
	}
	if err := json.Unmarshal([]byte(list), &rules); err != nil {
		t.Fatal(err)
	}
	if len(rules) != 200 || rules[0].Rule != strings.TrimPrefix(strings.Split(saved, "\n")[4], "add ") {
		t.Errorf("kfwctl rules list: %d rules, first %q", len(rules), fmt.Sprint(rules[:min(1, len(rules))]))
	}
	mustKfwctl(t, "", "rules", "flush")
	if got := labtest.ReadProcStats(t).Rules; got != 0 {
		t.Errorf("%d rules after kfwctl rules flush", got)
	}
}
