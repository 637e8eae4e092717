package energy

import (
	"math"
	"testing"
	"time"
)

// A tick read before T0 but handed on after it (the window opened while
// it was on its way) must not index past the kept ticks: with no spare
// capacity that was a panic in the sampler's goroutine, which took the
// loadgen down.
func TestPeakPowerTickBeforeT0(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	for _, spare := range []bool{false, true} {
		var p peakPower
		if !spare {
			p.ticks = make([]timedPower, 0, 1)
		}
		p.add(at(0), 300, time.Time{})
		t0 := at(150)
		p.add(at(100), 250, t0) // read before T0, added once T0 is known
		p.add(at(200), 280, t0)
		p.add(at(300), 260, t0)
		if got := p.since(t0); got != 280 {
			t.Errorf("spare %v: peak since T0 = %v, want 280 (the ticks: %+v)", spare, got, p.ticks)
		}
	}
}

// Tick times that go back are clamped, so the search for T0 stays right.
func TestPeakPowerTimesThatGoBack(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	var p peakPower
	p.add(at(0), 500, time.Time{})
	p.add(at(200), 400, time.Time{})
	p.add(at(100), 300, time.Time{}) // stamped with an older sample time
	p.add(at(300), 200, time.Time{})
	if got := p.since(at(250)); got != 200 {
		t.Errorf("peak since 250 ms = %v, want 200 (ticks %+v)", got, p.ticks)
	}
	if got := p.since(at(150)); got != 400 {
		t.Errorf("peak since 150 ms = %v, want 400", got)
	}
	if got := p.since(at(400)); !math.IsNaN(got) {
		t.Errorf("peak since after the last tick = %v, want NaN", got)
	}
}
