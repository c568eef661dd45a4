package lab

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kfwlabs/kfw_exporter/lab/internal/kernlog"
)

// tailLineCount is how many last lines of the console and of the payload's
// output a failure message shows.
const tailLineCount = 30

// terminalEscape matches the terminal control sequences the firmware
// prints (clear screen, wrap mode), dropped from the lines of messages.
var terminalEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[@-~])`)

// payloadStartMark is what the guest init prints when it starts the payload.
const payloadStartMark = "kfwlab: payload start"

// consoleLog records the serial console: all of it into a file (and an
// optional live writer), its last lines in memory for failure messages, and
// when the payload started.
type consoleLog struct {
	file *os.File
	live io.Writer

	// wedged receives the first line that says the guest kernel is stuck
	// (kernlog.Wedged), once.
	wedged chan string

	mu        sync.Mutex
	last      []string // the last tailLineCount complete lines
	partial   []byte   // the line being received
	started   time.Time
	sawWedged bool
}

func newConsoleLog(path string, live io.Writer) (*consoleLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &consoleLog{file: f, live: live, wedged: make(chan string, 1)}, nil
}

// copyFrom records r until EOF (qemu exited). Write errors of the file or
// of the live writer do not stop it: qemu must never block on its console.
func (c *consoleLog) copyFrom(r io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.record(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (c *consoleLog) record(p []byte) {
	_, _ = c.file.Write(p)
	if c.live != nil {
		_, _ = c.live.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			return
		}
		line := terminalEscape.ReplaceAllString(strings.TrimRight(string(c.partial[:i]), "\r"), "")
		c.partial = c.partial[i+1:]
		if c.started.IsZero() && strings.Contains(line, payloadStartMark) {
			c.started = time.Now()
		}
		if !c.sawWedged && kernlog.Wedged(line) {
			c.sawWedged = true
			c.wedged <- strings.TrimSpace(line)
		}
		c.last = append(c.last, line)
		if len(c.last) > tailLineCount {
			c.last = c.last[len(c.last)-tailLineCount:]
		}
	}
}

// tailLines returns the last lines received, the unfinished one included.
func (c *consoleLog) tailLines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := append([]string(nil), c.last...)
	if len(c.partial) > 0 {
		lines = append(lines, strings.TrimRight(string(c.partial), "\r"))
	}
	return lines
}

// payloadStart returns when the guest reported the payload's start.
func (c *consoleLog) payloadStart() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started, !c.started.IsZero()
}

func (c *consoleLog) close() { _ = c.file.Close() }

// tail streams a file the guest writes over 9p to a writer while the VM
// runs. The 9p share is uncached, so the guest's writes reach the host file
// at once; polling it is simpler than another virtio channel.
type tail struct {
	quit, done chan struct{}
}

const tailPoll = 100 * time.Millisecond

func startTail(path string, w io.Writer) *tail {
	t := &tail{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(t.done)
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		copyNew := func() {
			if f == nil {
				f, _ = os.Open(path) // absent until the payload starts
			}
			if f != nil {
				_, _ = io.Copy(w, f)
			}
		}
		ticker := time.NewTicker(tailPoll)
		defer ticker.Stop()
		for {
			copyNew()
			select {
			case <-t.quit:
				copyNew()
				return
			case <-ticker.C:
			}
		}
	}()
	return t
}

// stop copies what is left and waits for the tail to end.
func (t *tail) stop() {
	close(t.quit)
	<-t.done
}
