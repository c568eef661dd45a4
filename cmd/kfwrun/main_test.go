package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"up", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"up", "-for", "-1s"}, exitUsage, "--for must not be negative"},
		{[]string{"-nosuchflag"}, exitUsage, "flag provided but not defined"},
		{[]string{"exec"}, exitUsage, "usage: kfwrun exec"},
		{[]string{"exec", "-state", t.TempDir(), "true"}, exitFailure, "the lab is not running"},
		{[]string{"agent"}, exitUsage, "usage: kfwrun agent"},
		{[]string{"agent", "-token-file", "/nonexistent/token"}, exitFailure, "no token in /nonexistent/token"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, strings.NewReader(""), &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.stderr) {
			t.Errorf("kfwrun %q: exit %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.stderr)
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"help"}, nil, &stdout, &stdout); code != 0 || !strings.Contains(stdout.String(), "kfwrun exec") {
		t.Errorf("kfwrun help: exit %d, %q", code, stdout.String())
	}
}
