package abi

import (
	"strings"
	"testing"
)

// FuzzParseCommands checks that any input either fails cleanly or yields
// commands whose printed form parses back to the same commands and prints
// the same bytes again: what /proc/kfw/rules prints, a write accepts.
func FuzzParseCommands(f *testing.F) {
	for _, seed := range []string{
		"flush\npolicy hook=input action=accept\npolicy hook=forward action=drop\npolicy hook=output action=accept\n",
		"add id=10 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dport=22 hooks=input\n",
		"add id=20 action=drop family=ipv4 proto=tcp dport=22 hooks=input,forward log=1 rate=100 burst=200",
		"add id=30 action=drop proto=udp dport=5000-5999\n",
		"add id=40 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 iif=veth0\n",
		"add dport=22 action=drop proto=6 id=5 src=10.0.0.0/8\n",
		"del id=10\n# comment\n\n\tflush",
		"add id=1 action=drop src=::ffff:10.0.0.0/104 dst=::/0 oif=eth0 hooks=forward,output",
		"add id=1 action=drop dport=22\n",
		"add id=1 action=drop src=10.0.0.1/8",
		"policy hook=input",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cmds, err := ParseCommands(text)
		if err != nil {
			if _, ok := err.(*CommandError); !ok {
				t.Fatalf("error %T is not a *CommandError: %v", err, err)
			}
			return
		}
		var sb strings.Builder
		for _, c := range cmds {
			if c.Op == CommandAdd {
				if err := c.Rule.Validate(); err != nil {
					t.Fatalf("parsed rule %q does not validate: %v", c.Rule, err)
				}
			}
			sb.WriteString(c.String())
			sb.WriteByte('\n')
		}
		printed := sb.String()
		again, err := ParseCommands(printed)
		if err != nil {
			t.Fatalf("printed form %q does not parse: %v", printed, err)
		}
		if len(again) != len(cmds) {
			t.Fatalf("printed form %q gives %d commands, want %d", printed, len(again), len(cmds))
		}
		for i := range cmds {
			a, b := cmds[i], again[i]
			a.Line, b.Line = 0, 0
			if a != b {
				t.Fatalf("command %d: %+v reparsed as %+v", i, a, b)
			}
			if s := again[i].String(); s != cmds[i].String() {
				t.Fatalf("command %d prints %q then %q", i, cmds[i].String(), s)
			}
		}
	})
}
