package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// describeMachine reads what BENCHMARKS.md says about the host.
func describeMachine(ctx context.Context) results.Machine {
	m := results.Machine{
		CPUs:       runtime.NumCPU(),
		CPUModel:   cpuinfoField("model name"),
		HostKernel: readLine("/proc/sys/kernel/osrelease"),
		GoVersion:  runtime.Version(),
		OS:         osRelease(),
		Tools:      map[string]string{},
	}
	m.MemoryBytes, _ = meminfoTotal()
	m.Qemu = firstLine(ctx, "qemu-system-x86_64", "--version")
	for tool, args := range map[string][]string{
		"nft":           {"nft", "--version"},
		"iptables-nft":  {"iptables-nft", "--version"},
		"node_exporter": {"prometheus-node-exporter", "--version"},
	} {
		m.Tools[tool] = firstLine(ctx, args[0], args[1:]...)
	}
	m.LoadStart = loadAvg()
	return m
}

func readLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// firstLine is the first line a command prints (stdout and stderr), or
// "unavailable: why".
func firstLine(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unavailable: " + err.Error()
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func cpuinfoField(key string) string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func meminfoTotal() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "unknown"
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute load averages.
func loadAvg() [3]float64 {
	var l [3]float64
	f := strings.Fields(readLine("/proc/loadavg"))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// waitQuiet waits up to limit for the 1-minute load average to stay
// below threshold, checking every 10 s; it reports how long it waited
// and whether the machine got quiet.
func waitQuiet(ctx context.Context, limit time.Duration, threshold float64, logf func(string, ...any)) (time.Duration, bool) {
	start := time.Now()
	for {
		load := loadAvg()[0]
		if load < threshold {
			return time.Since(start), true
		}
		if time.Since(start) >= limit {
			logf("load average %.2f still above %.2f after %s: running anyway", load, threshold, limit)
			return time.Since(start), false
		}
		logf("load average %.2f, waiting for it to fall below %.2f (up to %s)", load, threshold, limit-time.Since(start).Round(time.Second))
		select {
		case <-ctx.Done():
			return time.Since(start), false
		case <-time.After(10 * time.Second):
		}
	}
}
