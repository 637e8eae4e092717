package loadgen

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/hrtimer"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// StopStages is the stop reason of a run whose last stage (or ramp)
// ended; requests still in flight get the grace period, as after
// --duration.
const StopStages = "stages"

// StageSpan is when a stage that started ran: from its planned start to
// its planned end, or to when scheduling stopped if that came first.
type StageSpan struct {
	Start, End time.Time
}

// Target is what the schedule asks for at a moment.
type Target struct {
	// Stage is the index of the stage being scheduled; -1 when the run
	// has no stages, or is before its first or past its last.
	Stage int
	// Rate is the open-loop rate, requests per second (a ramp's at this
	// moment); 0 in closed loop and when nothing is being scheduled.
	Rate float64
	// Concurrency is the closed loop's requests in flight, or the open
	// loop's in-flight cap (0: none).
	Concurrency int
}

// stagePlan is one stage of a run: open loop at a rate that goes from
// rate to rateTo (equal but in a ramp), or closed loop at conc.
type stagePlan struct {
	start, dur   time.Duration // offset from the run's start, length
	open         bool
	rate, rateTo float64
	conc         int // closed loop: requests in flight; open loop: cap (0: none)
	sched        Schedule
}

// rateAt is the stage's target rate at offset off into it.
func (p *stagePlan) rateAt(off time.Duration) float64 {
	if !p.open {
		return 0
	}
	return p.rate + (p.rateTo-p.rate)*off.Seconds()/p.dur.Seconds()
}

// stager runs a scenario's stages: the plan, and the requests in flight
// across stages, which count against each new stage's limit (a stage
// that lowers the concurrency lets the requests in flight finish, and
// sends again once fewer than its limit are).
type stager struct {
	plan     []stagePlan
	inFlight atomic.Int64
	freed    chan struct{} // a request completed (buffered: one signal pending at most)
	reached  int           // stages started, written by the dispatcher
	stopAt   time.Time     // when the dispatcher returned
}

// newStager plans sc's stages or ramp; nil when it has neither. The
// schedules are drawn from sc and the shard's part selected from them;
// the rates (targets) and concurrencies are share's, the shard's share
// of sc (sc itself when not sharded).
func newStager(sc, share *scenario.Scenario, shard Shard) (*stager, error) {
	if !sc.Staged() {
		return nil, nil
	}
	st := &stager{freed: make(chan struct{}, 1)}
	seed := seedOf(sc)
	if r := sc.Ramp; r != nil {
		sched, err := newRampSchedule(sc.Arrival, r.From, r.To, r.Duration, sc.Burstiness, scheduleRNG(seed, 0))
		if err != nil {
			return nil, err
		}
		st.plan = []stagePlan{{dur: r.Duration, open: true, rate: share.Ramp.From, rateTo: share.Ramp.To, conc: share.Concurrency, sched: shard.Select(sched)}}
		return st, nil
	}
	var at time.Duration
	for k, s := range share.Stages {
		p := stagePlan{start: at, dur: s.Duration, open: s.Rate > 0, rate: s.Rate, rateTo: s.Rate, conc: s.Concurrency}
		if p.open {
			if p.conc == 0 {
				p.conc = share.Concurrency
			}
			sched, err := newSchedule(sc.Arrival, sc.Stages[k].Rate, sc.Burstiness, scheduleRNG(seed, k))
			if err != nil {
				return nil, err
			}
			p.sched = shard.Select(sched)
		}
		st.plan = append(st.plan, p)
		at += s.Duration
	}
	return st, nil
}

// release counts a completed request out and wakes a dispatcher waiting
// for a slot.
func (st *stager) release() {
	st.inFlight.Add(-1)
	select {
	case st.freed <- struct{}{}:
	default:
	}
}

// spans are the stages that started, from start.
func (st *stager) spans(start time.Time) []StageSpan {
	out := make([]StageSpan, 0, st.reached)
	for _, p := range st.plan[:st.reached] {
		s := StageSpan{Start: start.Add(p.start), End: start.Add(p.start + p.dur)}
		if st.stopAt.Before(s.End) {
			s.End = st.stopAt
		}
		if s.End.Before(s.Start) {
			s.End = s.Start
		}
		out = append(out, s)
	}
	return out
}

