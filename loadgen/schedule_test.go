package loadgen

import (
	"math"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

func TestScheduleConstantIsExact(t *testing.T) {
	s, err := NewSchedule(scenario.ArrivalConstant, 1000, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 100_000 {
		got := s.Next()
		want := time.Duration(k) * time.Millisecond
		if d := got - want; d < -time.Nanosecond || d > time.Nanosecond {
			t.Fatalf("arrival %d at %v, want %v (the schedule drifted)", k, got, want)
		}
	}
}

func TestScheduleRandomMeanRateAndShape(t *testing.T) {
	const rate, n = 200.0, 200_000
	cases := []struct {
		arrival    string
		burstiness float64
		wantCV     float64 // coefficient of variation of the gaps: 1/sqrt(shape)
	}{
		{scenario.ArrivalPoisson, 0, 1},
		{scenario.ArrivalGamma, 1, 1},
		{scenario.ArrivalGamma, 0.25, 2},
		{scenario.ArrivalGamma, 4, 0.5},
	}
	for _, tc := range cases {
		s, err := NewSchedule(tc.arrival, rate, tc.burstiness, 42)
		if err != nil {
			t.Fatal(err)
		}
		var prev time.Duration
		var sum, sumSq float64
		for k := range n {
			at := s.Next()
			if at < prev {
				t.Fatalf("%s: arrival %d at %v before %v", tc.arrival, k, at, prev)
			}
			if k > 0 {
				g := (at - prev).Seconds()
				sum += g
				sumSq += g * g
			}
			prev = at
		}
		mean := sum / (n - 1)
		cv := math.Sqrt(sumSq/(n-1)-mean*mean) / mean
		if got := 1 / mean; math.Abs(got-rate)/rate > 0.01 {
			t.Errorf("%s(%v): mean rate %.2f, want %.0f ±1%%", tc.arrival, tc.burstiness, got, rate)
		}
		if math.Abs(cv-tc.wantCV)/tc.wantCV > 0.03 {
			t.Errorf("%s(%v): gap CV %.3f, want %.3f ±3%%", tc.arrival, tc.burstiness, cv, tc.wantCV)
		}
	}
}

func TestScheduleSeedRepeats(t *testing.T) {
	a, _ := NewSchedule(scenario.ArrivalPoisson, 50, 0, 7)
	b, _ := NewSchedule(scenario.ArrivalPoisson, 50, 0, 7)
	c, _ := NewSchedule(scenario.ArrivalPoisson, 50, 0, 8)
	same := true
	for range 100 {
		x, y, z := a.Next(), b.Next(), c.Next()
		if x != y {
			t.Fatalf("same seed gave %v and %v", x, y)
		}
		same = same && x == z
	}
	if same {
		t.Fatal("different seeds gave the same schedule")
	}
}

func TestScheduleRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		arrival     string
		rate, burst float64
	}{
		{scenario.ArrivalConstant, 0, 0},
		{scenario.ArrivalConstant, -1, 0},
		{scenario.ArrivalConstant, math.Inf(1), 0},
		{scenario.ArrivalGamma, 10, 0},
		{"uniform", 10, 0},
	} {
		if _, err := NewSchedule(tc.arrival, tc.rate, tc.burst, 0); err == nil {
			t.Errorf("NewSchedule(%q, %v, %v) accepted bad input", tc.arrival, tc.rate, tc.burst)
		}
	}
}

// A rate so low that offsets leave time.Duration's range must schedule
// the later requests never (the longest Duration), not at once: Go's
// float-to-int conversion of an out-of-range value is the most negative
// Duration on amd64 (issue 16, defect 13).
func TestScheduleSaturatesTinyRates(t *testing.T) {
	for _, tc := range []struct {
		arrival     string
		rate, burst float64
	}{
		{scenario.ArrivalConstant, 1e-300, 0},
		{scenario.ArrivalPoisson, 1e-300, 0},
		{scenario.ArrivalGamma, 1e-300, 4},
	} {
		s, err := NewSchedule(tc.arrival, tc.rate, tc.burst, 1)
		if err != nil {
			t.Fatal(err)
		}
		if at := s.Next(); at != 0 {
			t.Errorf("%s %v: first arrival at %v, want 0", tc.arrival, tc.rate, at)
		}
		for k := 1; k < 5; k++ {
			if at := s.Next(); at != time.Duration(math.MaxInt64) {
				t.Errorf("%s %v: arrival %d at %v, want %v (never)", tc.arrival, tc.rate, k, at, time.Duration(math.MaxInt64))
			}
		}
	}
	if _, err := NewSchedule(scenario.ArrivalGamma, 1e-6, 5e-324, 1); err == nil {
		t.Error("NewSchedule accepted a gamma scale that overflows")
	}
}
