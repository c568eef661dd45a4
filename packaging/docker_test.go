package packaging

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func parseDockerfile(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(string(mustRead(t, path)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// shellWords splits a command line as a POSIX shell would for plain words
// and quotes (no expansions).
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
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

// goBuild is what matters of a go build command line.
type goBuild struct {
	env      []string // KEY=VALUE before go
	flags    []string // other than -ldflags and -o
	ldflags  []string // other than -X
	xVars    []string // the variables -X sets (package.Name), sorted
	output   string   // base name of -o
	packages []string
}

func parseGoBuild(t *testing.T, line string) goBuild {
	t.Helper()
	words := shellWords(line)
	var b goBuild
	i := 0
	for ; i < len(words) && strings.Contains(words[i], "=") && !strings.HasPrefix(words[i], "-"); i++ {
		b.env = append(b.env, words[i])
	}
	if i+1 >= len(words) || filepath.Base(words[i]) != "go" || words[i+1] != "build" {
		t.Fatalf("not a go build command: %q", line)
	}
	for i += 2; i < len(words); i++ {
		switch w := words[i]; {
		case w == "-ldflags" && i+1 < len(words):
			i++
			ld := strings.Fields(words[i])
			for j := 0; j < len(ld); j++ {
				if ld[j] == "-X" && j+1 < len(ld) {
					j++
					name, _, _ := strings.Cut(ld[j], "=")
					b.xVars = append(b.xVars, name)
				} else {
					b.ldflags = append(b.ldflags, ld[j])
				}
			}
		case w == "-o" && i+1 < len(words):
			i++
			b.output = filepath.Base(words[i])
		case strings.HasPrefix(w, "-"):
			b.flags = append(b.flags, w)
		default:
			b.packages = append(b.packages, w)
		}
	}
	slices.Sort(b.xVars)
	return b
}

// makefileExporterBuild is the go build command of make build for the
// exporter, as make prints it.
func makefileExporterBuild(t *testing.T) string {
	t.Helper()
	out := makeIn(t, repoRoot(t), "-n", "build")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "go build") && strings.Contains(line, "-o bin/kfw_exporter ") {
			return line
		}
	}
	t.Fatalf("make -n build prints no go build of bin/kfw_exporter:\n%s", out)
	return ""
}

// TestDockerfileMatchesMakefile keeps the image's build in step with make
// build: same package, environment, flags and -X variables, a Go image of
// go.mod's Go version, and the version read from kmod/dkms.conf the same
// way. (There is no Docker engine here to build the image.)
func TestDockerfileMatchesMakefile(t *testing.T) {
	repo := repoRoot(t)
	instrs := parseDockerfile(t, filepath.Join(repo, "Dockerfile"))
	var froms, runs []string
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "RUN":
			runs = append(runs, in.args)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("FROM %q: want a build stage and a final stage", froms)
	}

	// The Go image: go.mod's version, major.minor.
	goMod := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindSubmatch(mustRead(t, filepath.Join(repo, "go.mod")))
	if goMod == nil {
		t.Fatal("no go directive in go.mod")
	}
	builder := regexp.MustCompile(`^golang:(\d+\.\d+)(\.\d+)?(-\S+)? AS (\S+)$`).FindStringSubmatch(froms[0])
	if builder == nil || builder[1] != string(goMod[1]) {
		t.Errorf("build stage FROM %q, want golang:%s (go.mod) AS <name>", froms[0], goMod[1])
	}

	var dockerBuild string
	for _, r := range runs {
		for _, part := range strings.Split(r, "&&") {
			if strings.Contains(part, "go build") {
				dockerBuild = strings.TrimSpace(part)
			}
		}
	}
	if dockerBuild == "" {
		t.Fatal("no go build in the Dockerfile")
	}
	docker, mk := parseGoBuild(t, dockerBuild), parseGoBuild(t, makefileExporterBuild(t))
	for _, c := range []struct {
		what         string
		docker, make []string
	}{
		{"environment", docker.env, mk.env},
		{"go build flags", docker.flags, mk.flags},
		{"linker flags", docker.ldflags, mk.ldflags},
		{"-X variables", docker.xVars, mk.xVars},
		{"packages", docker.packages, mk.packages},
		{"output name", []string{docker.output}, []string{mk.output}},
	} {
		if !slices.Equal(c.docker, c.make) {
			t.Errorf("%s: Dockerfile %q, Makefile %q", c.what, c.docker, c.make)
		}
	}
	if !slices.Contains(docker.env, "CGO_ENABLED=0") {
		t.Errorf("the image's binary must be static: CGO_ENABLED=0 not in %q", docker.env)
	}

	// The version comes from kmod/dkms.conf with the Makefile's expression.
	sedExpr := regexp.MustCompile(`sed -n '(s/\^PACKAGE_VERSION[^']*)' kmod/dkms.conf`)
	mkSed := sedExpr.FindStringSubmatch(strings.ReplaceAll(string(mustRead(t, filepath.Join(repo, "Makefile"))), "$$", "$"))
	dockerSed := sedExpr.FindStringSubmatch(strings.Join(runs, "\n"))
	if mkSed == nil || dockerSed == nil || mkSed[1] != dockerSed[1] {
		t.Errorf("version expression: Makefile %q, Dockerfile %q", mkSed, dockerSed)
	}
}

