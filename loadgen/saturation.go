package loadgen

import (
	"fmt"
	"runtime"
	"time"
)

// LateSend is how late the open-loop pacer may release a request before
// the send counts as late: far above the pacer's normal sub-millisecond
// lag, far below any latency a user would read as the server's.
const LateSend = 5 * time.Millisecond

// Saturation thresholds for one monitoring window.
const (
	// SaturatedLateShare: more than this share of a window's sends late
	// (and at least two) means the client fell behind its schedule.
	SaturatedLateShare = 0.01
	// SaturatedCPU: the process using this share of the CPUs it may run
	// on (GOMAXPROCS) leaves no room to stamp times promptly.
	SaturatedCPU = 0.95
)

// Saturation is the client's state over one monitoring window.
type Saturation struct {
	Window    time.Duration
	Paced     int64   // open-loop sends released
	Late      int64   // of them, released more than LateSend late
	CapWaits  int64   // of them, held for an in-flight slot (the server's doing)
	CPU       float64 // process CPU time / (window × GOMAXPROCS); -1 unknown
	Saturated bool
	Reason    string // why, when Saturated
}

// SaturationMonitor watches a run for a client that, rather than the
// server, limits what is measured: an open-loop pacer that cannot keep
// its schedule, or a process that uses all the CPU it may. Call Tick
// about once a second from one goroutine.
type SaturationMonitor struct {
	p       *Progress
	cpu     func() (time.Duration, bool)
	procs   int
	last    time.Time
	lastCPU time.Duration

	windows, saturated int
	worst              Saturation
}

// NewSaturationMonitor starts monitoring p from now.
func NewSaturationMonitor(p *Progress) *SaturationMonitor {
	m := &SaturationMonitor{p: p, cpu: processCPU, procs: runtime.GOMAXPROCS(0), last: time.Now()}
	m.lastCPU, _ = m.cpu()
	return m
}

// Tick closes the window that began at the previous Tick and returns it.
func (m *SaturationMonitor) Tick(now time.Time) Saturation {
	s := Saturation{Window: now.Sub(m.last), CPU: -1,
		Paced: m.p.Paced.Swap(0), Late: m.p.Late.Swap(0), CapWaits: m.p.CapWaits.Swap(0)}
	if cpu, ok := m.cpu(); ok && s.Window > 0 {
		s.CPU = float64(cpu-m.lastCPU) / float64(s.Window) / float64(m.procs)
		m.lastCPU = cpu
	}
	m.last = now
	switch {
	case s.Late >= 2 && float64(s.Late) > SaturatedLateShare*float64(s.Paced):
		s.Saturated = true
		s.Reason = fmt.Sprintf("%d of %d sends more than %v behind schedule", s.Late, s.Paced, LateSend)
	case s.CPU >= SaturatedCPU:
		s.Saturated = true
		s.Reason = fmt.Sprintf("process CPU at %.0f%% of %d cores", 100*s.CPU, m.procs)
	}
	m.windows++
	if s.Saturated {
		m.saturated++
		if !m.worst.Saturated || s.Late > m.worst.Late || s.CPU > m.worst.CPU {
			m.worst = s
		}
	}
	return s
}

// Summary is how many windows were saturated, of how many, and the worst
// one's reason.
func (m *SaturationMonitor) Summary() (saturated, windows int, worst string) {
	return m.saturated, m.windows, m.worst.Reason
}
