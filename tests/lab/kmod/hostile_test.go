//go:build labvm

package kmod

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// hostileWrites are /proc/kfw/rules writes that must each fail with EINVAL
// and change nothing. The table they meet holds rules 10 and 20.
var hostileWrites = []struct{ name, text string }{
	// Commands and syntax.
	{"garbage", "garbage\n"},
	{"binary garbage", "\x01\x02\x03\xff\xfe"},
	{"uppercase command", "ADD id=1 action=drop\n"},
	{"add without keys", "add\n"},
	{"flush with an argument", "flush now\n"},
	{"key without =", "add id=1 action=drop family\n"},
	{"empty value", "add id=1 action=drop family=\n"},
	{"empty key", "add id=1 action=drop =x\n"},
	{"double =", "add id==1 action=drop\n"},
	{"unknown key", "add id=1 action=drop colour=red\n"},
	{"repeated key", "add id=1 action=drop id=2\n"},
	{"repeated src", "add id=1 action=drop src=10.0.0.0/8 src=10.0.0.0/8\n"},
	// id and action.
	{"id missing", "add action=drop\n"},
	{"action missing", "add id=1\n"},
	{"id 0", "add id=0 action=drop\n"},
	{"id 65536", "add id=65536 action=drop\n"},
	{"huge id", "add id=99999999999999999999999 action=drop\n"},
	{"negative id", "add id=-1 action=drop\n"},
	{"signed id", "add id=+5 action=drop\n"},
	{"hex id", "add id=0x10 action=drop\n"},
	{"unknown action", "add id=1 action=reject\n"},
	{"duplicate of a table id", "add id=10 action=drop\n"},
	{"duplicate within the write", "add id=50 action=drop\nadd id=50 action=accept\n"},
	// Families and addresses.
	{"unknown family", "add id=1 action=drop family=ipv5\n"},
	{"ipv4 family, ipv6 src", "add id=1 action=drop family=ipv4 src=2001:db8::/32\n"},
	{"ipv6 family, ipv4 dst", "add id=1 action=drop family=ipv6 dst=10.0.0.0/8\n"},
	{"src and dst of two families", "add id=1 action=drop src=10.0.0.0/8 dst=2001:db8::/32\n"},
	{"icmp with family ipv6", "add id=1 action=drop proto=icmp family=ipv6\n"},
	{"icmp with an ipv6 address", "add id=1 action=drop proto=icmp src=2001:db8::/32\n"},
	{"icmpv6 with family ipv4", "add id=1 action=drop proto=icmpv6 family=ipv4\n"},
	{"icmpv6 with an ipv4 address", "add id=1 action=drop proto=icmpv6 dst=10.0.0.1\n"},
	{"ipv4 host bits", "add id=1 action=drop src=10.0.0.1/8\n"},
	{"ipv6 host bits", "add id=1 action=drop dst=2001:db8::1/32\n"},
	{"ipv4 prefix too long", "add id=1 action=drop src=10.0.0.0/33\n"},
	{"ipv6 prefix too long", "add id=1 action=drop src=2001:db8::/129\n"},
	{"huge prefix length", "add id=1 action=drop src=10.0.0.0/99999999999\n"},
	{"empty prefix length", "add id=1 action=drop src=10.0.0.0/\n"},
	{"octet above 255", "add id=1 action=drop src=10.0.0.256\n"},
	{"three octets", "add id=1 action=drop src=10.0.0\n"},
	{"octet with a leading zero", "add id=1 action=drop src=010.0.0.0/8\n"},
	{"trailing garbage after an address", "add id=1 action=drop src=10.0.0.1x\n"},
	{"bad ipv6", "add id=1 action=drop src=2001:db8:::1\n"},
	{"ipv6 with a zone", "add id=1 action=drop src=fe80::1%eth0\n"},
	{"hostname", "add id=1 action=drop dst=localhost\n"},
	// Protocols and ports.
	{"protocol 256", "add id=1 action=drop proto=256\n"},
	{"unknown protocol name", "add id=1 action=drop proto=sctp\n"},
	{"port without proto", "add id=1 action=drop dport=22\n"},
	{"port with icmp", "add id=1 action=drop proto=icmp dport=22\n"},
	{"sport with protocol 47", "add id=1 action=drop proto=47 sport=1\n"},
	{"reversed range", "add id=1 action=drop proto=tcp dport=30-20\n"},
	{"port 65536", "add id=1 action=drop proto=tcp dport=65536\n"},
	{"three-part range", "add id=1 action=drop proto=udp sport=1-2-3\n"},
	{"open range", "add id=1 action=drop proto=udp sport=5-\n"},
	// Interfaces and hooks.
	{"iif at output only", "add id=1 action=drop iif=eth0 hooks=output\n"},
	{"oif at input only", "add id=1 action=drop oif=eth0 hooks=input\n"},
	{"interface name of 16 bytes", "add id=1 action=drop iif=abcdefghijklmnop\n"},
	{"interface name with /", "add id=1 action=drop iif=a/b\n"},
	{"interface name ..", "add id=1 action=drop oif=..\n"},
	{"interface name .", "add id=1 action=drop iif=.\n"},
	{"repeated hook", "add id=1 action=drop hooks=input,input\n"},
	{"empty hook", "add id=1 action=drop hooks=input,\n"},
	{"unknown hook", "add id=1 action=drop hooks=prerouting\n"},
	// Event options.
	{"burst without rate", "add id=1 action=drop burst=10\n"},
	{"burst with rate 0", "add id=1 action=drop rate=0 burst=10\n"},
	{"burst 0", "add id=1 action=drop rate=10 burst=0\n"},
	{"rate too high", "add id=1 action=drop rate=1000001\n"},
	{"log 2", "add id=1 action=drop log=2\n"},
	{"log yes", "add id=1 action=drop log=yes\n"},
	// del and policy.
	{"del of a missing id", "del id=999\n"},
	{"del without id", "del\n"},
	{"del with another key", "del id=10 action=drop\n"},
	{"del twice", "del id=10\ndel id=10\n"},
	{"policy without action", "policy hook=input\n"},
	{"policy without hook", "policy action=drop\n"},
	{"policy of an unknown hook", "policy hook=prerouting action=drop\n"},
	{"policy reject", "policy hook=input action=reject\n"},
	{"policy with two hooks", "policy hook=input action=drop hook=output\n"},
	// Atomicity: a later bad line undoes the earlier good ones.
	{"good line then bad line", "add id=60 action=drop\nadd id=61 action=bogus\n"},
	{"flush then bad line", "flush\npolicy hook=input action=drop\nadd id=1 action=bogus\n"},
	// Bytes and sizes.
	{"line of 512 bytes", "add id=1 action=drop" + strings.Repeat(" ", 512-20) + "\n"},
	{"comment line of 512 bytes", "#" + strings.Repeat("x", 511) + "\n"},
	{"write of 4097 bytes", strings.Repeat("#"+strings.Repeat("x", 63)+"\n", 64) + "\n"},
	{"5000 lines", strings.Repeat("\n", 5000)},
	{"5000 adds", manyAdds(5000)},
	{"NUL at the end", "add id=1 action=drop\x00"},
	{"NUL inside", "add id=1\x00 action=drop\n"},
	{"NUL in a comment", "# \x00\n"},
	{"partial UTF-8", "add id=1 action=drop\n# caf\xc3\n"},
	{"valid UTF-8", "# café\n"},
	{"carriage return", "add id=1 action=drop\r\n"},
	{"DEL byte", "add id=1 action=drop\x7f\n"},
	{"escape sequence", "add id=1 action=drop \x1b[31m\n"},
	{"form feed", "\f\n"},
	{"vertical tab", "add id=1\vaction=drop\n"},
}

