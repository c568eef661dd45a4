package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kfwlabs/kfw_exporter/abi"
)

// rulesPath is the lab's rule set, relative to the repository.
var rulesPath = filepath.Join("cmd", "kfwrun", "rules")

// canonicalRules is the lab's rule set as /proc/kfw/rules prints it once
// guest.sh has written it to a freshly loaded module.
func canonicalRules(repo string) (string, error) {
	text, err := os.ReadFile(filepath.Join(repo, rulesPath))
	if err != nil {
		return "", err
	}
	t := abi.NewRuleTable()
	if err := t.ApplyText(string(text)); err != nil {
		return "", fmt.Errorf("%s: %w", rulesPath, err)
	}
	return t.String(), nil
}
