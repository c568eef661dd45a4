package main_test

// The README's examples are checked here, so that it cannot rot: rule
// lines parse as the kernel parses them (and are canonical where shown as
// output), every flag and subcommand of kfw_exporter, kfwctl, kfwrun,
// kfwtraffic and kfwlab it mentions exists (asked of the binaries' help),
// every metric it names is in docs/METRICS.md, every make target exists,
// every relative link and anchor resolves, and the "sh lab" block runs in
// a lab VM (not with -short).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/kfwlabs/kfw_exporter/abi"
	"github.com/kfwlabs/kfw_exporter/lab"
)

// pending is what the README names before its owner has delivered it. Each
// entry must still be missing: once it exists the test fails, to take it
// off this list.
var pending = map[string]string{}

// block is a fenced code block of a Markdown file.
type block struct {
	info  string // the info string: "sh", "kfw canonical", ...
	line  int    // of the opening fence
	lines []string
}

// markdown is a Markdown file split into code blocks and the rest.
type markdown struct {
	blocks []block
	prose  []string // lines outside code blocks, by line number - 1 ("" inside blocks)
}

func parseMarkdown(t *testing.T, path string) markdown {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md markdown
	var cur *block
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &block{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: i + 1}
			md.prose = append(md.prose, "")
		case cur != nil && trimmed == "```":
			md.blocks = append(md.blocks, *cur)
			cur = nil
			md.prose = append(md.prose, "")
		case cur != nil:
			cur.lines = append(cur.lines, line)
			md.prose = append(md.prose, "")
		default:
			md.prose = append(md.prose, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated code block", path, cur.line)
	}
	return md
}