// Started is when the measured requests started (the schedule's time
// zero); zero before then.
func (r *Runner) Started() time.Time {
	if t := r.began.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Target is what the schedule asks for now: the stage, the rate and the
// concurrency; Stage -1, Rate 0 and Concurrency 0 before the measured
// requests start and once scheduling has stopped.
func (r *Runner) Target() Target {
	start := r.began.Load()
	if start == nil || r.stopped() {
		return Target{Stage: -1}
	}
	sc := r.cfg.Scenario
	if r.stages == nil {
		return Target{Stage: -1, Rate: sc.Rate, Concurrency: sc.Concurrency}
	}
	plan := r.stages.plan
	off := time.Since(*start)
	k := sort.Search(len(plan), func(i int) bool { return plan[i].start+plan[i].dur > off })
	if k == len(plan) {
		return Target{Stage: -1}
	}
	return Target{Stage: k, Rate: plan[k].rateAt(max(off-plan[k].start, 0)), Concurrency: plan[k].conc}
}

// staged runs the stages one after the other, each from its planned
// start: an open-loop stage sends on its own schedule, a closed-loop one
// keeps its concurrency in flight until its end. Every request's record
// carries its stage. Scheduling ends with the last stage (StopStages),
// or earlier by num_samples or duration.
func (r *Runner) staged(start time.Time, inflight *sync.WaitGroup) {
	st, sc := r.stages, r.cfg.Scenario
	defer func() { st.stopAt = time.Now() }()
	timer, err := hrtimer.New()
	if err != nil {
		timer = &hrtimer.Timer{}
	}
	defer timer.Close()
	d := &stageDispatch{r: r, st: st, start: start, timer: timer, inflight: inflight, limit: int64(sc.NumSamples)}
	for k := range st.plan {
		p := &st.plan[k]
		if sc.Duration > 0 && p.start >= sc.Duration {
			r.stop(StopDuration)
			return
		}
		if !timer.SleepUntil(r.stopCtx, start.Add(p.start)) {
			return
		}
		st.reached = k + 1
		ok := false
		if p.open {
			ok = d.open(k, p)
		} else {
			ok = d.closed(k, p)
		}
		if !ok {
			return
		}
	}
	// The run lasts as long as its stages, though the last open-loop
	// stage's last request may leave well before its end.
	last := &st.plan[len(st.plan)-1]
	end := start.Add(last.start + last.dur)
	if sc.Duration > 0 && sc.Duration < last.start+last.dur {
		end = start.Add(sc.Duration)
	}
	if !timer.SleepUntil(r.stopCtx, end) {
		return
	}
	r.stop(StopStages)
}

// stageDispatch is the state the stages' dispatcher carries from stage to
// stage.
type stageDispatch struct {
	r        *Runner
	st       *stager
	start    time.Time
	timer    *hrtimer.Timer
	inflight *sync.WaitGroup
	seq      int64
	limit    int64     // num_samples; 0: none
	capFreed time.Time // the end of the last wait for an in-flight slot
}

// counted reports whether every requested sample has been sent.
func (d *stageDispatch) counted() bool { return d.limit > 0 && d.seq >= d.limit }

// launch sends the next measured request in its own goroutine.
func (d *stageDispatch) launch(sched time.Time, stage int) {
	seq := d.seq
	d.seq++
	d.st.inFlight.Add(1)
	d.inflight.Add(1)
	go func() {
		defer d.inflight.Done()
		d.r.measure(d.r.shard.global(seq), sched, stage)
		d.st.release()
	}()
}

// open sends stage k's arrivals on its schedule, at most its cap in
// flight, as openLoop does: a wait for a slot shows as schedule lag, and
// lateness counts from the end of that wait. It returns false when
// scheduling must stop.
func (d *stageDispatch) open(k int, p *stagePlan) bool {
	r, sc := d.r, d.r.cfg.Scenario
	stageStart := d.start.Add(p.start)
	limit := int64(p.conc)
	for !d.counted() {
		off := p.sched.Next()
		if off >= p.dur {
			return true
		}
		at := stageStart.Add(off)
		if sc.Duration > 0 && at.Sub(d.start) >= sc.Duration {
			r.stop(StopDuration)
			return false
		}
		if !d.timer.SleepUntil(r.stopCtx, at) {
			return false
		}
		r.Progress.Paced.Add(1)
		r.Progress.pacedTotal.Add(1)
		ref := at
		if d.capFreed.After(ref) {
			ref = d.capFreed
		}
		if time.Since(ref) > LateSend {
			r.Progress.Late.Add(1)
		}
		if limit > 0 && d.st.inFlight.Load() >= limit {
			r.Progress.CapWaits.Add(1)
			r.Progress.capWaitsTotal.Add(1)
			for d.st.inFlight.Load() >= limit {
				select {
				case <-d.st.freed:
				case <-r.stopCtx.Done():
					return false
				}
			}
			d.capFreed = time.Now()
		}
		d.launch(at, k)
	}
	return false
}

// closed keeps stage k's concurrency in flight until its end: a request
// is sent whenever fewer are in flight, those left from an earlier stage
// included. It returns false when scheduling must stop.
func (d *stageDispatch) closed(k int, p *stagePlan) bool {
	r := d.r
	stageEnd := d.start.Add(p.start + p.dur)
	end := time.NewTimer(time.Until(stageEnd))
	defer end.Stop()
	limit := int64(p.conc)
	for !d.counted() {
		for d.st.inFlight.Load() >= limit {
			select {
			case <-d.st.freed:
			case <-end.C:
				return true
			case <-r.stopCtx.Done():
				return false
			}
		}
		if r.stopped() {
			return false
		}
		if !time.Now().Before(stageEnd) {
			return true
		}
		// A zero schedule time: the request is due when it is sent.
		d.launch(time.Time{}, k)
	}
	return false
}
