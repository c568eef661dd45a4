package packaging

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unit is a parsed systemd unit file: section -> key -> values (a key may
// repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not KEY=VALUE in a section: %q", path, n, line)
			}
			u[section][key] = append(u[section][key], value)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the single value of a key, failing if it is absent or set
// more than once.
func (u unit) get(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s: %q, want exactly one value", section, key, v)
		return ""
	}
	return v[0]
}

// words returns the space-separated words of every value of a key.
func (u unit) words(section, key string) []string {
	var w []string
	for _, v := range u[section][key] {
		w = append(w, strings.Fields(v)...)
	}
	return w
}

func TestExporterUnit(t *testing.T) {
	u := parseUnit(t, "kfw_exporter.service.in")
	for key, want := range map[string]string{
		"User":                    "kfw-exporter",
		"Group":                   "kfw-exporter",
		"ExecStart":               "@BINDIR@/kfw_exporter $ARGS",
		"EnvironmentFile":         "-@SYSCONFDIR@/default/kfw_exporter",
		"AmbientCapabilities":     "CAP_NET_ADMIN",
		"CapabilityBoundingSet":   "CAP_NET_ADMIN",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelTunables":   "yes",
		"RestrictNamespaces":      "yes",
		"SystemCallArchitectures": "native",
		"Restart":                 "on-failure",
	} {
		if got := u.get(t, "Service", key); got != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	families := u.words("Service", "RestrictAddressFamilies")
	slices.Sort(families)
	if want := []string{"AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"}; !slices.Equal(families, want) {
		t.Errorf("RestrictAddressFamilies %v, want %v", families, want)
	}
	// Each of these would break the exporter: events reach the initial
	// network namespace only, capabilities must hold in the initial user
	// namespace, /proc/kfw is not a process directory, and the user must
	// be the sysusers.d one.
	for _, key := range []string{"PrivateNetwork", "PrivateUsers", "ProcSubset", "DynamicUser", "NetworkNamespacePath"} {
		if v, ok := u["Service"][key]; ok {
			t.Errorf("[Service] %s=%v must not be set", key, v)
		}
	}
	if got := u.get(t, "Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("WantedBy=%q", got)
	}
	// The user the unit runs as is the one sysusers.d creates.
	data, err := os.ReadFile("kfw_exporter.sysusers")
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "u" {
			users = append(users, f[1])
		}
	}
	if !slices.Equal(users, []string{u.get(t, "Service", "User")}) {
		t.Errorf("sysusers.d creates %v, the unit runs as %s", users, u.get(t, "Service", "User"))
	}
}

func TestRulesUnit(t *testing.T) {
	u := parseUnit(t, "kfw-rules.service.in")
	for _, c := range []struct{ section, key, want string }{
		{"Unit", "DefaultDependencies", "no"},
		{"Unit", "ConditionPathExists", "@SYSCONFDIR@/kfw/rules"},
		{"Service", "Type", "oneshot"},
		{"Service", "RemainAfterExit", "yes"},
		{"Service", "ExecStartPre", "/sbin/modprobe kfw"},
		{"Service", "ExecStart", "@BINDIR@/kfwctl rules restore @SYSCONFDIR@/kfw/rules"},
		{"Service", "ExecReload", "@BINDIR@/kfwctl rules restore @SYSCONFDIR@/kfw/rules"},
		{"Install", "WantedBy", "sysinit.target"},
	} {
		if got := u.get(t, c.section, c.key); got != c.want {
			t.Errorf("[%s] %s=%q, want %q", c.section, c.key, got, c.want)
		}
	}
	// After the module can be loaded, before any network configuration.
	if after := u.words("Unit", "After"); !slices.Contains(after, "systemd-modules-load.service") || !slices.Contains(after, "local-fs.target") {
		t.Errorf("After=%v lacks systemd-modules-load.service or local-fs.target", after)
	}
	if before := u.words("Unit", "Before"); !slices.Contains(before, "network-pre.target") {
		t.Errorf("Before=%v lacks network-pre.target", before)
	}
	if wants := u.words("Unit", "Wants"); !slices.Contains(wants, "network-pre.target") {
		t.Errorf("Wants=%v lacks network-pre.target (it is a passive target)", wants)
	}
	if caps := u.words("Service", "CapabilityBoundingSet"); !slices.Equal(caps, []string{"CAP_NET_ADMIN", "CAP_SYS_MODULE"}) {
		t.Errorf("CapabilityBoundingSet=%v", caps)
	}
}

func TestSmallFiles(t *testing.T) {
	data, err := os.ReadFile("kfw.modules-load")
	if err != nil {
		t.Fatal(err)
	}
	var modules []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			modules = append(modules, line)
		}
	}
	if !slices.Equal(modules, []string{"kfw"}) {
		t.Errorf("modules-load.d entry loads %v, want [kfw]", modules)
	}
	data, err = os.ReadFile("kfw_exporter.default")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nARGS=\"\"\n") {
		t.Errorf("kfw_exporter.default does not set ARGS=\"\" (the unit passes $ARGS):\n%s", data)
	}
	units, _ := filepath.Glob("*.service.in")
	if len(units) != 2 {
		t.Errorf("unit templates %v: the Makefile's UNITS installs two", units)
	}
}
