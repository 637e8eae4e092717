package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/internal/hrtimer"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// DefaultGrace is how long in-flight requests may run on after a run is
// stopped early (Ctrl-C, --duration, too many failures) before they are
// canceled.
const DefaultGrace = 30 * time.Second

// Sink receives every measured request's Record. The runner calls all
// sinks from a single goroutine, in completion order, so a sink needs no
// locking against other sinks; it must not keep the pointer.
type Sink interface {
	Observe(rec *Record)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(rec *Record)

// Observe calls f(rec).
func (f SinkFunc) Observe(rec *Record) { f(rec) }

// RunConfig is one run: where requests go, what they carry and how they
// are scheduled. Scenario holds final values (flags already applied).
type RunConfig struct {
	RunID    string
	Scenario *scenario.Scenario
	// Shard, when Count > 1, makes this run one shard of Scenario: it
	// sends its share (Shard.Share) of the requests, each numbered (Seq)
	// and with the prompt as in the unsharded run.
	Shard Shard
	// StartAt, if not zero, is when the schedule starts (its time zero),
	// after the warm-up: Run waits for it. A StartAt already past starts
	// the schedule at once, and Result.LateStart says by how much.
	StartAt   time.Time
	Backend   backends.Backend
	Model     string
	Prompts   []Prompt
	Simulated bool
	// Grace bounds how long in-flight requests may finish after an early
	// stop; 0 means DefaultGrace.
	Grace time.Duration
	Sinks []Sink
	// Attributor, if set, holds each completed record until its energy is
	// known and fills it in; the sinks then get records as it releases
	// them.
	Attributor Attributor

	// SendsMessages says that the backend sends a prompt's Messages when
	// it has them (the OpenAI chat API), not its Text: the records of a
	// save_text run then hold the messages.
	SendsMessages bool
}

// Attributor fills in records' energy. The runner calls it from one
// goroutine.
type Attributor interface {
	// Add takes a completed record; it comes back from Advance or Finish.
	Add(rec *Record)
	// Advance returns the records whose energy is now final.
	// oldestInFlight is the earliest intended send time among measured
	// requests sent and not yet Added (zero: none).
	Advance(oldestInFlight time.Time) []*Record
	// Finish returns every record still held, once the run is over.
	Finish() []*Record
}

// attributionPoll is how often held records are checked for release
// when no request completes.
const attributionPoll = 100 * time.Millisecond

// attributionGap is the least time between two checks for release when
// requests complete. A check walks every record held and every request
// in flight, so checking after each of thousands of completions a second
// would cost the square of the concurrency; energy samples come every
// 100 ms by default, so a record waits no longer for it.
const attributionGap = 10 * time.Millisecond

// Stop reasons reported in Result.StopReason.
const (
	StopCount       = "count"       // every requested sample was sent
	StopDuration    = "duration"    // --duration elapsed
	StopInterrupted = "interrupted" // the context was canceled (Ctrl-C, SIGTERM)
	StopFailures    = "failures"    // max_consecutive_failures reached
	StopWriteError  = "write_error" // the records could not be written (Stop)
)

// Result describes a finished run. Start and End are the run window of
// docs/definitions.md ("Run window"): the first measured send and the
// last completion.
type Result struct {
	Start, End time.Time
	LastSend   time.Time // the last measured send
	Requests   int
	OK         int
	StopReason string
	// Open-loop pacing over the whole run: sends the pacer released, and
	// of them those that waited for an in-flight slot (the cap was full).
	Paced, CapWaits int64
	// Stages are the spans of the stages that started (a run with stages
	// or a ramp), in order.
	Stages []StageSpan
	// LateStart is how long after RunConfig.StartAt the schedule started,
	// when StartAt had passed by the time the warm-up ended; 0 otherwise.
	LateStart time.Duration
}

// ErrTooManyFailures is returned (wrapped) when max_consecutive_failures
// consecutive requests failed.
var ErrTooManyFailures = errors.New("too many consecutive failures")

// Progress is a live view of a run for progress lines; safe for
// concurrent reads.
type Progress struct {
	Sent     atomic.Int64 // measured requests sent
	Done     atomic.Int64 // measured requests completed
	Failed   atomic.Int64 // measured requests that did not succeed
	InFlight atomic.Int64 // measured requests sent and not completed

	// Open-loop pacing, for client saturation (SaturationMonitor): sends
	// the pacer released, those it released more than LateSend after
	// their intended time (the client could not keep its schedule), and
	// those that then waited for an in-flight slot (the server could not
	// keep up with the offered load).
	Paced    atomic.Int64
	Late     atomic.Int64
	CapWaits atomic.Int64

	// The same over the whole run (the monitor resets the above).
	pacedTotal, capWaitsTotal atomic.Int64

	// The client lateness of every stamped text chunk (a simulator's
	// --stamp-chunks), for the saturation monitor, and how many stamps
	// came whose client lateness the clocks could not agree on (below
	// -backends.MaxClockSkew), over the run. Each chunk is counted as it
	// arrives (backends.Request.Lateness), so a window sees the lateness
	// of the streams in flight, not only of those that ended in it; the
	// collector counts the skewed stamps as it takes each record.
	lateness    latenessHist
	ClockSkewed atomic.Int64
}

// CapWaitsTotal is how many open-loop sends have waited for an in-flight
// slot so far in the run.
func (p *Progress) CapWaitsTotal() int64 { return p.capWaitsTotal.Load() }

// Runner executes a RunConfig. Create one with NewRunner, read Progress
// while Run executes.
type Runner struct {
	cfg      RunConfig
	Progress Progress
	// shard is the run's shard: cfg.Scenario is its share of the
	// scenario given, whose schedules it selects from.
	shard    Shard
	warmedUp bool // the warm-up was sent (Warmup)

	stopOnce   sync.Once
	stopCtx    context.Context // done once scheduling must stop
	stopSched  context.CancelFunc
	stopReason string
	graceOnce  sync.Once // starts the grace period's timer

	abortCtx context.Context // parent of every request's context
	abort    context.CancelFunc

	schedule Schedule // open loop only
	stages   *stager  // stages or a ramp only
	began    atomic.Pointer[time.Time]
	respPool sync.Pool
	records  chan Record

	// failMu guards the consecutive-failure watch. It runs in the
	// sending goroutine, before the next request can start, so that a
	// sequential run stops after exactly max_consecutive_failures.
	failMu      sync.Mutex
	consecutive int
	lastErr     string

	// inflight maps each measured request in flight to its intended send
	// time, until the collector has handed its record to the attributor.
	inflightMu sync.Mutex
	inflight   map[int64]time.Time

	// turns numbers a multi-turn run's requests (Record.Seq), across its
	// conversations.
	turns atomic.Int64
}

// NewRunner checks cfg and returns a runner for it.
func NewRunner(cfg RunConfig) (*Runner, error) {
	sc := cfg.Scenario
	switch {
	case sc == nil:
		return nil, errors.New("run needs a scenario")
	case cfg.Backend == nil:
		return nil, errors.New("run needs a backend")
	case len(cfg.Prompts) == 0:
		return nil, errors.New("run needs at least one prompt")
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	share, err := cfg.Shard.Share(sc)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", cfg.Shard, err)
	}
	cfg.Scenario = share
	r := &Runner{cfg: cfg, shard: cfg.Shard, records: make(chan Record, 4096), inflight: map[int64]time.Time{}}
	if sc.Rate > 0 {
		sched, err := NewSchedule(sc.Arrival, sc.Rate, sc.Burstiness, seedOf(sc))
		if err != nil {
			return nil, err
		}
		r.schedule = cfg.Shard.Select(sched)
	}
	if r.stages, err = newStager(sc, share, cfg.Shard); err != nil {
		return nil, err
	}
	r.stopCtx, r.stopSched = context.WithCancel(context.Background())
	r.abortCtx, r.abort = context.WithCancel(context.Background())
	r.respPool.New = func() any { return &backends.Response{} }
	return r, nil
}

// Run executes the warm-up, then the measured requests, feeding each
// completed request to the sinks. It returns when every request sent has
// completed or been canceled. A canceled ctx stops scheduling (StopInterrupted);
// in-flight requests get the grace period to finish. Run returns a
// non-nil Result even with an error.
func (r *Runner) Run(ctx context.Context) (*Result, error) {
	defer r.abort()
	sc := r.cfg.Scenario
	res := &Result{}

	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-ctx.Done():
			r.stop(StopInterrupted)
			// Also when every sample was already sent: the requests
			// still in flight get the grace period, not their timeouts.
			r.startGrace()
		case <-stopWatch:
		}
	}()

	if !r.warmedUp && sc.Warmup > 0 && !r.stopped() {
		r.warmup(sc.Warmup)
	}
	r.warmedUp = true
	start := r.waitStart(res)
	if r.stopped() {
		res.StopReason = r.stopReason
		res.Paced, res.CapWaits = r.Progress.pacedTotal.Load(), r.Progress.capWaitsTotal.Load()
		return res, nil
	}

	collected := make(chan struct{})
	go func() {
		defer close(collected)
		r.collect(res)
	}()

	r.began.Store(&start)
	if sc.Duration > 0 {
		t := time.AfterFunc(sc.Duration, func() { r.stop(StopDuration) })
		defer t.Stop()
	}
	var inflight sync.WaitGroup
	switch {
	case r.stages != nil:
		r.staged(start, &inflight)
	case sc.Rate > 0:
		r.openLoop(start, &inflight)
	default:
		r.closedLoop(&inflight)
	}
	r.stop(StopCount) // no-op when something else stopped the run first
	inflight.Wait()
	close(r.records)
	<-collected

	res.StopReason = r.stopReason
	res.Paced, res.CapWaits = r.Progress.pacedTotal.Load(), r.Progress.capWaitsTotal.Load()
	if r.stages != nil {
		res.Stages = r.stages.spans(start)
	}
	if res.StopReason == StopFailures {
		return res, fmt.Errorf("%w: %d requests in a row failed, last error: %s", ErrTooManyFailures, sc.MaxConsecutiveFailures, r.lastErr)
	}
	return res, nil
}

