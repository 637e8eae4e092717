package loadgen

import (
	"fmt"
	"math"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// LateSend is how late the open-loop pacer may release a request before
// the send counts as late: far above the pacer's normal sub-millisecond
// lag, far below any latency a user would read as the server's.
const LateSend = 5 * time.Millisecond

// Default saturation thresholds for one monitoring window (see
// SaturationThresholds).
const (
	// SaturatedLateShare: more than this share of a window's sends late
	// (and at least two) means the client fell behind its schedule.
	SaturatedLateShare = 0.01
	// SaturatedCPU: the process using this share of the CPUs it may run
	// on (GOMAXPROCS) leaves no room to stamp times promptly.
	SaturatedCPU = 0.95
	// SaturatedSchedLatency: the 99th percentile of the time goroutines
	// waited, runnable, for the Go scheduler to run them above this. On
	// a 2-vCPU VM with other work on it (load average about 2), a
	// streaming run against the in-process simulator (ITL 2 ms) read
	// at most 1.3 ms at 5 to 100 req/s; with two busy loops beside it
	// at 100 req/s, 1.3 to 34 ms (and an ITL p50 of 0.79 ms); alone at
	// 200 req/s, 3.7 to 59 ms (ITL p50 1.5 ms).
	SaturatedSchedLatency = 2 * time.Millisecond
	// SaturatedRunqueueWait: the process's threads waiting longer than
	// this, on average, on a kernel run queue each time they were given
	// a CPU: the delay a wake-up (a token arriving, a timer) suffers
	// before a thread can stamp it, whatever the client's own rate. The
	// same runs read at most 157 µs per window without the busy loops
	// and 86 µs to 694 µs with them (every run had windows over 200 µs).
	SaturatedRunqueueWait = 200 * time.Microsecond
	// SaturatedLateness: the 99th percentile of the client lateness of
	// a window's stamped text chunks (a simulator's --stamp-chunks on
	// the same host: a chunk's arrival minus when the simulator wrote
	// it) above this. It is the whole path's delay, kernel and client,
	// the very error of every TTFT and ITL the client stamps.
	SaturatedLateness = 5 * time.Millisecond
)

// Minimum samples in a window for its scheduling signals to count: with
// fewer, a percentile or mean is one or two outliers.
const (
	minSchedSamples    = 50
	minRunqueueRuns    = 50
	minLatenessSamples = 50
)

// SaturationThresholds are the limits past which a window counts as
// saturated. A zero field is its default (the Saturated constants); a
// negative one turns its signal off.
type SaturationThresholds struct {
	LateShare    float64       // share of a window's open-loop sends released late
	CPU          float64       // process CPU / (window × GOMAXPROCS)
	SchedLatency time.Duration // Go scheduling latency p99
	RunqueueWait time.Duration // mean kernel run-queue wait per time a thread ran
	Lateness     time.Duration // client lateness p99 of stamped text chunks
}

func (t SaturationThresholds) withDefaults() SaturationThresholds {
	if t.LateShare == 0 {
		t.LateShare = SaturatedLateShare
	}
	if t.CPU == 0 {
		t.CPU = SaturatedCPU
	}
	if t.SchedLatency == 0 {
		t.SchedLatency = SaturatedSchedLatency
	}
	if t.RunqueueWait == 0 {
		t.RunqueueWait = SaturatedRunqueueWait
	}
	if t.Lateness == 0 {
		t.Lateness = SaturatedLateness
	}
	return t
}

// Saturation is the client's state over one monitoring window.
type Saturation struct {
	Window   time.Duration
	Paced    int64   // open-loop sends released
	Late     int64   // of them, released more than LateSend late
	CapWaits int64   // of them, held for an in-flight slot (the server's doing)
	CPU      float64 // process CPU time / (window × GOMAXPROCS); -1 unknown
	// SchedP99 is the 99th percentile (its histogram bucket's lower
	// bound) of the time goroutines spent runnable before the Go
	// scheduler ran them (runtime/metrics /sched/latencies:seconds, which
	// samples one scheduling in eight); -1 unknown or too few samples.
	SchedP99 time.Duration
	// RunqueueWait is the time this process's threads spent waiting on a
	// kernel run queue for a CPU, over the window, divided by the number
	// of times they were given one (Linux /proc/self/task/*/schedstat);
	// -1 unknown or too few.
	RunqueueWait time.Duration
	// LatenessP99 is the 99th percentile (its histogram bucket's lower
	// bound, within 6.25 % under) of the client lateness of the text
	// chunks stamped by a simulator (--stamp-chunks) that arrived in
	// the window; -1 without stamps or with too few. When
	// known, it decides instead of SchedP99 and RunqueueWait.
	LatenessP99 time.Duration
	Saturated   bool
	Reason      string // why, when Saturated: every signal that fired

	severity float64 // the largest value / threshold of the signals that fired
}

// SaturationMonitor watches a run for a client that, rather than the
// server, limits what is measured: an open-loop pacer that cannot keep
// its schedule, a process that uses all the CPU it may, goroutines and
// threads kept waiting for a CPU (by this process's own load or by other
// work on the machine), or, against a simulator that stamps its chunks,
// chunks read late. Call Tick about once a second from one goroutine.
type SaturationMonitor struct {
	p     *Progress
	th    SaturationThresholds
	procs int

	cpu   func() (time.Duration, bool)
	sched func() (counts []uint64, buckets []float64, ok bool) // cumulative histogram
	runq  func() (wait time.Duration, runs uint64, ok bool)    // cumulative

	last        time.Time
	lastCPU     time.Duration
	lastSched   []uint64
	lastRunq    time.Duration
	lastRuns    uint64
	lastRunqOK  bool
	lastSchedOK bool
	// The lateness histogram's counts at the last Tick, and a buffer
	// for the next reading.
	lastLate, curLate []uint64

	windows, saturated int
	worst              Saturation
}

// NewSaturationMonitor starts monitoring p from now, against th.
func NewSaturationMonitor(p *Progress, th SaturationThresholds) *SaturationMonitor {
	m := &SaturationMonitor{p: p, th: th, procs: runtime.GOMAXPROCS(0),
		cpu: processCPU, sched: schedLatencies(), runq: newRunqueueReader()}
	m.start(time.Now())
	return m
}

// start takes the readers' first values, which the first window is
// measured from.
func (m *SaturationMonitor) start(now time.Time) {
	m.th = m.th.withDefaults()
	m.last = now
	m.lastCPU, _ = m.cpu()
	if m.sched != nil {
		m.lastSched, _, m.lastSchedOK = m.sched()
	}
	if m.runq != nil {
		m.lastRunq, m.lastRuns, m.lastRunqOK = m.runq()
	}
	m.lastLate = m.p.lateness.read(m.lastLate)
}

// Tick closes the window that began at the previous Tick and returns it.
func (m *SaturationMonitor) Tick(now time.Time) Saturation {
	s := Saturation{Window: now.Sub(m.last), CPU: -1, SchedP99: -1, RunqueueWait: -1, LatenessP99: -1,
		Paced: m.p.Paced.Swap(0), Late: m.p.Late.Swap(0), CapWaits: m.p.CapWaits.Swap(0)}
	if cpu, ok := m.cpu(); ok && s.Window > 0 {
		s.CPU = float64(cpu-m.lastCPU) / float64(s.Window) / float64(m.procs)
		m.lastCPU = cpu
	}
	if m.sched != nil {
		if counts, buckets, ok := m.sched(); ok {
			if m.lastSchedOK && len(counts) == len(m.lastSched) {
				s.SchedP99 = histQuantile(counts, m.lastSched, buckets, 0.99, minSchedSamples)
			}
			m.lastSched, m.lastSchedOK = counts, true
		}
	}
	if m.runq != nil {
		if wait, runs, ok := m.runq(); ok {
			if m.lastRunqOK && runs >= m.lastRuns+minRunqueueRuns {
				s.RunqueueWait = (wait - m.lastRunq) / time.Duration(runs-m.lastRuns)
			}
			m.lastRunq, m.lastRuns, m.lastRunqOK = wait, runs, true
		}
	}
	m.curLate = m.p.lateness.read(m.curLate)
	s.LatenessP99 = histQuantile(m.curLate, m.lastLate, latenessBounds, 0.99, minLatenessSamples)
	m.lastLate, m.curLate = m.curLate, m.lastLate
	m.last = now
	m.judge(&s)
	m.windows++
	if s.Saturated {
		m.saturated++
		if !m.worst.Saturated || s.severity > m.worst.severity {
			m.worst = s
		}
	}
	return s
}

// judge sets s.Saturated, its Reason and severity from the thresholds.
func (m *SaturationMonitor) judge(s *Saturation) {
	var reasons []string
	fired := func(value, threshold float64, reason string) {
		s.Saturated = true
		s.severity = max(s.severity, value/threshold)
		reasons = append(reasons, reason)
	}
	th := m.th
	if th.LateShare > 0 && s.Late >= 2 && float64(s.Late) > th.LateShare*float64(s.Paced) {
		fired(float64(s.Late)/float64(s.Paced), th.LateShare,
			fmt.Sprintf("%d of %d sends more than %v behind schedule (threshold %s)", s.Late, s.Paced, LateSend, pct(th.LateShare)))
	}
	if th.CPU > 0 && s.CPU >= th.CPU {
		fired(s.CPU, th.CPU, fmt.Sprintf("process CPU at %s of %d cores (threshold %s)", pct(s.CPU), m.procs, pct(th.CPU)))
	}
	// Go's scheduling latency and the run-queue wait estimate how late
	// the client reads what arrives. A window with enough stamped chunks
	// has that lateness measured exactly, which then decides alone: a
	// burst of runnable goroutines that delays no chunk past the
	// threshold is not saturation.
	exact := th.Lateness > 0 && s.LatenessP99 >= 0
	if th.SchedLatency > 0 && s.SchedP99 > th.SchedLatency && !exact {
		fired(float64(s.SchedP99), float64(th.SchedLatency),
			fmt.Sprintf("Go scheduling latency p99 %v (threshold %v)", roundDur(s.SchedP99), th.SchedLatency))
	}
	if th.RunqueueWait > 0 && s.RunqueueWait > th.RunqueueWait && !exact {
		fired(float64(s.RunqueueWait), float64(th.RunqueueWait),
			fmt.Sprintf("threads waited %v on average for a CPU (threshold %v)", roundDur(s.RunqueueWait), th.RunqueueWait))
	}
	if th.Lateness > 0 && s.LatenessP99 > th.Lateness {
		fired(float64(s.LatenessP99), float64(th.Lateness),
			fmt.Sprintf("client lateness p99 %v (threshold %v)", roundDur(s.LatenessP99), th.Lateness))
	}
	s.Reason = strings.Join(reasons, "; ")
}

// Summary is how many windows were saturated, of how many, and the worst
// one's reason.
func (m *SaturationMonitor) Summary() (saturated, windows int, worst string) {
	return m.saturated, m.windows, m.worst.Reason
}

// pct shows a share as a percentage, to four significant digits.
func pct(f float64) string { return strconv.FormatFloat(100*f, 'g', 4, 64) + "%" }

// roundDur shows d to three significant digits or so.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// histQuantile is the q quantile of the samples a cumulative histogram
// gained from last to cur: the lower bound of the bucket it falls in
// (buckets has one more element than counts, and may start at -Inf and
// end at +Inf). Fewer than min samples give -1.
func histQuantile(cur, last []uint64, buckets []float64, q float64, min uint64) time.Duration {
	var total uint64
	for i := range cur {
		total += cur[i] - last[i]
	}
	if total < min || total == 0 {
		return -1
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range cur {
		seen += cur[i] - last[i]
		if seen >= rank {
			lo := buckets[i]
			if math.IsInf(lo, -1) || lo < 0 {
				lo = 0
			}
			return time.Duration(lo * float64(time.Second))
		}
	}
	return -1
}

// schedLatencies reads the Go runtime's scheduling-latency histogram; nil
// if this runtime has none.
func schedLatencies() func() ([]uint64, []float64, bool) {
	const name = "/sched/latencies:seconds"
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return func() ([]uint64, []float64, bool) {
		metrics.Read(s)
		h := s[0].Value.Float64Histogram()
		// Read reuses h's storage: keep a copy.
		return append([]uint64(nil), h.Counts...), h.Buckets, true
	}
}
