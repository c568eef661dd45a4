//go:build labvm

package kmod

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab/guest"
	"github.com/kfwlabs/kfw_exporter/lab/labtest"
)

// everyKindOfRule uses every key and value form of the rule language, in
// canonical form.
var everyKindOfRule = []string{
	"add id=1 action=accept family=ipv4 proto=tcp src=10.1.0.0/16 dst=192.168.1.1/32 sport=1024-65535 dport=22 iif=veth0 hooks=input,forward log=1 rate=100 burst=200",
	"add id=2 action=drop family=ipv6 proto=icmpv6 src=2001:db8::/32 dst=fe80::1:2:3:4/128 oif=eth-s hooks=forward,output",
	"add id=3 action=drop proto=udp dport=5000-5999",
	"add id=4 action=accept proto=47",
	"add id=5 action=drop proto=0 hooks=forward",
	"add id=6 action=accept proto=255 log=1",
	"add id=7 action=drop proto=icmp src=0.0.0.0/0 hooks=output",
	"add id=8 action=drop src=::/0",
	"add id=9 action=accept dst=::ffff:10.0.0.1/128",
	"add id=10 action=accept iif=lo oif=lo hooks=forward",
	"add id=11 action=accept proto=udp sport=0 dport=65535 rate=5 burst=5",
	"add id=12 action=drop src=2001:db8:0:1:1:1:1:1/128",
	"add id=13 action=drop dst=2001:0:0:1::/64",
	"add id=14 action=drop src=1::2:0:0:3:4/128",
	"add id=15 action=drop iif=a.b-c_d@e:f=g#h oif=x",
	"add id=16 action=accept family=ipv4 hooks=output",
	"add id=17 action=drop proto=tcp sport=7 oif=eth0 hooks=output",
	"add id=65535 action=drop rate=1000000 burst=1000000",
}

// TestSaveRestoreRoundTrip checks that /proc/kfw/rules prints exactly what
// was written in canonical form, and that writing what was read restores
// the same bytes, also onto an empty table.
func TestSaveRestoreRoundTrip(t *testing.T) {
	labtest.LoadModule(t)
	policies := []string{
		"policy hook=input action=accept",
		"policy hook=forward action=drop",
		"policy hook=output action=accept",
	}
	mustWriteRules(t, append(policies, everyKindOfRule...)...)
	want := "flush\n" + strings.Join(policies, "\n") + "\n" + sortedByID(everyKindOfRule)
	saved := readRules(t)
	if saved != want {
		t.Fatalf("rules read back as\n%s\nwant\n%s", saved, want)
	}

	if err := writeRules(saved); err != nil {
		t.Fatalf("restoring what was read: %v", err)
	}
	if got := readRules(t); got != saved {
		t.Fatalf("after restore:\n%s\nwant\n%s", got, saved)
	}

	mustWriteRules(t, "flush", "policy hook=forward action=accept", "add id=99 action=drop")
	if err := writeRules(saved); err != nil {
		t.Fatalf("restoring onto another table: %v", err)
	}
	if got := readRules(t); got != saved {
		t.Fatalf("after restore onto another table:\n%s\nwant\n%s", got, saved)
	}

	// The Go implementation of the ABI prints the same table.
	model := abi.NewRuleTable()
	cmds, err := abi.ParseCommands(saved)
	if err != nil {
		t.Fatalf("abi.ParseCommands rejects the kernel's table: %v", err)
	}
	if err := model.Apply(cmds); err != nil {
		t.Fatalf("abi model rejects the kernel's table: %v", err)
	}
	if model.String() != saved {
		t.Fatalf("abi prints the table as\n%s\nthe kernel as\n%s", model.String(), saved)
	}
}