// manyAdds returns n valid add lines: far more than a page.
func manyAdds(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString("add id=" + strconv.Itoa(i) + " action=drop\n")
	}
	return b.String()
}

// TestHostileWrites checks that each hostile write fails with EINVAL and
// leaves the rules and the generation as they were.
func TestHostileWrites(t *testing.T) {
	labtest.LoadModule(t)
	mustWriteRules(t, "policy hook=output action=drop", "add id=10 action=accept proto=tcp dport=22",
		"add id=20 action=drop family=ipv6")
	rules, gen := readRules(t), generation(t)
	if len(hostileWrites) < 40 {
		t.Fatalf("only %d hostile writes", len(hostileWrites))
	}
	for _, w := range hostileWrites {
		err := writeRules(w.text)
		if !isErrno(err, unix.EINVAL) {
			t.Errorf("%s: write returned %v, want EINVAL", w.name, err)
		}
		if got := readRules(t); got != rules {
			t.Fatalf("%s: the rules changed to\n%s", w.name, got)
		}
		if g := generation(t); g != gen {
			t.Fatalf("%s: generation moved from %d to %d", w.name, gen, g)
		}
		// The abi package rejects the same texts (those that fit a page).
		if len(w.text) <= abi.MaxProcWriteBytes {
			model := abi.NewRuleTable()
			cmds, err := abi.ParseCommands(readRules(t))
			if err == nil {
				err = model.Apply(cmds)
			}
			if err != nil {
				t.Fatalf("abi cannot load the table: %v", err)
			}
			cmds, err = abi.ParseCommands(w.text)
			if err == nil {
				err = model.Apply(cmds)
			}
			if err == nil {
				t.Errorf("%s: the abi package accepts what the kernel rejects", w.name)
			}
		}
	}
}

// TestRejectionIsLogged checks the kernel log line of a rejected write. It
// loads a fresh module so that the log's rate limit has not been spent.
func TestRejectionIsLogged(t *testing.T) {
	labtest.LoadModule(t)
	mark, err := guest.MarkLog()
	if err != nil {
		t.Fatal(err)
	}
	text := "# header\nadd id=1 action=accept\nadd id=2 action=drop proto=icmp dport=5000-5999\n"
	if err := writeRules(text); !isErrno(err, unix.EINVAL) {
		t.Fatalf("write returned %v, want EINVAL", err)
	}
	if err := writeRules("add id=3 action=drop\nfrobnicate\n"); !isErrno(err, unix.EINVAL) {
		t.Fatalf("write returned %v, want EINVAL", err)
	}
	want := []string{
		"kfw: rules: line 3: dport: port range needs proto tcp or udp",
		"kfw: rules: line 2: command: unknown command 'frobnicate'",
	}
	records, err := guest.LogSince(mark)
	if err != nil {
		t.Fatal(err)
	}
	var log []string
	for _, r := range records {
		log = append(log, r.Message)
	}
	for _, w := range want {
		found := false
		for _, l := range log {
			found = found || l == w
		}
		if !found {
			t.Errorf("kernel log lacks %q; it has:\n%s", w, strings.Join(log, "\n"))
		}
	}
}
