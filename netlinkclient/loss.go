package netlinkclient

// lossTracker implements docs/ABI.md "Loss accounting": for the current
// module instance, the next sequence number expected from each CPU.
//
// A CPU's count starts at the first sequence number seen for it (an event
// or a NEXT_SEQ mark), so events generated for other listeners before this
// one subscribed are never counted as lost, unless the listener has been
// a member since before the instance's first event (ownsFromStart): then
// every CPU counts from 0, "0 after a load", and a CPU whose first batches
// overflowed the socket shows that loss too. A new instance forgets every
// CPU: the module was reloaded, which is not a loss.
type lossTracker struct {
	instance uint64
	started  bool
	cpus     map[uint32]*cpuSeq
	// whole is an instance whose every sequence number is this listener's
	// to account for; 0 for none.
	whole uint64
}

// cpuSeq is the sequence state of one CPU of one instance.
type cpuSeq struct {
	expected uint64
	started  bool
}

// cpu returns the state of cpu for a batch of instance, resetting every CPU
// when the instance changed.
func (t *lossTracker) cpu(instance uint64, cpu uint32) *cpuSeq {
	if !t.started || instance != t.instance {
		clear(t.cpus)
		t.instance, t.started = instance, true
	}
	c := t.cpus[cpu]
	if c == nil {
		if t.cpus == nil {
			t.cpus = make(map[uint32]*cpuSeq)
		}
		// Expecting 0 from the start makes the first number seen count.
		c = &cpuSeq{started: instance == t.whole && t.whole != 0}
		t.cpus[cpu] = c
	}
	return c
}

// reset forgets everything, as after a fresh subscription: whatever was
// generated while this listener was not a member is not its loss.
func (t *lossTracker) reset() {
	t.started = false
	t.whole = 0
	clear(t.cpus)
}

// ownsFromStart records that this listener has been a member since before
// instance generated its first event, so that every sequence number of
// instance, from 0 on each CPU, was sent to it or lost on its way.
func (t *lossTracker) ownsFromStart(instance uint64) { t.whole = instance }

// event accounts for an event with sequence number s and returns how many
// sequence numbers were skipped before it. Within a CPU the kernel sends
// events in order; a number below the expected one (which a correct kernel
// never sends) is not counted and does not move the expectation back.
func (c *cpuSeq) event(s uint64) (lost uint64) {
	switch {
	case !c.started:
		c.started = true
	case s < c.expected:
		return 0
	default:
		lost = s - c.expected
	}
	c.expected = s + 1
	return lost
}

// nextSeq accounts for a KFW_A_NEXT_SEQ mark n: every sequence number below
// n was either received or is lost now.
func (c *cpuSeq) nextSeq(n uint64) (lost uint64) {
	switch {
	case !c.started:
		c.started = true
	case n <= c.expected:
		return 0
	default:
		lost = n - c.expected
	}
	c.expected = n
	return lost
}