// sortedByID returns add lines ordered by id, newline-terminated.
func sortedByID(lines []string) string {
	idOf := func(line string) int {
		var id int
		fmt.Sscanf(line, "add id=%d", &id)
		return id
	}
	sorted := append([]string(nil), lines...)
	for i := range sorted {
		for j := i + 1; j < len(sorted); j++ {
			if idOf(sorted[j]) < idOf(sorted[i]) {
				sorted[i], sorted[j] = sorted[j], sorted[i]
			}
		}
	}
	return strings.Join(sorted, "\n") + "\n"
}

// TestCanonicalForm checks the printed form of rules written in other
// spellings, against the expected text and against the abi package.
func TestCanonicalForm(t *testing.T) {
	labtest.LoadModule(t)
	cases := []struct{ in, want string }{
		{"add dport=22 action=drop proto=6 id=5 src=10.0.0.0/8", "add id=5 action=drop proto=tcp src=10.0.0.0/8 dport=22"},
		{"add id=007 action=accept", "add id=7 action=accept"},
		{"add\tid=1\t\taction=drop   proto=udp  dport=53-53\t", "add id=1 action=drop proto=udp dport=53"},
		{"   add id=1 action=drop family=any hooks=output,input,forward log=0 rate=0", "add id=1 action=drop"},
		{"add id=1 action=drop hooks=output,input", "add id=1 action=drop hooks=input,output"},
		{"add id=1 action=drop hooks=forward", "add id=1 action=drop hooks=forward"},
		{"add id=1 action=drop src=10.0.0.1", "add id=1 action=drop src=10.0.0.1/32"},
		{"add id=1 action=drop dst=10.0.0.0/08", "add id=1 action=drop dst=10.0.0.0/8"},
		{"add id=1 action=drop src=2001:DB8:0:0:0:0:0:0/32", "add id=1 action=drop src=2001:db8::/32"},
		{"add id=1 action=drop src=2001:0db8:0000:0000:0000:0000:0000:0001", "add id=1 action=drop src=2001:db8::1/128"},
		{"add id=1 action=drop src=::ffff:10.0.0.1", "add id=1 action=drop src=::ffff:10.0.0.1/128"},
		{"add id=1 action=drop dst=::", "add id=1 action=drop dst=::/128"},
		{"add id=1 action=drop dst=0:0:0:0:0:0:0:1/128", "add id=1 action=drop dst=::1/128"},
		{"add id=1 action=drop src=1:0:0:2:0:0:0:3", "add id=1 action=drop src=1:0:0:2::3/128"},
		{"add id=1 action=drop src=1:0:2:3:4:5:6:7", "add id=1 action=drop src=1:0:2:3:4:5:6:7/128"},
		{"add id=1 action=drop src=1:2:3:4:5:6:7::", "add id=1 action=drop src=1:2:3:4:5:6:7:0/128"},
		{"add id=1 action=drop dst=1:0:0:0:2:0:0:0", "add id=1 action=drop dst=1::2:0:0:0/128"},
		{"add id=1 action=drop dst=::1.2.3.4", "add id=1 action=drop dst=::102:304/128"},
		{"add id=1 action=drop src=fe80::5efe:c000:201", "add id=1 action=drop src=fe80::5efe:c000:201/128"},
		{"add id=1 action=drop src=2001:db8:0:0:0:5efe:10.0.0.1", "add id=1 action=drop src=2001:db8::5efe:a00:1/128"},
		{"add id=1 action=drop proto=1", "add id=1 action=drop proto=icmp"},
		{"add id=1 action=drop proto=58", "add id=1 action=drop proto=icmpv6"},
		{"add id=1 action=drop proto=17 sport=0-65535", "add id=1 action=drop proto=udp sport=0-65535"},
		{"add id=1 action=drop proto=132", "add id=1 action=drop proto=132"},
		{"add id=1 action=drop proto=0", "add id=1 action=drop proto=0"},
		{"add id=1 action=accept rate=10", "add id=1 action=accept rate=10 burst=10"},
		{"add id=1 action=accept burst=20 log=1 rate=10", "add id=1 action=accept log=1 rate=10 burst=20"},
		{"add id=1 action=accept oif=eth0 iif=eth1 family=ipv6", "add id=1 action=accept family=ipv6 iif=eth1 oif=eth0"},
	}
	for _, c := range cases {
		mustWriteRules(t, "flush", c.in)
		got := strings.TrimPrefix(readRules(t), "flush\npolicy hook=input action=accept\npolicy hook=forward action=accept\npolicy hook=output action=accept\n")
		if got != c.want+"\n" {
			t.Errorf("%q is printed as %q, want %q", c.in, strings.TrimSuffix(got, "\n"), c.want)
		}
		cmds, err := abi.ParseCommands(c.in)
		if err != nil || len(cmds) != 1 {
			t.Errorf("abi.ParseCommands(%q) = %v, %v; the kernel accepts it", c.in, cmds, err)
			continue
		}
		if s := cmds[0].String(); s != c.want {
			t.Errorf("abi prints %q as %q, the kernel as %q", c.in, s, c.want)
		}
	}
}

