package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSaturationMonitor(t *testing.T) {
	var p Progress
	cpu := time.Duration(0)
	m := &SaturationMonitor{p: &p, procs: 2, cpu: func() (time.Duration, bool) { return cpu, true }}
	t0 := time.Unix(1000, 0)
	m.start(t0)

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
	if !s.Saturated || !strings.Contains(s.Reason, "30 of 1000 sends more than 5ms behind schedule (threshold 1%)") {
		t.Errorf("late window: %+v", s)
	}
	// Both CPUs busy (closed loop: no paced sends).
	cpu += 2 * time.Second
	s = m.Tick(t0.Add(4 * time.Second))
	if !s.Saturated || !strings.Contains(s.Reason, "process CPU at 100% of 2 cores (threshold 95%)") {
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

// schedHist is a cumulative scheduling-latency histogram shaped like the
// runtime's: -Inf, 0, then bucket bounds in seconds, +Inf.
type schedHist struct {
	buckets []float64
	counts  []uint64
}

func newSchedHist() *schedHist {
	b := []float64{math.Inf(-1), 0, 1e-6, 10e-6, 100e-6, 1e-3, 2e-3, 5e-3, 10e-3, math.Inf(1)}
	return &schedHist{buckets: b, counts: make([]uint64, len(b)-1)}
}

// add records n goroutines that waited d (at least the bound of d's bucket).
func (h *schedHist) add(d time.Duration, n uint64) {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if d.Seconds() >= h.buckets[i] {
			h.counts[i] += n
			return
		}
	}
}

func (h *schedHist) read() ([]uint64, []float64, bool) {
	return append([]uint64(nil), h.counts...), h.buckets, true
}

// TestSaturationMonitorSeesSchedulingLatency: a busy machine shows in
// the time goroutines wait to be scheduled although this process's CPU
// use is low and no send is late (issue 15, defect 8: ITL p50 0.6 ms
// against a 2 ms simulator, client_saturated false).
func TestSaturationMonitorSeesSchedulingLatency(t *testing.T) {
	var p Progress
	h := newSchedHist()
	m := &SaturationMonitor{p: &p, procs: 2, sched: h.read,
		cpu: func() (time.Duration, bool) { return 0, true }}
	t0 := time.Unix(1000, 0)
	m.start(t0)

	// 1,000 schedulings, the slowest 0.5% at 5 ms: p99 under 100 µs.
	h.add(20*time.Microsecond, 995)
	h.add(5*time.Millisecond, 5)
	if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.SchedP99 != 10*time.Microsecond {
		t.Errorf("healthy window: p99 %v, %+v", s.SchedP99, s)
	}
	// Too few samples for a p99: unknown, whatever they say.
	h.add(50*time.Millisecond, minSchedSamples-1)
	if s := m.Tick(t0.Add(2 * time.Second)); s.Saturated || s.SchedP99 != -1 {
		t.Errorf("sparse window: %+v", s)
	}
	// 3% of 1,000 at 5 ms: p99 at least 5 ms, against 2 ms.
	h.add(20*time.Microsecond, 970)
	h.add(5*time.Millisecond, 30)
	s := m.Tick(t0.Add(3 * time.Second))
	if !s.Saturated || s.SchedP99 != 5*time.Millisecond ||
		!strings.Contains(s.Reason, "Go scheduling latency p99 5ms (threshold 2ms)") {
		t.Errorf("slow window: %+v", s)
	}
	if sat, windows, worst := m.Summary(); sat != 1 || windows != 3 || !strings.Contains(worst, "Go scheduling latency") {
		t.Errorf("summary %d of %d, worst %q", sat, windows, worst)
	}

	// A threshold of 10 ms lets it pass; a negative one turns it off.
	for _, th := range []time.Duration{10 * time.Millisecond, -1} {
		m := &SaturationMonitor{p: &p, procs: 2, sched: h.read, th: SaturationThresholds{SchedLatency: th},
			cpu: func() (time.Duration, bool) { return 0, true }}
		m.start(t0)
		h.add(5*time.Millisecond, 100)
		if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.SchedP99 != 5*time.Millisecond {
			t.Errorf("threshold %v: %+v", th, s)
		}
	}
}

// TestSaturationMonitorSeesRunqueueWait: threads kept waiting for a CPU
// by other processes show in the kernel's run-queue wait per run.
func TestSaturationMonitorSeesRunqueueWait(t *testing.T) {
	var p Progress
	var wait time.Duration
	var runs uint64
	m := &SaturationMonitor{p: &p, procs: 2,
		runq: func() (time.Duration, uint64, bool) { return wait, runs, true },
		cpu:  func() (time.Duration, bool) { return 0, true }}
	t0 := time.Unix(1000, 0)
	wait, runs = 7*time.Second, 123456 // since the threads started
	m.start(t0)

	// 5,000 runs that waited 250 ms in all: 50 µs each.
	wait, runs = wait+250*time.Millisecond, runs+5000
	if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.RunqueueWait != 50*time.Microsecond {
		t.Errorf("healthy window: %+v", s)
	}
	// Too few runs for a mean.
	wait, runs = wait+time.Second, runs+minRunqueueRuns-1
	if s := m.Tick(t0.Add(2 * time.Second)); s.Saturated || s.RunqueueWait != -1 {
		t.Errorf("sparse window: %+v", s)
	}
	// 4,000 runs that waited 1.6 s: 400 µs each, against 200 µs.
	wait, runs = wait+1600*time.Millisecond, runs+4000
	s := m.Tick(t0.Add(3 * time.Second))
	if !s.Saturated || s.RunqueueWait != 400*time.Microsecond ||
		!strings.Contains(s.Reason, "threads waited 400µs on average for a CPU (threshold 200µs)") {
		t.Errorf("contended window: %+v", s)
	}
	// Unknown (not Linux): no signal.
	m = &SaturationMonitor{p: &p, procs: 2,
		runq: func() (time.Duration, uint64, bool) { return 0, 0, false },
		cpu:  func() (time.Duration, bool) { return 0, true }}
	m.start(t0)
	if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.RunqueueWait != -1 {
		t.Errorf("unknown: %+v", s)
	}
}

// TestSaturationMonitorWorstAndReasons: a window where several signals
// fire names each; the summary's worst window is the one furthest past
// its threshold.
func TestSaturationMonitorWorstAndReasons(t *testing.T) {
	var p Progress
	var wait time.Duration
	var runs uint64
	cpu := time.Duration(0)
	m := &SaturationMonitor{p: &p, procs: 2,
		runq: func() (time.Duration, uint64, bool) { return wait, runs, true },
		cpu:  func() (time.Duration, bool) { return cpu, true }}
	t0 := time.Unix(1000, 0)
	m.start(t0)

	// 10x the run-queue threshold.
	wait, runs = wait+2*time.Second, runs+1000
	m.Tick(t0.Add(time.Second))
	// CPU just over its threshold, and run-queue wait 2x.
	cpu += 1960 * time.Millisecond
	wait, runs = wait+400*time.Millisecond, runs+1000
	s := m.Tick(t0.Add(2 * time.Second))
	if !strings.Contains(s.Reason, "process CPU at 98% of 2 cores (threshold 95%); threads waited 400µs") {
		t.Errorf("both signals: %q", s.Reason)
	}
	if _, _, worst := m.Summary(); worst != "threads waited 2ms on average for a CPU (threshold 200µs)" {
		t.Errorf("worst %q, want the 2 ms run-queue window", worst)
	}
}

func TestHistQuantile(t *testing.T) {
	b := []float64{math.Inf(-1), 0, 1, 2, 4, math.Inf(1)}
	last := []uint64{0, 10, 0, 0, 0}
	for _, c := range []struct {
		cur  []uint64
		q    float64
		want time.Duration
	}{
		{[]uint64{0, 110, 0, 0, 0}, 0.99, 0},               // all in [0, 1)
		{[]uint64{0, 10, 99, 1, 0}, 0.99, time.Second},     // rank 99 of 100 in [1, 2)
		{[]uint64{0, 10, 98, 2, 0}, 0.99, 2 * time.Second}, // rank 99 in [2, 4)
		{[]uint64{0, 10, 98, 0, 2}, 0.99, 4 * time.Second}, // [4, +Inf): its lower bound
		{[]uint64{5, 10, 95, 0, 0}, 0.01, 0},               // [-Inf, 0): 0
		{[]uint64{0, 10, 10, 0, 0}, 0.99, -1},              // 10 samples: too few
	} {
		if got := histQuantile(c.cur, last, b, c.q, 50); got != c.want {
			t.Errorf("histQuantile(%v, q=%v) = %v, want %v", c.cur, c.q, got, c.want)
		}
	}
}