// waitStart waits for RunConfig.StartAt, if set and still ahead, and
// returns the schedule's time zero: StartAt itself, or now when it is not
// set or has passed (res.LateStart then says by how much). It returns at
// once when scheduling stops while it waits.
func (r *Runner) waitStart(res *Result) time.Time {
	now := time.Now()
	if r.cfg.StartAt.IsZero() {
		return now
	}
	// StartAt on the monotonic clock, as every later deadline of the
	// schedule: a step of the wall clock during the run moves none.
	at := now.Add(r.cfg.StartAt.Sub(now))
	if !now.Before(at) {
		res.LateStart = now.Sub(at)
		return now
	}
	// hrtimer wakes up within tens of microseconds, where runtime timers
	// may be a millisecond late: every shard's first send is that close
	// to the common start.
	timer, err := hrtimer.New()
	if err != nil {
		timer = &hrtimer.Timer{}
	}
	defer timer.Close()
	timer.SleepUntil(r.stopCtx, at)
	return at
}

// Warmup sends the warm-up requests now, ahead of Run (which then sends
// none), so that what comes between them and the schedule (an idle
// baseline measured just before RunConfig.StartAt) follows the warm-up.
// A canceled ctx stops it, and Run then returns at once.
func (r *Runner) Warmup(ctx context.Context) {
	if r.warmedUp {
		return
	}
	r.warmedUp = true
	stop := context.AfterFunc(ctx, func() {
		r.stop(StopInterrupted)
		r.startGrace()
	})
	defer stop()
	if n := r.cfg.Scenario.Warmup; n > 0 && !r.stopped() {
		r.warmup(n)
	}
}

