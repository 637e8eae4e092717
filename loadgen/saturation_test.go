package loadgen

import (
	"strings"
	"testing"
	"time"
)

func TestSaturationMonitor(t *testing.T) {
	var p Progress
	cpu := time.Duration(0)
	m := &SaturationMonitor{p: &p, procs: 2, cpu: func() (time.Duration, bool) { return cpu, true }}
	t0 := time.Unix(1000, 0)
	m.last = t0

	// 1,000 sends, one late, half the CPU: fine.
	p.Paced.Store(1000)
	p.Late.Store(1)
	cpu += time.Second
	if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.CPU != 0.5 || s.Paced != 1000 {
		t.Errorf("healthy window: %+v", s)
	}
	// Many sends held for an in-flight slot: the server's doing, not the client's.
	p.Paced.Store(1000)
	p.CapWaits.Store(900)
	cpu += time.Second
	if s := m.Tick(t0.Add(2 * time.Second)); s.Saturated {
		t.Errorf("cap waits flagged as client saturation: %+v", s)
	}
	// 3% of sends late: behind schedule.
	p.Paced.Store(1000)
	p.Late.Store(30)
	cpu += time.Second
	s := m.Tick(t0.Add(3 * time.Second))
	if !s.Saturated || !strings.Contains(s.Reason, "30 of 1000 sends more than 5ms behind schedule") {
		t.Errorf("late window: %+v", s)
	}
	// Both CPUs busy (closed loop: no paced sends).
	cpu += 2 * time.Second
	s = m.Tick(t0.Add(4 * time.Second))
	if !s.Saturated || !strings.Contains(s.Reason, "process CPU at 100% of 2 cores") {
		t.Errorf("CPU window: %+v", s)
	}
	if sat, windows, worst := m.Summary(); sat != 2 || windows != 4 || worst == "" {
		t.Errorf("summary %d of %d, worst %q", sat, windows, worst)
	}
	// The counters were taken: the next window starts from zero.
	if p.Paced.Load() != 0 || p.Late.Load() != 0 || p.CapWaits.Load() != 0 {
		t.Error("counters not reset")
	}
}
