package loadgen

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// rampIntegral is Λ(t) = ∫₀ᵗ λ for a rate going linearly from `from` to
// `to` over d: the number of arrivals a ramp should hold by t.
func rampIntegral(from, to float64, d, t time.Duration) float64 {
	s := t.Seconds()
	return from*s + (to-from)*s*s/(2*d.Seconds())
}

// countUntil draws a schedule's offsets up to d and returns them.
func drawUntil(t *testing.T, s Schedule, d time.Duration) []time.Duration {
	t.Helper()
	var out []time.Duration
	prev := time.Duration(-1)
	for {
		at := s.Next()
		if at < prev {
			t.Fatalf("arrival %d at %v, before the one at %v", len(out), at, prev)
		}
		prev = at
		if at >= d {
			return out
		}
		out = append(out, at)
		if len(out) > 10_000_000 {
			t.Fatal("the ramp never ends")
		}
	}
}

// TestRampScheduleConstantIntegratesTheRate: constant arrivals on a ramp
// come each time the rate's integral reaches the next whole request, so
// arrival k is at Λ⁻¹(k) and a ramp holds exactly ⌈Λ(d)⌉ of them, rising,
// falling or from zero.
func TestRampScheduleConstantIntegratesTheRate(t *testing.T) {
	cases := []struct {
		from, to float64
		d        time.Duration
		want     int
	}{
		{1, 50, 10 * time.Minute, 15300}, // Λ(d) = 25.5·600
		{50, 1, 10 * time.Minute, 15300},
		{0, 20, time.Minute, 600},
		{20, 0, time.Minute, 600},
		{5, 5, time.Minute, 300}, // no slope: the constant schedule
		{0.5, 2.25, 80 * time.Second, 110},
	}
	for _, tc := range cases {
		s, err := NewRampSchedule(scenario.ArrivalConstant, tc.from, tc.to, tc.d, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := drawUntil(t, s, tc.d)
		if len(got) != tc.want {
			t.Errorf("%v→%v over %v: %d arrivals, want Λ(d) = %d", tc.from, tc.to, tc.d, len(got), tc.want)
		}
		for k, at := range got {
			if u := rampIntegral(tc.from, tc.to, tc.d, at); math.Abs(u-float64(k)) > 1e-5*max(1, float64(k)) {
				t.Fatalf("%v→%v: arrival %d at %v where Λ = %.6f, want %d", tc.from, tc.to, k, at, u, k)
			}
		}
	}
}

// TestRampScheduleRandomFollowsTheIntegral: poisson and gamma arrivals on
// a ramp (a fixed seed, no real time) number about Λ(t) by each t: within
// five standard deviations of the count, √Λ(t) for poisson, √(Λ(t)/k) for
// gamma of shape k; and the second half of a rising ramp holds about three
// times the first's.
func TestRampScheduleRandomFollowsTheIntegral(t *testing.T) {
	const from, to, d = 2.0, 100.0, 20 * time.Minute
	cases := []struct {
		arrival string
		shape   float64
	}{
		{scenario.ArrivalPoisson, 1},
		{scenario.ArrivalGamma, 0.5},
		{scenario.ArrivalGamma, 4},
	}
	for _, tc := range cases {
		s, err := NewRampSchedule(tc.arrival, from, to, d, tc.shape, 7)
		if err != nil {
			t.Fatal(err)
		}
		got := drawUntil(t, s, d)
		for _, frac := range []float64{0.1, 0.25, 0.5, 0.75, 1} {
			at := time.Duration(frac * float64(d))
			n := 0
			for _, x := range got {
				if x < at {
					n++
				}
			}
			want := rampIntegral(from, to, d, at)
			if dev := math.Abs(float64(n) - want); dev > 5*math.Sqrt(want/tc.shape) {
				t.Errorf("%s(%v): %d arrivals by %v, want Λ = %.0f ± %.0f", tc.arrival, tc.shape, n, at, want, 5*math.Sqrt(want/tc.shape))
			}
		}
	}
}

func TestRampScheduleRefusesNoRate(t *testing.T) {
	for _, c := range [][2]float64{{0, 0}, {-1, 5}, {5, math.NaN()}, {math.Inf(1), 1}} {
		if _, err := NewRampSchedule(scenario.ArrivalConstant, c[0], c[1], time.Minute, 0, 1); err == nil {
			t.Errorf("ramp %v→%v: no error", c[0], c[1])
		}
	}
	if _, err := NewRampSchedule(scenario.ArrivalConstant, 1, 2, 0, 0, 1); err == nil {
		t.Error("ramp of no duration: no error")
	}
}

// TestTargetFollowsThePlan: the target is the stage the run's clock is in
// (a run started an hour and a half ago is in its second hour-long stage),
// a ramp's rate is the line's value there, and there is none before the
// run starts.
func TestTargetFollowsThePlan(t *testing.T) {
	b := simBackend(t, sim.Config{})
	newRunner := func(sc scenario.Scenario) *Runner {
		sc.Name = "t"
		r, err := NewRunner(RunConfig{Scenario: &sc, Backend: b, Prompts: TextPrompts("a")})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := newRunner(scenario.Scenario{Concurrency: 16, Stages: []scenario.Stage{
		{Duration: time.Hour, Rate: 5}, {Duration: time.Hour, Concurrency: 8}, {Duration: time.Hour, Rate: 2, Concurrency: 4}}})
	if got := r.Target(); got != (Target{Stage: -1}) {
		t.Errorf("before the run: %+v, want no stage", got)
	}
	for _, tc := range []struct {
		ago  time.Duration
		want Target
	}{
		{30 * time.Minute, Target{Stage: 0, Rate: 5, Concurrency: 16}}, // the scenario's cap
		{90 * time.Minute, Target{Stage: 1, Concurrency: 8}},
		{150 * time.Minute, Target{Stage: 2, Rate: 2, Concurrency: 4}}, // its own cap
		{4 * time.Hour, Target{Stage: -1}},
	} {
		start := time.Now().Add(-tc.ago)
		r.began.Store(&start)
		if got := r.Target(); got != tc.want {
			t.Errorf("%v in: %+v, want %+v", tc.ago, got, tc.want)
		}
	}

	r = newRunner(scenario.Scenario{Ramp: &scenario.Ramp{From: 10, To: 110, Duration: time.Hour}})
	start := time.Now().Add(-30 * time.Minute)
	r.began.Store(&start)
	if got := r.Target(); got.Stage != 0 || math.Abs(got.Rate-60) > 0.1 || got.Concurrency != 0 {
		t.Errorf("half-way up a 10→110 ramp: %+v, want stage 0 at 60 req/s", got)
	}

	r = newRunner(scenario.Scenario{Rate: 3, Concurrency: 7, NumSamples: 1})
	start = time.Now()
	r.began.Store(&start)
	if got := r.Target(); got != (Target{Stage: -1, Rate: 3, Concurrency: 7}) {
		t.Errorf("a run without stages: %+v", got)
	}
}

// maxOverlap is the most requests of recs in flight at once, by their
// send and done times.
func maxOverlap(recs []Record) int {
	most := 0
	for _, a := range recs {
		n := 0
		for _, b := range recs {
			if b.SendUnix <= a.SendUnix && a.SendUnix < b.DoneUnix {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

// TestStagedRunKeepsItsStages: each record carries the stage that sent
// it, within that stage's span: an open-loop stage's requests are
// scheduled inside it (exactly as many as its constant schedule holds),
// a closed-loop stage's are sent after it starts and never more than its
// concurrency at once, and an open-loop stage's own cap holds. The run
// ends with its last stage. No wall-clock accuracy is asserted: the
// counts come from the schedule, the overlaps from the records.
func TestStagedRunKeepsItsStages(t *testing.T) {
	// Requests take about 25 ms: longer than stage 2's gaps of 15.6 ms,
	// so only its cap keeps them one at a time.
	b := simBackend(t, sim.Config{TTFT: 5 * time.Millisecond, ITL: 10 * time.Millisecond})
	sc := scenario.Scenario{MaxTokens: 3, IgnoreEOS: true, Stages: []scenario.Stage{
		{Duration: 250 * time.Millisecond, Rate: 32}, // arrivals at k·31.25 ms: 8 of them
		{Duration: 300 * time.Millisecond, Concurrency: 2},
		{Duration: 250 * time.Millisecond, Rate: 64, Concurrency: 1}, // 16 arrivals, one in flight at a time
	}}
	res, c, err := runScenario(t, context.Background(), b, sc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != StopStages {
		t.Errorf("stop reason %q, want %q", res.StopReason, StopStages)
	}
	if len(res.Stages) != 3 {
		t.Fatalf("%d stage spans, want 3", len(res.Stages))
	}
	wantSeqs(t, c.seqs(), len(c.recs))
	byStage := make([][]Record, 3)
	const eps = 2e-6 // unix seconds in a float64 are good to about 0.2 µs
	for _, rec := range c.recs {
		if rec.Stage == nil || *rec.Stage < 0 || *rec.Stage > 2 {
			t.Fatalf("record %d has stage %v", rec.Seq, rec.Stage)
		}
		k := *rec.Stage
		byStage[k] = append(byStage[k], rec)
		span := res.Stages[k]
		from, to := float64(span.Start.UnixNano())/1e9, float64(span.End.UnixNano())/1e9
		if sc.Stages[k].Rate > 0 && (rec.SchedUnix < from-eps || rec.SchedUnix >= to+eps) {
			t.Errorf("stage %d request %d scheduled at %.6f, outside its stage [%.6f, %.6f)", k, rec.Seq, rec.SchedUnix, from, to)
		}
		if rec.SendUnix < from-eps {
			t.Errorf("stage %d request %d sent at %.6f, before its stage started at %.6f", k, rec.Seq, rec.SendUnix, from)
		}
		if !rec.OK() {
			t.Errorf("request %d: %s", rec.Seq, describeFailure(&rec))
		}
	}
	if n := len(byStage[0]); n != 8 {
		t.Errorf("stage 0 (32 req/s for 250ms): %d requests, want 8", n)
	}
	if n := len(byStage[2]); n != 16 {
		t.Errorf("stage 2 (64 req/s for 250ms): %d requests, want 16", n)
	}
	if len(byStage[1]) == 0 {
		t.Error("the closed-loop stage sent nothing")
	}
	if n := maxOverlap(byStage[1]); n > 2 {
		t.Errorf("closed-loop stage of concurrency 2 had %d requests in flight", n)
	}
	if n := maxOverlap(byStage[2]); n > 1 {
		t.Errorf("open-loop stage capped at 1 had %d requests in flight", n)
	}
	for k := 1; k < 3; k++ {
		if !res.Stages[k].Start.Equal(res.Stages[k-1].End) {
			t.Errorf("stage %d starts at %v, not where stage %d ends (%v)", k, res.Stages[k].Start, k-1, res.Stages[k-1].End)
		}
	}
	if got := res.Stages[2].End.Sub(res.Stages[0].Start); got != 800*time.Millisecond {
		t.Errorf("stages span %v, want their 800ms", got)
	}
}

// TestStagedRunStopsAtNumSamples: a count ends a staged run before its
// last stage; a lowered concurrency waits for the requests in flight.
func TestStagedRunStopsAtNumSamples(t *testing.T) {
	b := simBackend(t, sim.Config{TTFT: 2 * time.Millisecond, ITL: time.Millisecond})
	sc := scenario.Scenario{NumSamples: 12, MaxTokens: 2, Stages: []scenario.Stage{
		{Duration: time.Hour, Concurrency: 3}, {Duration: time.Hour, Rate: 1}}}
	res, c, err := runScenario(t, context.Background(), b, sc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != StopCount || res.Requests != 12 {
		t.Errorf("stop %q after %d requests, want count after 12", res.StopReason, res.Requests)
	}
	wantSeqs(t, c.seqs(), 12)
	if len(res.Stages) != 1 || !res.Stages[0].End.Before(res.Stages[0].Start.Add(time.Hour)) {
		t.Errorf("stage spans %+v, want the first, cut short", res.Stages)
	}
	for _, rec := range c.recs {
		if rec.Stage == nil || *rec.Stage != 0 || rec.ScheduleLag != 0 || rec.SchedUnix != rec.SendUnix {
			t.Fatalf("closed-loop stage record %+v", rec)
		}
	}
	if n := maxOverlap(c.recs); n > 3 {
		t.Errorf("%d requests in flight in a stage of concurrency 3", n)
	}
}

// TestRampRunSendsTheIntegral: a constant-arrival ramp run sends exactly
// the requests its integral holds, each with stage 0.
func TestRampRunSendsTheIntegral(t *testing.T) {
	b := simBackend(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond})
	sc := scenario.Scenario{MaxTokens: 2, Ramp: &scenario.Ramp{From: 10, To: 70, Duration: 500 * time.Millisecond}}
	res, c, err := runScenario(t, context.Background(), b, sc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Λ(0.5 s) = (10 + 70) / 2 · 0.5 = 20.
	if res.StopReason != StopStages || len(c.recs) != 20 {
		t.Errorf("stop %q after %d requests, want stages after 20", res.StopReason, len(c.recs))
	}
	for _, rec := range c.recs {
		if rec.Stage == nil || *rec.Stage != 0 {
			t.Fatalf("ramp record with stage %v", rec.Stage)
		}
	}
}