// stop ends scheduling for reason. Requests in flight get the grace period
// unless the run simply sent all its samples, where their own timeouts
// bound them.
func (r *Runner) stop(reason string) {
	r.stopOnce.Do(func() {
		r.stopReason = reason
		r.stopSched()
		if reason != StopCount {
			r.startGrace()
		}
	})
}

// startGrace cancels the requests in flight once the grace period ends.
func (r *Runner) startGrace() {
	r.graceOnce.Do(func() { time.AfterFunc(r.cfg.Grace, r.abort) })
}

// Abort stops scheduling and cancels every request in flight at once,
// without waiting for the grace period (a second Ctrl-C). Run still
// returns normally: the canceled requests are recorded with outcome
// canceled and the sinks see every record.
func (r *Runner) Abort() {
	r.stop(StopInterrupted)
	r.abort()
}

// Grace is how long requests in flight may finish after an early stop.
func (r *Runner) Grace() time.Duration { return r.cfg.Grace }

// Stop ends scheduling for reason, as the runner itself does for its own
// reasons (e.g. StopWriteError from a sink that can no longer write):
// requests in flight get the grace period. The first reason given, by
// anyone, is the run's. Safe from any goroutine, the sinks' included.
func (r *Runner) Stop(reason string) { r.stop(reason) }

