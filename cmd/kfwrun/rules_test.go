package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestRulesFile keeps cmd/kfwrun/rules, the rule ids the checks name and
// what the issue asks of the lab's rule set in step.
func TestRulesFile(t *testing.T) {
	repo := repoRoot(t)
	text, err := os.ReadFile(filepath.Join(repo, rulesPath))
	if err != nil {
		t.Fatal(err)
	}
	if len(text) >= 4096 {
		t.Errorf("%s is %d bytes: guest.sh writes it to /proc/kfw/rules in one write, which takes at most 4095", rulesPath, len(text))
	}
	table := abi.NewRuleTable()
	if err := table.ApplyText(string(text)); err != nil {
		t.Fatal(err)
	}
	rules := make(map[string]abi.Rule)
	for _, r := range table.Rules {
		rules[strconv.Itoa(int(r.ID))] = r
	}
	for _, id := range acceptedRules {
		if r, ok := rules[id]; !ok || r.Action != abi.ActionAccept {
			t.Errorf("rule %s: %v, want an accept rule", id, r)
		}
	}
	for _, id := range append(slices.Clone(droppedRules), unusedRule) {
		if r, ok := rules[id]; !ok || r.Action != abi.ActionDrop {
			t.Errorf("rule %s: %v, want a drop rule", id, r)
		}
	}
	if r := rules[loggedRule]; !r.Log || r.Rate == 0 {
		t.Errorf("rule %s: %v, want log=1 with a rate limit", loggedRule, r)
	}
	families := map[uint8]bool{}
	for _, r := range table.Rules {
		families[r.Family] = true
	}
	if !families[abi.FamilyIPv4] || !families[abi.FamilyIPv6] {
		t.Error("the rule set should have IPv4 and IPv6 rules")
	}
	if table.Policies[abi.HookForward] != abi.ActionDrop {
		t.Error("the forward policy should drop (the policy-dropped flow relies on it)")
	}

	got, err := canonicalRules(repo)
	if err != nil {
		t.Fatal(err)
	}
	if got != table.String() || !strings.HasPrefix(got, "flush\npolicy hook=input action=accept\n") {
		t.Errorf("canonicalRules = %q", got)
	}
}

// TestGuestScript checks the guest script's syntax, and that it sends
// traffic to every port the rules count on.
func TestGuestScript(t *testing.T) {
	repo := repoRoot(t)
	script := filepath.Join(repo, "cmd", "kfwrun", "guest.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", script, err, out)
	}
	if shellcheck, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(shellcheck, script).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, flow := range []string{
		"--udp 10.10.2.2:5001", "--udp '[fd00:2::2]:5001'", // rules 10, 11
		"--tcp 10.10.2.2:5002", "--tcp '[fd00:2::2]:5002'", // rules 20, 21
		"--udp 10.10.2.2:6001", "--tcp '[fd00:2::2]:6002'", // rules 30, 31
		"--udp 10.10.2.2:7001", "--udp '[fd00:2::2]:7001'", // the forward policy
	} {
		if !strings.Contains(string(data), flow) {
			t.Errorf("guest.sh sends no %s", flow)
		}
	}
	for _, bin := range guestBinaries {
		if bin != "kfwctl" && !strings.Contains(string(data), bin+" ") {
			t.Errorf("guest.sh does not run %s", bin)
		}
	}
}