// TestMatchesABIModel writes seeded random command texts, valid and not,
// and checks that the kernel accepts exactly what the abi package's model
// of the table accepts and ends up with the same table.
func TestMatchesABIModel(t *testing.T) {
	const maxRules = 12
	labtest.LoadModule(t, fmt.Sprintf("max_rules=%d", maxRules))
	model := abi.NewRuleTable()
	model.MaxRules = maxRules
	rng := rand.New(rand.NewPCG(2, 3))
	accepted, commits := 0, 0
	const writes = 1000
	for i := range writes {
		var lines []string
		for range 1 + rng.IntN(3) {
			lines = append(lines, randomCommand(rng))
		}
		text := strings.Join(lines, "\n")
		kernelErr := writeRules(text)
		cmds, modelErr := abi.ParseCommands(text)
		if modelErr == nil {
			modelErr = model.Apply(cmds)
		}
		if (kernelErr == nil) != (modelErr == nil) {
			t.Fatalf("write %d %q: kernel error %v, abi model error %v", i, text, kernelErr, modelErr)
		}
		if kernelErr == nil {
			accepted++
			if len(cmds) > 0 { // blank and comment lines commit nothing
				commits++
			}
		}
		if got, want := readRules(t), model.String(); got != want {
			t.Fatalf("after write %d %q the kernel has\n%s\nthe abi model\n%s", i, text, got, want)
		}
	}
	if g := generation(t); g != uint64(commits) {
		t.Fatalf("generation %d after %d accepted writes holding commands", g, commits)
	}
	t.Logf("%d of %d random writes accepted", accepted, writes)
}

func pick[T any](rng *rand.Rand, values ...T) T { return values[rng.IntN(len(values))] }

