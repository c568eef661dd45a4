package netlinkclient

// lossTracker implements docs/ABI.md "Loss accounting": for the current
// module instance, the next sequence number expected from each CPU.
//
// A CPU's count starts at the first sequence number seen for it (an event
// or a NEXT_SEQ mark), so events generated for other listeners before this
// one subscribed are never counted as lost. A new instance forgets every
// CPU: the module was reloaded, which is not a loss.
type lossTracker struct {
	instance uint64
	started  bool
	cpus     map[uint32]*cpuSeq
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
		t.reset()
		t.instance, t.started = instance, true
	}
	c := t.cpus[cpu]
	if c == nil {
		if t.cpus == nil {
			t.cpus = make(map[uint32]*cpuSeq)
		}
		c = &cpuSeq{}
		t.cpus[cpu] = c
	}
	return c
}

// reset forgets everything, as after a fresh subscription: whatever was
// generated while this listener was not a member is not its loss.
func (t *lossTracker) reset() {
	t.started = false
	clear(t.cpus)
}

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