func (r *Runner) stopped() bool { return r.stopCtx.Err() != nil }

// warmup sends n requests, closed-loop at the scenario's concurrency, and
// discards what they measured.
func (r *Runner) warmup(n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers(r.cfg.Scenario.Concurrency, int64(n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !r.stopped() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				resp := r.send(&r.cfg.Prompts[r.shard.global(i)%int64(len(r.cfg.Prompts))], false)
				r.respPool.Put(resp)
			}
		}()
	}
	wg.Wait()
}

// workers is how many requests can be in flight at once: the
// concurrency, but never more than there are requests to send (limit; 0:
// no limit), so that a huge concurrency starts no idle goroutines, and at
// least 1.
func workers(concurrency int, limit int64) int {
	n := max(1, concurrency)
	if limit > 0 && int64(n) > limit {
		n = int(limit)
	}
	return n
}

// closedLoop keeps Concurrency requests in flight: each worker sends its
// next request as soon as its previous one completes, so t_sched = t_send.
func (r *Runner) closedLoop(inflight *sync.WaitGroup) {
	limit := int64(r.cfg.Scenario.NumSamples)
	var next atomic.Int64
	for range workers(r.cfg.Scenario.Concurrency, limit) {
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			for !r.stopped() {
				seq := next.Add(1) - 1
				if limit > 0 && seq >= limit {
					return
				}
				if r.cfg.Scenario.MultiTurn {
					r.conversation(r.shard.global(seq), time.Time{}) // seq numbers conversations
					continue
				}
				r.measure(r.shard.global(seq), time.Time{}, -1)
			}
		}()
	}
	// The workers are the dispatchers: scheduling ends when they do.
	inflight.Wait()
}

// openLoop sends request k at start + schedule offset k whatever the
// server does, up to Concurrency in flight (0: no cap). When the cap is
// reached the dispatcher waits for a slot and the wait shows as schedule
// lag, never as a shifted schedule.
func (r *Runner) openLoop(start time.Time, inflight *sync.WaitGroup) {
	sc, schedule := r.cfg.Scenario, r.schedule
	var slots chan struct{}
	if sc.Concurrency > 0 {
		slots = make(chan struct{}, workers(sc.Concurrency, int64(sc.NumSamples)))
	}
	// Go's runtime timers wake up to a millisecond late on Linux, which
	// would be most of the schedule lag at high rates; hrtimer parks in
	// the netpoller on a timerfd instead. Its zero value (if New fails)
	// falls back to runtime timers.
	timer, err := hrtimer.New()
	if err != nil {
		timer = &hrtimer.Timer{}
	}
	defer timer.Close()
	var capFreed time.Time
	for seq := int64(0); sc.NumSamples <= 0 || seq < int64(sc.NumSamples); seq++ {
		offset := schedule.Next()
		if sc.Duration > 0 && offset >= sc.Duration {
			r.stop(StopDuration)
			return
		}
		at := start.Add(offset)
		if !timer.SleepUntil(r.stopCtx, at) {
			return
		}
		// Lateness is the client's own only from the end of the last wait
		// for an in-flight slot: sends that wait behind a full cap are late
		// because the server is slow, not the client.
		r.Progress.Paced.Add(1)
		r.Progress.pacedTotal.Add(1)
		ref := at
		if capFreed.After(ref) {
			ref = capFreed
		}
		if time.Since(ref) > LateSend {
			r.Progress.Late.Add(1)
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			default:
				r.Progress.CapWaits.Add(1)
				r.Progress.capWaitsTotal.Add(1)
				select {
				case slots <- struct{}{}:
					capFreed = time.Now()
				case <-r.stopCtx.Done():
					return
				}
			}
		}
		inflight.Add(1)
		go func(seq int64) {
			defer inflight.Done()
			seq = r.shard.global(seq)
			if sc.MultiTurn {
				// seq numbers conversations, each holding its slot to its end.
				r.conversation(seq, at)
			} else {
				r.measure(seq, at, -1)
			}
			if slots != nil {
				<-slots
			}
		}(seq)
	}
}

