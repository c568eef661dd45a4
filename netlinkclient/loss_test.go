package netlinkclient

import "testing"

func TestLossTracker(t *testing.T) {
	type step struct {
		instance uint64
		cpu      uint32
		seq      uint64
		mark     bool // a NEXT_SEQ mark rather than an event
		lost     uint64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{1, 0, 0, false, 0}, {1, 0, 1, false, 0}, {1, 0, 2, false, 0}}},
		{"starts at the first number seen", []step{{1, 0, 500, false, 0}, {1, 0, 501, false, 0}}},
		{"gap", []step{{1, 0, 0, false, 0}, {1, 0, 4, false, 3}, {1, 0, 5, false, 0}}},
		{"cpus are independent", []step{{1, 0, 0, false, 0}, {1, 1, 7, false, 0}, {1, 0, 2, false, 1}, {1, 1, 8, false, 0}}},
		{"mark at expected", []step{{1, 0, 0, false, 0}, {1, 0, 1, true, 0}, {1, 0, 1, false, 0}}},
		{"mark ahead", []step{{1, 0, 0, false, 0}, {1, 0, 10, true, 9}, {1, 0, 10, false, 0}}},
		{"mark first", []step{{1, 0, 10, true, 0}, {1, 0, 12, false, 2}}},
		{"mark behind is ignored", []step{{1, 0, 0, false, 0}, {1, 0, 5, false, 4}, {1, 0, 3, true, 0}, {1, 0, 6, false, 0}}},
		{"old number is ignored", []step{{1, 0, 0, false, 0}, {1, 0, 5, false, 4}, {1, 0, 2, false, 0}, {1, 0, 6, false, 0}}},
		{"new instance resets", []step{{1, 0, 90, false, 0}, {2, 0, 0, false, 0}, {2, 0, 1, false, 0}, {3, 0, 7, false, 0}}},
		{"new instance forgets other cpus", []step{{1, 1, 90, false, 0}, {2, 0, 0, false, 0}, {2, 1, 3, false, 0}}},
	}
	for _, tt := range tests {
		var tr lossTracker
		for i, s := range tt.steps {
			c := tr.cpu(s.instance, s.cpu)
			var lost uint64
			if s.mark {
				lost = c.nextSeq(s.seq)
			} else {
				lost = c.event(s.seq)
			}
			if lost != s.lost {
				t.Errorf("%s: step %d (%+v): lost %d, want %d", tt.name, i, s, lost, s.lost)
			}
		}
	}
}

func TestLossTrackerReset(t *testing.T) {
	var tr lossTracker
	tr.cpu(1, 0).event(0)
	tr.reset()
	// After a reset (a new subscription) the count starts over, even for
	// the same instance: what was missed while not subscribed is no loss.
	if lost := tr.cpu(1, 0).event(50); lost != 0 {
		t.Errorf("lost %d after reset", lost)
	}
	if lost := tr.cpu(1, 0).event(52); lost != 1 {
		t.Errorf("lost %d, want 1", lost)
	}
}

func TestLossTrackerOwnsFromStart(t *testing.T) {
	var tr lossTracker
	tr.ownsFromStart(7)
	// Every CPU of instance 7 counts from 0: what was never seen is lost.
	if lost := tr.cpu(7, 1).nextSeq(5); lost != 5 {
		t.Errorf("a first mark of 5 lost %d, want 5", lost)
	}
	if lost := tr.cpu(7, 0).event(3); lost != 3 {
		t.Errorf("a first event 3 lost %d, want 3", lost)
	}
	// Another instance starts at the first number seen.
	if lost := tr.cpu(8, 0).event(4); lost != 0 {
		t.Errorf("instance 8: a first event 4 lost %d, want 0", lost)
	}
	// A new subscription forgets it.
	tr.ownsFromStart(9)
	tr.reset()
	if lost := tr.cpu(9, 0).event(6); lost != 0 {
		t.Errorf("after a reset, a first event 6 lost %d, want 0", lost)
	}
}
