package guestbench

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/kfwlabs/kfw_exporter/bench/internal/netdm"
	"github.com/kfwlabs/kfw_exporter/bench/internal/results"
)

// startDropMonitor puts NET_DM in packet mode with a listener counting
// alerts on cpu (-1: any); the returned function stops both.
func startDropMonitor(p Params, cpu int) (stop func(), err error) {
	m, err := netdm.Dial()
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.ConfigurePacketMode(0, p.DropMonitorQLen); err != nil {
		return nil, err
	}
	l, err := netdm.Listen(p.ReadBuffer, "")
	if err != nil {
		return nil, err
	}
	var quit atomic.Bool
	done := make(chan error, 1)
	go func() { done <- onCPU(cpu, func() error { return l.Run(&quit) }) }()
	if err := m.Start(); err != nil {
		quit.Store(true)
		<-done
		return nil, err
	}
	return func() {
		if m, err := netdm.Dial(); err == nil {
			_ = m.Stop()
			m.Close()
		}
		quit.Store(true)
		<-done
	}, nil
}

// dropMonitorSteps floods at the rates the exporter steps used (up to the
// second lossy one) with NET_DM in packet mode and a listener with the
// same receive buffer and placement, and records what it delivered. kfw's drop rule
// drops the packets; with no listener on kfw's group, kfw generates no
// events meanwhile.
func (e *env) dropMonitorSteps(p Params, spec SeriesSpec, res *results.EventSeries) error {
	m, err := netdm.Dial()
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.ConfigurePacketMode(0, p.DropMonitorQLen); err != nil {
		return err
	}
	l, err := netdm.Listen(p.ReadBuffer, "NETFILTER_DROP")
	if err != nil {
		return err
	}
	var quit atomic.Bool
	done := make(chan error, 1)
	go func() { done <- onCPU(spec.consumerCPU(), func() error { return l.Run(&quit) }) }()
	defer func() {
		quit.Store(true)
		if err := <-done; err != nil {
			e.logf("NET_DM listener: %v", err)
		}
	}()
	if err := m.Start(); err != nil {
		return err
	}
	defer func() {
		if err := m.Stop(); err != nil {
			e.logf("stopping NET_DM: %v", err)
		}
	}()

	lossyRun := 0
	for _, rate := range dropMonitorRates(res.Steps) {
		st := results.DropMonitorStep{Offered: rate}
		q0, err := m.QueueDropped()
		if err != nil {
			return err
		}
		drops0, err := dropRulePackets()
		if err != nil {
			return err
		}
		a0, m0, o0 := l.Alerts.Load(), l.Matching.Load(), l.Overruns.Load()
		snd, err := e.openSenders(results.PathDrop, spec.Producers)
		if err != nil {
			return err
		}
		c, err := snd.run(rate, p.EventStep)
		snd.close()
		if err != nil {
			return err
		}
		drops, q1, err := waitAlerts(m, l, drops0, m0, q0)
		if err != nil {
			return err
		}
		st.Sent, st.Seconds, st.Drops, st.QueueDropped = c.Sent, c.Time.Seconds(), drops, q1-q0
		st.Alerts, st.Matching, st.Overruns = l.Alerts.Load()-a0, l.Matching.Load()-m0, l.Overruns.Load()-o0
		res.DropMonitor = append(res.DropMonitor, st)
		e.logf("  NET_DM: offered %7.0f/s dropped %7.0f/s alerts %8d (%d NETFILTER_DROP), queue refused %d, overruns %d",
			rate, float64(st.Drops)/st.Seconds, st.Alerts, st.Matching, st.QueueDropped, st.Overruns)
		if st.Matching < st.Drops {
			if lossyRun++; lossyRun == 2 {
				break
			}
		} else {
			lossyRun = 0
		}
	}
	return nil
}

// waitAlerts waits until NET_DM has accounted for every drop since the
// rule had counted drops0, the listener had matched m0 and the queues had
// refused q0 (each drop received or refused), or until no alert arrived
// for a second: NET_DM's work runs on the producer's vCPU and may be far
// behind when the flood stops, and so may the last packets of the flood
// (softirqs deferred to ksoftirqd). It returns the drops since drops0 and
// the queues' refusals since load.
func waitAlerts(m *netdm.Monitor, l *netdm.Listener, drops0, m0, q0 uint64) (drops, queue uint64, err error) {
	last, idle := l.Alerts.Load(), 0
	for range 75 { // 15 s
		time.Sleep(200 * time.Millisecond)
		d, err := dropRulePackets()
		if err != nil {
			return 0, 0, err
		}
		q, err := m.QueueDropped()
		if err != nil {
			return 0, 0, err
		}
		drops, queue = d-drops0, q
		if l.Matching.Load()-m0+q-q0 >= drops {
			return drops, queue, nil
		}
		if a := l.Alerts.Load(); a != last {
			last, idle = a, 0
		} else if idle++; idle == 5 {
			return drops, queue, nil
		}
	}
	return drops, queue, nil
}

// dropMonitorRates are the offered rates of the exporter's steps, in
// ascending order.
func dropMonitorRates(steps []results.EventStep) []float64 {
	var rates []float64
	for _, st := range steps {
		rates = append(rates, st.Offered)
	}
	slices.Sort(rates)
	return slices.Compact(rates)
}
