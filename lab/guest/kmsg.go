package guest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kfwlabs/kfw_exporter/lab/internal/kernlog"
)

// LogRecord is one record of the kernel log (/dev/kmsg).
type LogRecord struct {
	Seq      uint64        // sequence number, increasing
	Level    int           // 0 (KERN_EMERG) to 7 (KERN_DEBUG)
	Facility int           // 0 for the kernel, 1 for user space writes
	Time     time.Duration // since boot
	Message  string
}

// LogMark is a position in the kernel log (see MarkLog).
type LogMark struct{ next uint64 }

// MarkLog returns the current end of the kernel log, so that LogSince and
// CheckLogSince consider only what is logged afterwards.
func MarkLog() (LogMark, error) {
	records, err := readKmsg()
	if err != nil {
		return LogMark{}, err
	}
	if len(records) == 0 {
		return LogMark{}, nil
	}
	return LogMark{next: records[len(records)-1].Seq + 1}, nil
}

// LogSince returns the kernel log records logged after m (those the ring
// buffer still holds).
func LogSince(m LogMark) ([]LogRecord, error) {
	records, err := readKmsg()
	if err != nil {
		return nil, err
	}
	for i, r := range records {
		if r.Seq >= m.next {
			return records[i:], nil
		}
	}
	return nil, nil
}

// CheckLogSince fails when the kernel logged a problem after m: a warning,
// BUG, oops, sanitizer, lockdep, RCU stall or hung task report. The error
// shows the report.
func CheckLogSince(m LogMark) error {
	records, err := LogSince(m)
	if err != nil {
		return err
	}
	return logProblems(records)
}

// logProblems reports the problems in records, with the log from the first
// report on: the call trace follows it.
func logProblems(records []LogRecord) error {
	lines := make([]string, len(records))
	for i, r := range records {
		lines[i] = r.Message
	}
	problems := kernlog.Problems(strings.Join(lines, "\n"))
	if len(problems) == 0 {
		return nil
	}
	first := 0
	for first < len(lines) && !strings.Contains(lines[first], problems[0]) {
		first++
	}
	report := lines[first:min(len(lines), first+40)]
	return fmt.Errorf("kernel log reports problems:\n  %s\nlog from the first report:\n  %s",
		strings.Join(problems, "\n  "), strings.Join(report, "\n  "))
}

// Kmsg writes a line to the kernel log, to relate test steps to kernel
// messages in dmesg.
func Kmsg(format string, args ...any) error {
	fd, err := unix.Open("/dev/kmsg", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer unix.Close(fd)
	// Without a newline the kernel would hold the line back as the start
	// of a continued record.
	line := strings.TrimSuffix(fmt.Sprintf(format, args...), "\n") + "\n"
	if _, err := unix.Write(fd, []byte(line)); err != nil {
		return fmt.Errorf("write /dev/kmsg: %w", err)
	}
	return nil
}

// readKmsg returns every record the kernel log buffer holds.
func readKmsg() ([]LogRecord, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer unix.Close(fd)
	var records []LogRecord
	buf := make([]byte, 16<<10) // a read returns one record, at most ~8 KiB
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return records, nil
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.EINTR):
			continue // EPIPE: records overwritten while reading; go on
		case err != nil:
			return nil, fmt.Errorf("read /dev/kmsg: %w", err)
		}
		r, err := parseKmsgRecord(string(buf[:n]))
		if err != nil {
			return nil, err
		}
		records = append(records, r)
	}
}

// parseKmsgRecord parses one /dev/kmsg record:
// "PRIO,SEQ,USEC,FLAGS[,...];MESSAGE\n" followed by " KEY=VALUE" lines.
func parseKmsgRecord(s string) (LogRecord, error) {
	header, rest, ok := strings.Cut(s, ";")
	fields := strings.Split(header, ",")
	if !ok || len(fields) < 4 {
		return LogRecord{}, fmt.Errorf("bad /dev/kmsg record %q", s)
	}
	prio, err1 := strconv.Atoi(fields[0])
	seq, err2 := strconv.ParseUint(fields[1], 10, 64)
	usec, err3 := strconv.ParseInt(fields[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return LogRecord{}, fmt.Errorf("bad /dev/kmsg record %q: %w", s, err)
	}
	message, _, _ := strings.Cut(rest, "\n")
	return LogRecord{
		Seq:      seq,
		Level:    prio & 7,
		Facility: prio >> 3,
		Time:     time.Duration(usec) * time.Microsecond,
		Message:  message,
	}, nil
}
