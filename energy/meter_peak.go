package energy

import (
	"math"
	"sort"
	"time"
)

// peakPower finds the highest tick power from the run window's start T0
// on. T0, the first measured send, comes after the warm-up and is only
// known once requests complete, so it keeps the ticks that some T0 could
// make the peak: those no later tick matches (strictly decreasing power,
// increasing time). A T0 already seen bounds the true one from above, so
// of the ticks at or after it only the highest is kept: memory grows
// with the time before the first measured request completes, not with
// the run.
type peakPower struct {
	ticks []timedPower
}

type timedPower struct {
	t time.Time
	w float64
}

// add records power w at t; t0 is the window's start as far as known
// (zero: no measured request yet).
//
// Tick times need not increase (a dcgm source stamps a reading with when
// DCGM sampled it, which may precede the previous tick's time): they are
// clamped to be non-decreasing, which first's binary search needs. A
// tick may also precede t0 (read before the first measured send, handed
// on after it).
func (p *peakPower) add(t time.Time, w float64, t0 time.Time) {
	n := len(p.ticks)
	if n > 0 && t.Before(p.ticks[n-1].t) {
		t = p.ticks[n-1].t
	}
	for n > 0 && p.ticks[n-1].w <= w {
		n--
	}
	p.ticks = append(p.ticks[:n], timedPower{t, w})
	if !t0.IsZero() {
		if i := p.first(t0); i < len(p.ticks) {
			p.ticks = p.ticks[:i+1]
		}
	}
}

// first is the index of the first tick at or after t0 (len when none).
func (p *peakPower) first(t0 time.Time) int {
	return sort.Search(len(p.ticks), func(i int) bool { return !p.ticks[i].t.Before(t0) })
}

// since is the highest power at or after t0; NaN when none.
func (p *peakPower) since(t0 time.Time) float64 {
	if i := p.first(t0); i < len(p.ticks) {
		return p.ticks[i].w
	}
	return math.NaN()
}