// commandLines joins the continuation lines of a shell block.
func (b block) commandLines() []string {
	var out []string
	var cur strings.Builder
	for _, l := range b.lines {
		if strings.HasSuffix(l, `\`) {
			cur.WriteString(strings.TrimSuffix(l, `\`) + " ")
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// spans returns the inline code spans of the prose with their line numbers.
func (md markdown) spans() (spans []string, lines []int) {
	for i, l := range md.prose {
		for _, m := range inlineCode.FindAllStringSubmatch(l, -1) {
			spans = append(spans, m[1])
			lines = append(lines, i+1)
		}
	}
	return spans, lines
}

// headingSlugs are the anchors GitHub gives a Markdown file's headings.
func headingSlugs(md markdown) map[string]bool {
	slugs := map[string]bool{}
	link := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	for _, l := range md.prose {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		h := link.ReplaceAllString(strings.TrimLeft(l, "#"), "$1")
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(h)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		slugs[b.String()] = true
	}
	return slugs
}

// shellWords splits a command line into words: quotes, no expansions, a
// word starting with # ends the line.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '#' && !inWord:
			return words
		case c == '"' || c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				end = len(s) - i - 1
			}
			w.WriteString(s[i+1 : i+1+end])
			i += end + 1
		default:
			inWord = true
			w.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// simpleCommands splits words at shell operators and redirections.
func simpleCommands(words []string) [][]string {
	var cmds [][]string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			cmds = append(cmds, cur)
		}
		cur = nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "|" || w == "||" || w == "&&" || w == ";" || w == "&":
			flush()
		case w == ">" || w == ">>" || w == "<" || w == "2>":
			i++ // the redirection's target
		case strings.HasPrefix(w, ">") || strings.HasPrefix(w, "<") || strings.HasPrefix(w, "2>"):
		default:
			cur = append(cur, w)
		}
	}
	flush()
	return cmds
}

// tool is one of the repository's programs, asked about its flags.
type tool struct {
	name    string
	pkg     string
	kingpin bool // --help lists "--name" flags and "Commands:"; else Go's flag package
	bin     string
}

// helpFlags parses a help text: flag name (with dashes) -> takes a value.
func helpFlags(help string, kingpin bool) map[string]bool {
	flags := map[string]bool{}
	if kingpin {
		re := regexp.MustCompile(`(?m)^\s+(?:-(\w), )?--(\[no-\])?([\w.-]+)(=\S+)?`)
		for _, m := range re.FindAllStringSubmatch(help, -1) {
			value := m[4] != ""
			flags["--"+m[3]] = value
			if m[2] != "" {
				flags["--no-"+m[3]] = false
			}
			if m[1] != "" {
				flags["-"+m[1]] = value
			}
		}
		return flags
	}
	re := regexp.MustCompile(`(?m)^  -([\w.-]+)(?: (\S+))?$`)
	for _, m := range re.FindAllStringSubmatch(help, -1) {
		value := m[2] != ""
		flags["-"+m[1]] = value
		flags["--"+m[1]] = value
	}
	return flags
}

// toolbox builds the tools once and caches their help.
type toolbox struct {
	tools map[string]*tool
	help  map[string]string
}

func newToolbox(t *testing.T, repo string) *toolbox {
	t.Helper()
	dir := t.TempDir()
	tb := &toolbox{tools: map[string]*tool{}, help: map[string]string{}}
	for _, tl := range []tool{
		{name: "kfw_exporter", pkg: ".", kingpin: true},
		{name: "kfwctl", pkg: "./cmd/kfwctl", kingpin: true},
		{name: "kfwrun", pkg: "./cmd/kfwrun"},
		{name: "kfwtraffic", pkg: "./cmd/kfwtraffic"},
		{name: "kfwlab", pkg: "./cmd/kfwlab"},
	} {
		tl.bin = filepath.Join(dir, tl.name)
		cmd := exec.Command("go", "build", "-o", tl.bin, tl.pkg)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", tl.pkg, err, out)
		}
		tb.tools[tl.name] = &tl
	}
	return tb
}

// helpOf runs a tool's help for a subcommand path (the exit status of -h
// differs between the flag packages; the output is what counts).
func (tb *toolbox) helpOf(tl *tool, path []string) string {
	key := tl.name + " " + strings.Join(path, " ")
	if h, ok := tb.help[key]; ok {
		return h
	}
	flag := "-h"
	if tl.kingpin {
		flag = "--help"
	}
	out, _ := exec.Command(tl.bin, append(slices.Clone(path), flag)...).CombinedOutput()
	tb.help[key] = string(out)
	return string(out)
}

// subcommands lists a tool's commands, as word paths: from --help for
// kingpin, from the help command of the others (kfwrun -h is "kfwrun up"'s).
func (tb *toolbox) subcommands(tl *tool) [][]string {
	var paths [][]string
	if tl.kingpin {
		help := tb.helpOf(tl, nil)
		_, cmds, ok := strings.Cut(help, "\nCommands:\n")
		if !ok {
			return nil
		}
		for _, line := range strings.Split(cmds, "\n") {
			if line == "" || line[0] == ' ' {
				continue
			}
			var path []string
			for _, w := range strings.Fields(line) {
				if strings.HasPrefix(w, "<") || strings.HasPrefix(w, "[") {
					break
				}
				path = append(path, strings.TrimSuffix(w, "*"))
			}
			paths = append(paths, path)
		}
		return paths
	}
	key := tl.name + " help"
	if _, ok := tb.help[key]; !ok {
		out, _ := exec.Command(tl.bin, "help").CombinedOutput()
		tb.help[key] = string(out)
	}
	help := tb.help[key]
	// "  kfwrun [up] [flags] ...", "  kfwtraffic send [flags]"
	re := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(tl.name) + `\s+\[?(\w+)\]?\s`)
	for _, m := range re.FindAllStringSubmatch(help, -1) {
		if m[1] != "flags" {
			paths = append(paths, []string{m[1]})
		}
	}
	return paths
}

// checkToolArgs checks one invocation of a tool: its subcommand exists and
// every flag is one of that subcommand's. It returns the subcommand path
// and the arguments after it.
func (tb *toolbox) checkToolArgs(tl *tool, args []string) (path, rest []string, errs []error) {
	cmds := tb.subcommands(tl)
	if len(cmds) > 0 {
		var words []string
		for _, a := range args {
			if strings.HasPrefix(a, "-") {
				break
			}
			words = append(words, a)
		}
		for _, c := range cmds {
			if len(c) > len(path) && len(c) <= len(words) && slices.Equal(c, words[:len(c)]) {
				path = c
			}
		}
		switch {
		case len(path) == 0 && len(words) > 0:
			return nil, nil, []error{fmt.Errorf("%s: no command %q (it has %v)", tl.name, words[0], cmds)}
		case len(path) == 0 && tl.name == "kfwrun":
			path = []string{"up"} // the default command
		}
		if len(path) <= len(args) && slices.Equal(path, args[:min(len(path), len(args))]) {
			args = args[len(path):]
		}
	}
	flags := helpFlags(tb.helpOf(tl, path), tl.kingpin)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return path, args[i+1:], errs
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if !tl.kingpin {
				return path, args[i:], errs // Go's flag package stops at the first argument
			}
			rest = append(rest, a)
			continue
		}
		name, _, hasValue := strings.Cut(a, "=")
		value, ok := flags[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s %s: no flag %s", tl.name, strings.Join(path, " "), name))
			continue
		}
		if value && !hasValue {
			i++
		}
	}
	return path, rest, errs
}

// toolName recognises a tool in a word: a path to it, or an image name.
func (tb *toolbox) toolName(word string) (*tool, bool) {
	base := filepath.Base(word)
	base, _, _ = strings.Cut(base, ":")
	tl, ok := tb.tools[base]
	return tl, ok
}

// checkCommand checks a simple command that may run some of the tools
// (bin/kfwrun exec kfwctl rules list runs two) and may be make.
func (tb *toolbox) checkCommand(words []string, makeTargets func(dir string, targets []string) []error) []error {
	var errs []error
	for len(words) > 0 && (words[0] == "sudo" || strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-")) {
		words = words[1:]
	}
	if len(words) > 0 && words[0] == "make" {
		return checkMake(tb, words[1:], makeTargets)
	}
	var starts []int
	for i, w := range words {
		if _, ok := tb.toolName(w); ok {
			starts = append(starts, i)
		}
	}
	if len(words) > 0 && words[0] == "docker" {
		// docker run [docker's flags] IMAGE [the program's arguments]: the
		// image is the last word naming a tool; docker build has none.
		if len(words) < 2 || words[1] != "run" || len(starts) == 0 {
			return nil
		}
		starts = starts[len(starts)-1:]
	}
	for k, s := range starts {
		end := len(words)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		tl, _ := tb.toolName(words[s])
		path, rest, e := tb.checkToolArgs(tl, words[s+1:end])
		errs = append(errs, e...)
		if tl.name == "kfwctl" {
			errs = append(errs, checkKfwctlRule(path, rest)...)
		}
	}
	return errs
}

// checkMake checks the targets of a make command line; the value of
// RUN_ARGS holds kfwrun's flags.
func checkMake(tb *toolbox, args []string, makeTargets func(dir string, targets []string) []error) []error {
	var errs []error
	dir := "."
	var targets []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-C" && i+1 < len(args):
			dir = args[i+1]
			i++
		case strings.HasPrefix(a, "RUN_ARGS="):
			_, _, e := tb.checkToolArgs(tb.tools["kfwrun"], append([]string{"up"}, strings.Fields(strings.TrimPrefix(a, "RUN_ARGS="))...))
			errs = append(errs, e...)
		case strings.Contains(a, "=") || strings.HasPrefix(a, "-"):
		default:
			targets = append(targets, a)
		}
	}
	return append(errs, makeTargets(dir, targets)...)
}

// checkKfwctlRule parses the rule-language arguments of kfwctl commands.
func checkKfwctlRule(path, args []string) []error {
	switch strings.Join(path, " ") {
	case "rules add":
		if _, err := abi.ParseRule(args); err != nil {
			return []error{fmt.Errorf("kfwctl rules add %s: %v", strings.Join(args, " "), err)}
		}
	case "rules del":
		if len(args) != 1 {
			return []error{fmt.Errorf("kfwctl rules del %q: want one id", args)}
		}
		if id, err := strconv.Atoi(args[0]); err != nil || id < 1 || id > 65535 {
			return []error{fmt.Errorf("kfwctl rules del %s: not a rule id", args[0])}
		}
	case "policy":
		if len(args) == 2 {
			_, hookOK := abi.ParseHook(args[0])
			_, actionOK := abi.ParseAction(args[1])
			if !hookOK || !actionOK {
				return []error{fmt.Errorf("kfwctl policy %s %s: not a hook and an action", args[0], args[1])}
			}
		}
	}
	return nil
}

// echoedRules returns the text an "echo '...' >/proc/kfw/rules" line
// writes, if the line is one.
func echoedRules(line string) (string, bool) {
	words := shellWords(line)
	if len(words) < 2 || words[0] != "echo" {
		return "", false
	}
	var text []string
	for _, w := range words[1:] {
		if strings.HasPrefix(w, ">") || w == "|" {
			break
		}
		text = append(text, w)
	}
	return strings.Join(text, " "), strings.Contains(line, "/proc/kfw/rules")
}

// metricNames are the names docs/METRICS.md documents.
func metricNames(t *testing.T, repo string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "docs", "METRICS.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("`(kfw_[a-z0-9_]+)`").FindAllStringSubmatch(string(data), -1) {
		names[m[1]] = true
	}
	return names
}

func TestREADME(t *testing.T) {
	repo, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	md := parseMarkdown(t, filepath.Join(repo, "README.md"))
	tb := newToolbox(t, repo)
	spans, spanLines := md.spans()

	t.Run("rules", func(t *testing.T) {
		checked := 0
		for i, b := range md.blocks {
			text := strings.Join(b.lines, "\n")
			switch b.info {
			case "kfw":
				cmds, err := abi.ParseCommands(text)
				if err == nil {
					err = abi.NewRuleTable().Apply(cmds)
				}
				if err != nil {
					t.Errorf("README.md:%d: %v", b.line, err)
				}
				checked += len(cmds)
				// Followed by its canonical form?
				if i+1 < len(md.blocks) && md.blocks[i+1].info == "kfw canonical" {
					var got []string
					for _, c := range cmds {
						got = append(got, c.String())
					}
					want := nonComments(md.blocks[i+1].lines)
					if !slices.Equal(got, want) {
						t.Errorf("README.md:%d: reads back as %q, the README shows %q", b.line, got, want)
					}
				}
			case "kfw canonical":
				for _, line := range nonComments(b.lines) {
					cmds, err := abi.ParseCommands(line)
					if err != nil || len(cmds) != 1 || cmds[0].String() != line {
						t.Errorf("README.md:%d: %q is not canonical (%v): %v", b.line, line, cmds, err)
					}
					checked++
				}
			}
			if strings.HasPrefix(b.info, "sh") {
				for _, line := range b.commandLines() {
					if text, ok := echoedRules(line); ok {
						if _, err := abi.ParseCommands(text); err != nil {
							t.Errorf("README.md:%d: %s: %v", b.line, line, err)
						}
						checked++
					}
				}
			}
		}
		if checked < 10 {
			t.Errorf("only %d rule lines checked: the README's examples were not found", checked)
		}
	})

	t.Run("commands", func(t *testing.T) {
		targets := makeTargetChecker(t, repo)
		commands := 0
		check := func(where string, line string) {
			for _, cmd := range simpleCommands(shellWords(line)) {
				for _, err := range tb.checkCommand(cmd, targets) {
					t.Errorf("%s: %s: %v", where, line, err)
				}
				commands++
			}
		}
		for _, b := range md.blocks {
			if strings.HasPrefix(b.info, "sh") {
				for _, line := range b.commandLines() {
					check(fmt.Sprintf("README.md:%d", b.line), line)
				}
			}
		}
		allFlags := map[string]bool{}
		for _, tl := range tb.tools {
			for _, path := range append(tb.subcommands(tl), nil) {
				for f := range helpFlags(tb.helpOf(tl, path), tl.kingpin) {
					allFlags[f] = true
				}
			}
		}
		singleFlag := regexp.MustCompile(`^--?[a-z][\w.-]*(=\S*)?$`)
		for i, s := range spans {
			where := fmt.Sprintf("README.md:%d", spanLines[i])
			words := shellWords(s)
			switch {
			case singleFlag.MatchString(s):
				if name, _, _ := strings.Cut(s, "="); !allFlags[name] {
					t.Errorf("%s: `%s` is no flag of kfw_exporter, kfwctl, kfwrun, kfwtraffic or kfwlab", where, s)
				}
			case len(words) > 1 && (words[0] == "make" || slices.ContainsFunc(words, func(w string) bool { _, ok := tb.toolName(w); return ok })):
				check(where, s)
			}
		}
		if commands < 20 {
			t.Errorf("only %d commands checked: the README's examples were not found", commands)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		known := metricNames(t, repo)
		data, err := os.ReadFile(filepath.Join(repo, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`(^|[^\w:/.-])(kfw_[a-z0-9_]+)([.\w]?)`)
		seen := 0
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			name, next := m[2], m[3]
			if name == "kfw_exporter" || next != "" { // the program, or a file name
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !known[name] && !known[base] {
				t.Errorf("README.md names %s, which docs/METRICS.md does not document", name)
			}
			seen++
		}
		if seen < 5 {
			t.Errorf("only %d metric names found in the README", seen)
		}
	})

	t.Run("links", func(t *testing.T) {
		own := headingSlugs(md)
		link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
		for i, l := range md.prose {
			for _, m := range link.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				if err := checkLink(repo, file, anchor, own); err != nil {
					t.Errorf("README.md:%d: link %s: %v", i+1, target, err)
				}
			}
		}
	})

	t.Run("lab", func(t *testing.T) {
		if testing.Short() {
			t.Skip("boots a lab VM: not with -short")
		}
		n := 0
		for _, b := range md.blocks {
			if b.info == "sh lab" {
				runLabBlock(t, repo, b)
				n++
			}
		}
		if n == 0 {
			t.Error(`no "sh lab" block in the README`)
		}
	})
}

func nonComments(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// checkLink resolves a relative link of the README; pending ones must still
// be missing.
func checkLink(repo, file, anchor string, own map[string]bool) error {
	if file == "" {
		if !own[anchor] {
			return fmt.Errorf("no heading #%s in the README", anchor)
		}
		return nil
	}
	path := filepath.Join(repo, filepath.FromSlash(file))
	_, err := os.Stat(path)
	if why, ok := pending[file]; ok {
		if err == nil {
			return fmt.Errorf("%s exists now: take it off the README test's pending list (%s)", file, why)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if anchor != "" && strings.HasSuffix(file, ".md") {
		if !headingSlugs(parseMarkdownQuiet(path))[anchor] {
			return fmt.Errorf("no heading #%s in %s", anchor, file)
		}
	}
	return nil
}

// parseMarkdownQuiet parses another Markdown file for its headings.
func parseMarkdownQuiet(path string) markdown {
	data, _ := os.ReadFile(path)
	var md markdown
	inBlock := false
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			md.prose = append(md.prose, l)
		}
	}
	return md
}

// makeTargetChecker returns a function checking make targets against the
// rules of a directory's Makefile: "make -pq" on a target that does not
// exist prints the rule database without running any recipe (not even
// recursive ones, as -n would).
func makeTargetChecker(t *testing.T, repo string) func(dir string, targets []string) []error {
	cache := map[string]map[string]bool{}
	rule := regexp.MustCompile(`(?m)^([a-zA-Z][\w.-]*):(?:[^=]|$)`)
	return func(dir string, targets []string) []error {
		db, ok := cache[dir]
		if !ok {
			cmd := exec.Command("make", "-pq", "-C", filepath.Join(repo, dir), "kfw-readme-test-no-such-target")
			cmd.Env = append(os.Environ(), "MAKEFLAGS=", "MAKELEVEL=")
			out, _ := cmd.Output()
			db = map[string]bool{}
			for _, m := range rule.FindAllStringSubmatch(string(out), -1) {
				db[m[1]] = true
			}
			cache[dir] = db
			if !db["all"] && !db["build"] {
				t.Errorf("make -pq -C %s listed no usable rules", dir)
			}
		}
		var errs []error
		for _, target := range targets {
			why, isPending := pending["make "+target]
			switch {
			case isPending && db[target]:
				errs = append(errs, fmt.Errorf("make %s exists now: take it off the README test's pending list (%s)", target, why))
			case !isPending && !db[target]:
				errs = append(errs, fmt.Errorf("no make target %q in %s", target, dir))
			}
		}
		return errs
	}
}

// runLabBlock runs a README block as a shell script in a lab VM, in a
// directory laid out like the repository after make -C kmod (kmod/kfw.ko).
func runLabBlock(t *testing.T, repo string, b block) {
	t.Helper()
	k, err := lab.FindKernel(repo, lab.Generic)
	if err != nil {
		t.Fatal(err)
	}
	ko, err := os.ReadFile(lab.ModulePath(repo, k.Release))
	if err != nil {
		t.Fatalf("kfw.ko for %s not built: run make modules (%v)", k.Release, err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Join(repo, "build"), "readme-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "kmod"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kmod", "kfw.ko"), ko, 0o644); err != nil {
		t.Fatal(err)
	}
	vm, err := lab.Start(context.Background(), lab.Config{
		Command: []string{"sh", "-ex", "-c", strings.Join(b.lines, "\n")},
		Dir:     dir,
		Timeout: 5 * time.Minute,
		Name:    "readme",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := vm.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("README.md:%d in the VM:\n%s%s", b.line, res.Stdout, res.Stderr)
	if err := res.Err(); err != nil {
		t.Fatalf("README.md:%d: %v", b.line, err)
	}
	os.RemoveAll(res.LogDir)
}
