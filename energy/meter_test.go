package energy

import (
	"math"
	"testing"
	"time"
)

func TestPeakPowerSince(t *testing.T) {
	at := func(s int) time.Time { return epoch.Add(time.Duration(s) * time.Second) }
	var p peakPower
	for s, w := range []float64{100, 900, 300, 500, 200, 400, 100} {
		p.add(at(s), w, time.Time{})
	}
	for _, tc := range []struct {
		t0   int
		want float64
	}{{0, 900}, {1, 900}, {2, 500}, {4, 400}, {6, 100}} {
		if got := p.since(at(tc.t0)); got != tc.want {
			t.Errorf("since %d s: %v W, want %v", tc.t0, got, tc.want)
		}
	}
	if got := p.since(at(7)); !math.IsNaN(got) {
		t.Errorf("after the last tick: %v, want NaN", got)
	}
	// Once a T0 is known, only the highest tick from it on is kept.
	p.add(at(7), 350, at(3))
	p.add(at(8), 50, at(3))
	if got, n := p.since(at(3)), len(p.ticks); got != 500 || n != 2 {
		t.Errorf("with T0 known: %v W over %d ticks kept, want 500 W over 2 (900 before T0, 500 from it)", got, n)
	}
}

// The summary's peak is the highest tick power in the run window: the
// warm-up before the first measured send is left out.
func TestMeterPeakPowerLeavesOutTheWarmUp(t *testing.T) {
	blocked := make(chan struct{})
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(1), block: make(chan struct{}), blocked: blocked}
	m, err := StartMeter[int](src, MeterOptions{Interval: time.Hour, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	<-blocked // the sampler waits in its first read: the test feeds the ticks
	at := func(s int) time.Time { return epoch.Add(time.Duration(s) * time.Second) }
	tick := func(s int, w float64) {
		m.onTick(Tick{Time: at(s), EnergyJ: float64(s) * 400, PowerW: w, Samples: []Sample{{Time: at(s), EnergyJ: float64(s) * 400, PowerW: w}}})
	}
	tick(0, 100)
	m.BeginWindow()
	tick(1, 950) // the warm-up
	tick(2, 900)
	tick(3, 400) // the first measured request is sent at 3.5 s
	tick(4, 420)
	tick(5, 480)
	m.Add(Span{Send: epoch.Add(3500 * time.Millisecond), First: at(4), Done: at(5)}, 1)
	tick(6, 470) // the first tick at or after the last completion
	m.Finish()
	tick(7, 990) // after Finish
	if got := m.Summary().PeakPowerW; got != 480 {
		t.Errorf("peak %v W, want 480 (the warm-up's 950 W and the 990 W after the run left out)", got)
	}
	close(src.block)
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
}

// An idle baseline measured before (a sweep's first run's) stands in for
// measuring one: the summary has it, and a baseline for another number
// of GPUs is refused.
func TestMeterSetIdle(t *testing.T) {
	blocked := make(chan struct{})
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2), block: make(chan struct{}), blocked: blocked}
	m, err := StartMeter[int](src, MeterOptions{Interval: time.Hour, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	<-blocked
	if m.Idle() != nil || !math.IsNaN(m.Summary().IdlePowerW) {
		t.Errorf("idle before any baseline: %v, %v W", m.Idle(), m.Summary().IdlePowerW)
	}
	if err := m.SetIdle([]float64{60}); err == nil {
		t.Error("a one-GPU baseline for two GPUs was taken")
	}
	per := []float64{60, 45}
	if err := m.SetIdle(per); err != nil {
		t.Fatal(err)
	}
	per[0] = 0 // the meter keeps its own copy
	if got := m.Idle(); len(got) != 2 || got[0] != 60 || got[1] != 45 || m.Summary().IdlePowerW != 105 {
		t.Errorf("idle %v, %v W; want [60 45], 105 W", got, m.Summary().IdlePowerW)
	}
	close(src.block)
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
}