// measure sends measured request seq (the unsharded run's number: a
// shard's are Shard.global), intended for sched, and hands its record to
// the collector. A zero sched means closed loop: the request is
// due when it is sent, so t_sched = t_send and its schedule lag is 0.
// stage is the index of the stage that sent it; -1 without stages.
func (r *Runner) measure(seq int64, sched time.Time, stage int) {
	idx := int(seq % int64(len(r.cfg.Prompts)))
	r.measurePrompt(seq, sched, idx, &r.cfg.Prompts[idx], nil, stage)
}

// measurePrompt is measure for prompt p, the dataset's prompt idx or,
// when turn is not nil, the request of a conversation's turn. It reports
// whether the request succeeded, when it ended, and the answer's text
// when the turn asked for it.
func (r *Runner) measurePrompt(seq int64, sched time.Time, idx int, p *Prompt, turn *turnRef, stage int) (ok bool, done time.Time, answer string) {
	r.Progress.Sent.Add(1)
	r.Progress.InFlight.Add(1)
	if r.cfg.Attributor != nil {
		due := sched
		if due.IsZero() {
			due = time.Now()
		}
		r.inflightMu.Lock()
		r.inflight[seq] = due
		r.inflightMu.Unlock()
	}
	keepText := turn != nil && turn.keepText
	resp := r.send(p, keepText)
	r.Progress.InFlight.Add(-1)
	if sched.IsZero() {
		sched = resp.Send
	}
	rec := newRecord(sched, resp)
	if r.cfg.Scenario.SaveText {
		r.saveText(&rec, p, resp)
	}
	if keepText {
		answer = string(resp.Text)
	}
	r.respPool.Put(resp)
	rec.Seq = seq
	rec.PromptIndex = idx
	if stage >= 0 {
		rec.Stage = &stage
	}
	setTargets(&rec, r.cfg.Scenario, p)
	if turn != nil {
		rec.ConversationID, rec.Turn = ptr(turn.conversation), ptr(turn.turn)
	}
	rec.SLOMet = MeetsSLO(r.cfg.Scenario.SLO, &rec)
	r.watchFailures(&rec)
	ok, done = rec.OK(), rec.done
	r.records <- rec
	return ok, done, answer
}

// saveText puts the prompt sent and the answer into rec (save_text).
func (r *Runner) saveText(rec *Record, p *Prompt, resp *backends.Response) {
	if r.cfg.SendsMessages && len(p.Messages) > 0 {
		rec.Prompt = p.Messages
	} else {
		rec.Prompt = p.Text
	}
	rec.Text = ptr(string(resp.Text))
	rec.TextTruncated = ptr(resp.TextTruncated)
}

// watchFailures stops the run after max_consecutive_failures failed
// requests in a row.
func (r *Runner) watchFailures(rec *Record) {
	r.failMu.Lock()
	defer r.failMu.Unlock()
	if rec.OK() {
		r.consecutive = 0
		return
	}
	r.lastErr = describeFailure(rec)
	r.consecutive++
	if limit := r.cfg.Scenario.MaxConsecutiveFailures; limit > 0 && r.consecutive >= limit {
		r.stop(StopFailures)
	}
}

