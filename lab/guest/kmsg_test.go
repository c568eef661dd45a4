package guest

import (
	"strings"
	"testing"
	"time"
)

func TestParseKmsgRecord(t *testing.T) {
	for _, c := range []struct {
		in   string
		want LogRecord
	}{
		{"6,339,5140900,-;NET: Registered PF_INET6 protocol family\n",
			LogRecord{Seq: 339, Level: 6, Facility: 0, Time: 5140900 * time.Microsecond, Message: "NET: Registered PF_INET6 protocol family"}},
		{"12,382,4872772,-;hello test\n",
			LogRecord{Seq: 382, Level: 4, Facility: 1, Time: 4872772 * time.Microsecond, Message: "hello test"}},
		// Continuation fields ("caller" and the like) and dictionary lines.
		{"3,1000,99,c,caller=T1;virtio_net virtio0: bad; thing\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio0\n",
			LogRecord{Seq: 1000, Level: 3, Time: 99 * time.Microsecond, Message: "virtio_net virtio0: bad; thing"}},
	} {
		got, err := parseKmsgRecord(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseKmsgRecord(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "no header", "6,x,1,-;m\n", "6,1;m\n"} {
		if _, err := parseKmsgRecord(bad); err == nil {
			t.Errorf("parseKmsgRecord(%q) succeeded", bad)
		}
	}
}

func TestLogProblems(t *testing.T) {
	records := func(msgs ...string) []LogRecord {
		var rs []LogRecord
		for i, m := range msgs {
			rs = append(rs, LogRecord{Seq: uint64(i), Message: m})
		}
		return rs
	}
	clean := records("kfw: loading out-of-tree module taints kernel.", "kfw: registered")
	if err := logProblems(clean); err != nil {
		t.Errorf("logProblems(clean) = %v", err)
	}
	err := logProblems(records("kfw: registered", "------------[ cut here ]------------",
		"WARNING: CPU: 1 PID: 90 at kfw/rules.c:10 kfw_swap+0x10/0x20 [kfw]", "Call Trace:", " <TASK>"))
	if err == nil {
		t.Fatal("logProblems missed a WARNING")
	}
	for _, want := range []string{"WARNING: CPU: 1 PID: 90", "Call Trace:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("logProblems error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "kfw: registered") {
		t.Errorf("logProblems error shows the log before the report: %v", err)
	}
}