// TestDockerImage checks the final stage: a minimal base, the binary from
// the build stage, a numeric non-root user, the exporter's port.
func TestDockerImage(t *testing.T) {
	repo := repoRoot(t)
	instrs := parseDockerfile(t, filepath.Join(repo, "Dockerfile"))
	last := 0
	for i, in := range instrs {
		if in.cmd == "FROM" {
			last = i
		}
	}
	final := map[string][]string{}
	for _, in := range instrs[last:] {
		final[in.cmd] = append(final[in.cmd], in.args)
	}
	if base := final["FROM"][0]; base != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(base) {
		t.Errorf("final stage FROM %q, want scratch or distroless static:nonroot", base)
	}
	if got := final["USER"]; len(got) != 1 || got[0] != dockerUser {
		t.Errorf("USER %q, want %q (numeric, so that runAsNonRoot can check it)", got, dockerUser)
	}
	if got := final["ENTRYPOINT"]; len(got) != 1 || got[0] != `["/bin/kfw_exporter"]` {
		t.Errorf("ENTRYPOINT %q", got)
	}
	if got, port := final["EXPOSE"], exporterPort(t); len(got) != 1 || got[0] != port {
		t.Errorf("EXPOSE %q, want the exporter's default port %s", got, port)
	}
	if got := final["COPY"]; len(got) != 1 || !strings.HasPrefix(got[0], "--from=") {
		t.Errorf("final stage COPY %q: want only the binary from the build stage", got)
	}
	// The capability a non-root process needs comes from the binary.
	if !strings.Contains(string(mustRead(t, filepath.Join(repo, "Dockerfile"))), "setcap cap_net_admin+ep /out/kfw_exporter") {
		t.Error("the binary gets no cap_net_admin file capability")
	}

	var ignore []string
	for _, line := range strings.Split(string(mustRead(t, filepath.Join(repo, ".dockerignore"))), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignore = append(ignore, line)
		}
	}
	for _, want := range []string{".git", "bin", "build"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	for _, needed := range []string{"go.mod", "go.sum", "main.go", "kmod/dkms.conf", "collector"} {
		for _, pattern := range ignore {
			if ok, _ := filepath.Match(pattern, needed); ok || pattern == strings.Split(needed, "/")[0] {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pattern, needed)
			}
		}
	}
}

// dockerUser is the distroless nonroot user, numerically.
const dockerUser = "65532:65532"

// exporterPort is the port of kfw_exporter's default --web.listen-address,
// from its --help.
func exporterPort(t *testing.T) string {
	t.Helper()
	out, _ := exec.Command(exporterBin, "--help").CombinedOutput()
	m := regexp.MustCompile(`--web\.listen-address=:(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no default --web.listen-address in kfw_exporter --help:\n%s", out)
	}
	return string(m[1])
}