// send performs one request with prompt p, keeping the answer's text
// when keepText, and returns the measured response (from the pool; the
// caller puts it back).
func (r *Runner) send(p *Prompt, keepText bool) *backends.Response {
	sc := r.cfg.Scenario
	maxTokens, minTokens := requestTokens(sc, p)
	req := backends.Request{
		Model:       r.cfg.Model,
		Prompt:      p.Text,
		Messages:    p.Messages,
		MaxTokens:   maxTokens,
		MinTokens:   minTokens,
		IgnoreEOS:   sc.IgnoreEOS,
		Temperature: sc.Temperature,
		Seed:        sc.Seed,
		Stream:      sc.Stream == nil || *sc.Stream,
		KeepText:    keepText || sc.SaveText,
		Lateness:    &r.Progress.lateness,
	}
	ctx, cancel := r.abortCtx, context.CancelFunc(func() {})
	if sc.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, sc.Timeout)
	}
	defer cancel()
	resp := r.respPool.Get().(*backends.Response)
	resp.Reset()
	r.cfg.Backend.Do(ctx, &req, resp)
	if resp.Send.IsZero() {
		// The client failed before sending (e.g. a bad URL); keep the
		// record's timestamps meaningful.
		resp.Send = time.Now()
	}
	if resp.Done.IsZero() {
		resp.Done = time.Now()
	}
	return resp
}

// collect stamps each record with the run's identity, keeps the run
// window and the progress counts, and passes the record on to the sinks,
// through the attributor when there is one.
func (r *Runner) collect(res *Result) {
	sc := r.cfg.Scenario
	emit := func(rec *Record) {
		for _, s := range r.cfg.Sinks {
			s.Observe(rec)
		}
	}
	var poll <-chan time.Time
	if r.cfg.Attributor != nil {
		t := time.NewTicker(attributionPoll)
		defer t.Stop()
		poll = t.C
	}
	var advanced time.Time // the last check for release
	advance := func() {
		advanced = time.Now()
		for _, rec := range r.cfg.Attributor.Advance(r.oldestInFlight()) {
			emit(rec)
		}
	}
	for {
		select {
		case <-poll:
			advance()
			continue
		case rec, ok := <-r.records:
			if !ok {
				if r.cfg.Attributor != nil {
					for _, rec := range r.cfg.Attributor.Finish() {
						emit(rec)
					}
				}
				return
			}
			rec.RunID = r.cfg.RunID
			rec.Scenario = sc.Name
			rec.Model = r.cfg.Model
			rec.Backend = r.cfg.Backend.Name()
			rec.Simulated = r.cfg.Simulated
			r.account(res, &rec)
			if r.cfg.Attributor == nil {
				emit(&rec)
				continue
			}
			held := rec
			r.cfg.Attributor.Add(&held)
			r.inflightMu.Lock()
			delete(r.inflight, rec.Seq)
			r.inflightMu.Unlock()
			if time.Since(advanced) >= attributionGap {
				advance()
			}
		}
	}
}

// account counts a completed record into the result and the progress.
func (r *Runner) account(res *Result, rec *Record) {
	send, end := unixTime(rec.SendUnix), unixTime(rec.DoneUnix)
	if res.Requests == 0 || send.Before(res.Start) {
		res.Start = send
	}
	if end.After(res.End) {
		res.End = end
	}
	if send.After(res.LastSend) {
		res.LastSend = send
	}
	res.Requests++
	if rec.skewed > 0 {
		r.Progress.ClockSkewed.Add(int64(rec.skewed))
	}
	r.Progress.Done.Add(1)
	if rec.OK() {
		res.OK++
	} else {
		r.Progress.Failed.Add(1)
	}
}

// oldestInFlight is the earliest intended send time of a measured request
// whose record the attributor has not seen (zero: none).
func (r *Runner) oldestInFlight() time.Time {
	r.inflightMu.Lock()
	defer r.inflightMu.Unlock()
	var oldest time.Time
	for _, t := range r.inflight {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest
}

func describeFailure(rec *Record) string {
	s := rec.Outcome
	if rec.HTTPStatus != nil {
		s += fmt.Sprintf(" (HTTP %d)", *rec.HTTPStatus)
	}
	if rec.Error != nil {
		s += ": " + *rec.Error
	}
	return s
}

func unixTime(sec float64) time.Time {
	return time.Unix(0, int64(sec*1e9))
}

func seedOf(sc *scenario.Scenario) int64 {
	if sc.Seed != nil {
		return *sc.Seed
	}
	return 0
}