// randomCommand returns one line: mostly valid commands, some of them
// failing against the table (an id that exists or does not), and some
// invalid in every way the generator can think of.
func randomCommand(rng *rand.Rand) string {
	switch n := rng.IntN(20); {
	case n == 0:
		return "flush"
	case n <= 2:
		return "policy hook=" + pick(rng, "input", "forward", "output", "output", "prerouting") +
			" action=" + pick(rng, "accept", "drop", "drop", "reject")
	case n <= 5:
		return "del id=" + pick(rng, "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "0", "65536")
	case n == 6:
		return pick(rng, "", "# comment", "frob id=1", "add", "del", "flush now", "policy", "add id=3")
	case n <= 8:
		return randomAnyAdd(rng)
	}
	return randomCoherentAdd(rng)
}

// randomCoherentAdd returns an add whose keys agree with each other.
func randomCoherentAdd(rng *rand.Rand) string {
	words := []string{"add", "id=" + strconv.Itoa(1+rng.IntN(14)), "action=" + pick(rng, "accept", "drop")}
	v6 := rng.IntN(2) == 0
	if rng.IntN(3) == 0 {
		words = append(words, "family="+map[bool]string{false: "ipv4", true: "ipv6"}[v6])
	}
	if rng.IntN(3) == 0 {
		if v6 {
			words = append(words, "src="+pick(rng, "2001:db8::/32", "::1", "fe80::/10", "::/0", "2001:DB8:0:0:1::/80"))
		} else {
			words = append(words, "src="+pick(rng, "10.0.0.0/8", "10.1.2.3", "0.0.0.0/0", "192.168.7.0/24"))
		}
	}
	if rng.IntN(4) == 0 {
		if v6 {
			words = append(words, "dst="+pick(rng, "::ffff:1.2.3.4/128", "2001:db8:1::/48", "fe80::5efe:c000:201", "1:0:0:2:0:0:3:0"))
		} else {
			words = append(words, "dst="+pick(rng, "127.0.0.1/32", "172.16.0.0/12"))
		}
	}
	proto := ""
	if rng.IntN(2) == 0 {
		proto = pick(rng, "tcp", "udp", "6", "17", "47", "0", map[bool]string{false: "icmp", true: "icmpv6"}[v6])
		words = append(words, "proto="+proto)
	}
	if proto == "tcp" || proto == "udp" || proto == "6" || proto == "17" {
		if rng.IntN(2) == 0 {
			words = append(words, "sport="+pick(rng, "22", "1024-65535", "0", "7-7"))
		}
		if rng.IntN(2) == 0 {
			words = append(words, "dport="+pick(rng, "53", "80-88", "0-65535"))
		}
	}
	hooks := pick(rng, "", "input", "output", "forward", "output,input", "input,forward,output")
	if hooks != "" {
		words = append(words, "hooks="+hooks)
	}
	if hooks != "output" && rng.IntN(4) == 0 {
		words = append(words, "iif="+pick(rng, "eth0", "lo", "veth-a.b"))
	}
	if hooks != "input" && rng.IntN(4) == 0 {
		words = append(words, "oif="+pick(rng, "eth1", "x:y"))
	}
	if rng.IntN(3) == 0 {
		words = append(words, "log="+pick(rng, "0", "1"))
	}
	if rng.IntN(3) == 0 {
		rate := pick(rng, "0", "10", "1000000")
		words = append(words, "rate="+rate)
		if rate != "0" && rng.IntN(2) == 0 {
			words = append(words, "burst="+pick(rng, "1", "10", "1000000"))
		}
	}
	rng.Shuffle(len(words)-1, func(i, j int) { words[i+1], words[j+1] = words[j+1], words[i+1] })
	return strings.Join(words, " ")
}

// randomAnyAdd returns an add of random keys and values, seldom valid.
func randomAnyAdd(rng *rand.Rand) string {
	values := map[string][]string{
		"id":     {"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "0", "65535", "65536"},
		"action": {"accept", "drop", "accept", "drop", "reject"},
		"family": {"ipv4", "ipv6", "any"},
		"proto":  {"tcp", "udp", "icmp", "icmpv6", "47", "0", "255", "256", "6", "17"},
		"src":    {"10.0.0.0/8", "10.0.0.1/8", "10.1.2.3", "2001:db8::/32", "2001:db8::1/128", "::/0", "0.0.0.0/0", "192.168.0.0/33", "fe80::/10", "::ffff:1.2.3.4/128", "010.0.0.0/8", "1.2.3"},
		"dst":    {"10.0.0.0/8", "172.16.0.0/12", "2001:db8::/48", "::1", "127.0.0.1/32", "2001:db8::/129"},
		"sport":  {"22", "1-1024", "1024-1", "0", "65535", "65536", "5-"},
		"dport":  {"53", "80-88", "0-65535", "443"},
		"iif":    {"eth0", "lo", "veth-a.b", ".", "a/b", "abcdefghijklmnop", "x:y"},
		"oif":    {"eth1", "lo"},
		"hooks":  {"input", "output", "forward", "input,output", "output,input", "input,input", "input,forward,output"},
		"log":    {"0", "1", "2"},
		"rate":   {"0", "10", "1000000", "1000001"},
		"burst":  {"1", "10", "0"},
	}
	keys := []string{"id", "action", "family", "proto", "src", "dst", "sport", "dport", "iif", "oif", "hooks", "log", "rate", "burst"}
	words := []string{"add"}
	for _, k := range keys {
		required := k == "id" || k == "action"
		if (required && rng.IntN(30) == 0) || (!required && rng.IntN(5) != 0) {
			continue
		}
		words = append(words, k+"="+pick(rng, values[k]...))
	}
	rng.Shuffle(len(words)-1, func(i, j int) { words[i+1], words[j+1] = words[j+1], words[i+1] })
	return strings.Join(words, " ")
}

// TestSnapshotAcrossReads checks that one open file reads one table, even
// when the table is replaced between its read() calls.
func TestSnapshotAcrossReads(t *testing.T) {
	labtest.LoadModule(t)
	const rules = 2000
	var want strings.Builder
	want.WriteString("flush\npolicy hook=input action=accept\npolicy hook=forward action=accept\npolicy hook=output action=accept\n")
	var batch []string
	for id := 1; id <= rules; id++ {
		line := fmt.Sprintf("add id=%d action=drop proto=udp dport=%d", id, id)
		want.WriteString(line + "\n")
		batch = append(batch, line)
		if len(batch) == 80 || id == rules {
			mustWriteRules(t, batch...)
			batch = batch[:0]
		}
	}
	f, err := os.Open(procPath(abi.ProcRules))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	statsFile, err := os.Open(procPath(abi.ProcRuleStats))
	if err != nil {
		t.Fatal(err)
	}
	defer statsFile.Close()
	head := make([]byte, 300)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	statsHead := make([]byte, 100)
	if _, err := io.ReadFull(statsFile, statsHead); err != nil {
		t.Fatal(err)
	}

	mustWriteRules(t, "flush", "add id=7 action=accept")

	rest, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(head) + string(rest); got != want.String() {
		t.Fatalf("a read spanning a table change gave %d bytes mixing tables, want the %d bytes of the old table",
			len(got), want.Len())
	}
	statsRest, err := io.ReadAll(statsFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(statsHead)+string(statsRest), "\n"); n != rules+1 {
		t.Fatalf("rule_stats read across a table change has %d lines, want %d", n, rules+1)
	}
	if got := readRules(t); !strings.HasSuffix(got, "\nadd id=7 action=accept\n") || strings.Count(got, "add ") != 1 {
		t.Fatalf("a new open reads\n%s\nwant the new table", got)
	}
	// Reading the same open file from the start again reads the new table.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	again, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(again); got != readRules(t) {
		t.Fatalf("a read from offset 0 of an open file gave\n%s\nwant the current table", got)
	}
}

// TestMaxRules checks the max_rules parameter: its range, and the table
// capacity counted after each transaction.
func TestMaxRules(t *testing.T) {
	t.Run("out of range", func(t *testing.T) {
		for _, v := range []string{"0", "65536", "-1"} {
			if err := loadModuleErr("max_rules=" + v); err == nil {
				t.Errorf("insmod max_rules=%s succeeded", v)
			}
		}
	})
	t.Run("largest", func(t *testing.T) {
		labtest.LoadModule(t, "max_rules=65535")
		if st := readStats(t); st.MaxRules != 65535 {
			t.Fatalf("max_rules %d, want 65535", st.MaxRules)
		}
	})
	t.Run("capacity", func(t *testing.T) {
		labtest.LoadModule(t, "max_rules=4")
		if got := moduleParam(t, "max_rules"); got != "4" {
			t.Fatalf("/sys/module/kfw/parameters/max_rules = %q", got)
		}
		fi, err := os.Stat("/sys/module/kfw/parameters/max_rules")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o444 {
			t.Fatalf("max_rules parameter mode %v, want read-only 0444", fi.Mode().Perm())
		}
		mustWriteRules(t, "add id=1 action=drop", "add id=2 action=drop", "add id=3 action=drop")
		before, gen := readRules(t), generation(t)
		for _, text := range []string{
			"add id=4 action=drop\nadd id=5 action=drop\n",
			"flush\nadd id=1 action=drop\nadd id=2 action=drop\nadd id=3 action=drop\nadd id=4 action=drop\nadd id=5 action=drop\n",
		} {
			if err := writeRules(text); !isErrno(err, unix.EINVAL) {
				t.Fatalf("write %q past max_rules: %v, want EINVAL", text, err)
			}
			if readRules(t) != before || generation(t) != gen {
				t.Fatalf("a write past max_rules changed the table")
			}
		}
		// Counted after the transaction: a full table may be rebuilt.
		mustWriteRules(t, "add id=4 action=drop")
		mustWriteRules(t, "add id=5 action=drop", "add id=6 action=drop", "del id=1", "del id=2")
		mustWriteRules(t, "flush", "add id=10 action=drop", "add id=11 action=drop", "add id=12 action=drop", "add id=13 action=drop")
		if st := readStats(t); st.Rules != 4 || st.MaxRules != 4 {
			t.Fatalf("stats rules %d max_rules %d, want 4 and 4", st.Rules, st.MaxRules)
		}
	})
}

// loadModuleErr tries to load kfw and unloads it again if that worked.
func loadModuleErr(params ...string) error {
	if err := guest.LoadModule(params...); err != nil {
		return err
	}
	return guest.UnloadModule()
}

var instanceRE = regexp.MustCompile(`(?m)^instance [0-9a-f]{16}$`)

// TestStatsFile checks /proc/kfw/stats against the module and the ABI.
func TestStatsFile(t *testing.T) {
	labtest.LoadModule(t, "max_rules=100")
	raw := string(readProc(t, abi.ProcStats))
	st := readStats(t)
	version, err := os.ReadFile("/sys/module/kfw/version")
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case st.ABIVersion != abi.Version:
		t.Errorf("abi_version %d, want %d", st.ABIVersion, abi.Version)
	case st.Version != strings.TrimSpace(string(version)):
		t.Errorf("version %q, modinfo version %q", st.Version, strings.TrimSpace(string(version)))
	case st.Instance == 0 || !instanceRE.MatchString(raw):
		t.Errorf("instance line not 16 lowercase hex digits of a non-zero id:\n%s", raw)
	case st.Generation != 0 || st.Rules != 0 || st.MaxRules != 100:
		t.Errorf("generation %d rules %d max_rules %d, want 0 0 100", st.Generation, st.Rules, st.MaxRules)
	case st.EventsGenerated+st.EventsSuppressed+st.EventsQueueOverflows+st.EventsMessagesSent+
		st.EventsNoListener+st.EventsAllocFailures+st.EventsNobufs != 0:
		t.Errorf("event counters moved without events:\n%s", raw)
	}
	for _, name := range []string{abi.ProcRules, abi.ProcStats, abi.ProcHooks, abi.ProcRuleStats} {
		fi, err := os.Stat(procPath(name))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o444)
		if name == abi.ProcRules {
			want = 0o644
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	mustWriteRules(t, "add id=1 action=drop", "add id=2 action=accept")
	if st := readStats(t); st.Rules != 2 || st.Generation != 1 {
		t.Errorf("after one write of two rules: rules %d generation %d", st.Rules, st.Generation)
	}
	if got := string(readProc(t, abi.ProcRuleStats)); got != "id action packets bytes events suppressed\n1 drop 0 0 0 0\n2 accept 0 0 0 0\n" {
		t.Errorf("rule_stats:\n%s", got)
	}
}
