package loadgen

import (
	"context"
	"math"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// simBackend starts a simulator and returns a client for it.
func simBackend(t *testing.T, cfg sim.Config) backends.Backend {
	t.Helper()
	srv, err := sim.Start(context.Background(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: srv.URL, API: backends.APIChat, VLLM: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// collector is a Sink that keeps every record.
type collector struct {
	mu   sync.Mutex
	recs []Record
}

func (c *collector) Observe(r *Record) {
	c.mu.Lock()
	c.recs = append(c.recs, *r)
	c.mu.Unlock()
}

func (c *collector) seqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s []int64
	for _, r := range c.recs {
		s = append(s, r.Seq)
	}
	slices.Sort(s)
	return s
}

func runScenario(t *testing.T, ctx context.Context, b backends.Backend, sc scenario.Scenario, grace time.Duration) (*Result, *collector, error) {
	t.Helper()
	c := &collector{}
	sc.Name = "test"
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
		Prompts: TextPrompts("a", "b", "c"), Grace: grace, Sinks: []Sink{c}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx)
	return res, c, err
}

func wantSeqs(t *testing.T, got []int64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d records, want %d", len(got), n)
	}
	for i, s := range got {
		if s != int64(i) {
			t.Fatalf("records have seqs %v, want 0..%d each once", got, n-1)
		}
	}
}

func TestRunnerClosedLoopCountAndCap(t *testing.T) {
	cfg := sim.Config{ITL: time.Millisecond, TTFT: 2 * time.Millisecond}
	b := simBackend(t, cfg)
	var maxInFlight int64
	sc := scenario.Scenario{NumSamples: 30, Concurrency: 4, MaxTokens: 5, IgnoreEOS: true}
	c := &collector{}
	sc.Name = "test"
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
		Prompts: TextPrompts("a", "b"), Sinks: []Sink{c, SinkFunc(func(*Record) {})}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res, err := r.Run(context.Background())
		if err != nil || res.StopReason != StopCount || res.Requests != 30 || res.OK != 30 {
			t.Errorf("Run: %+v, %v", res, err)
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case <-done:
			wantSeqs(t, c.seqs(), 30)
			if maxInFlight > 4 || maxInFlight < 1 {
				t.Errorf("max in flight %d, want 1..4", maxInFlight)
			}
			for _, rec := range c.recs {
				if rec.ScheduleLag != 0 || rec.SchedUnix != rec.SendUnix || rec.PromptIndex != int(rec.Seq%2) || rec.RunID != "r1" {
					t.Fatalf("closed-loop record %+v", rec)
				}
			}
			return
		default:
		}
		maxInFlight = max(maxInFlight, r.Progress.InFlight.Load())
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatal("run did not finish in 20s")
}

func TestRunnerOpenLoopCount(t *testing.T) {
	b := simBackend(t, sim.Config{})
	res, c, err := runScenario(t, context.Background(), b,
		scenario.Scenario{NumSamples: 50, Rate: 500, Arrival: scenario.ArrivalConstant, MaxTokens: 3, IgnoreEOS: true}, 0)
	if err != nil || res.StopReason != StopCount {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	wantSeqs(t, c.seqs(), 50)
	// Intended send times follow the schedule exactly: 2 ms apart.
	sched := make([]float64, 0, 50)
	for _, r := range c.recs {
		sched = append(sched, r.SchedUnix)
	}
	slices.Sort(sched)
	for i := 1; i < len(sched); i++ {
		if gap := sched[i] - sched[i-1]; gap < 0.00199 || gap > 0.00201 {
			t.Fatalf("intended gap %d is %.6fs, want 0.002s", i, gap)
		}
	}
}

func TestRunnerDurationStops(t *testing.T) {
	b := simBackend(t, sim.Config{TTFT: time.Millisecond})
	start := time.Now()
	res, c, err := runScenario(t, context.Background(), b,
		scenario.Scenario{Duration: 300 * time.Millisecond, Concurrency: 2, MaxTokens: 2, IgnoreEOS: true}, 0)
	if err != nil || res.StopReason != StopDuration {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	// Sanity only: how close to 300 ms, and how many requests fit in it,
	// depend on the machine's load (bounded with TOKENWATT_TIMING=1).
	el := time.Since(start)
	t.Logf("a 300ms run took %v, %d requests", el, res.Requests)
	if limit := 30 * time.Second; el > limit || timingEnabled() && el > 2*time.Second {
		t.Fatalf("a 300ms run took %v", el)
	}
	wantSeqs(t, c.seqs(), res.Requests)
	if res.Requests < 1 || timingEnabled() && res.Requests < 10 {
		t.Fatalf("only %d requests in 300ms", res.Requests)
	}
}

func TestRunnerInterruptCancelsAfterGrace(t *testing.T) {
	// Every stream stalls after its first token, so nothing finishes by
	// itself: after the interrupt and the grace period, all in flight are
	// canceled, and each still yields exactly one record.
	b := simBackend(t, sim.Config{Stall: 1})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res, c, err := runScenario(t, ctx, b, scenario.Scenario{Concurrency: 3, MaxTokens: 10}, 100*time.Millisecond)
	if err != nil || res.StopReason != StopInterrupted {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	// Sanity: the canceled requests would otherwise stall forever.
	if el := time.Since(start); el > 30*time.Second || timingEnabled() && el > 5*time.Second {
		t.Fatalf("interrupt + 100ms grace took %v", el)
	}
	wantSeqs(t, c.seqs(), 3)
	for _, r := range c.recs {
		if r.Outcome != string(backends.OutcomeCanceled) || r.TTFT == nil {
			t.Fatalf("record %+v: want canceled with its first token measured", r)
		}
	}
}

// An interrupt after every sample was sent still gives the requests in
// flight only the grace period (they stall forever here), and Abort
// cancels them without waiting for it.
func TestRunnerInterruptAfterLastSendAndAbort(t *testing.T) {
	b := simBackend(t, sim.Config{Stall: 1})
	for _, abort := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		// Open loop: scheduling ends (StopCount) at the last send.
		sc := scenario.Scenario{Name: "test", Rate: 1000, NumSamples: 3, MaxTokens: 10}
		c := &collector{}
		grace := 100 * time.Millisecond
		if abort {
			grace = time.Hour
		}
		r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
			Prompts: TextPrompts("a"), Grace: grace, Sinks: []Sink{c}})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Run(ctx)
			done <- err
		}()
		for deadline := time.Now().Add(30 * time.Second); r.Progress.InFlight.Load() < 3; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests in flight after 30s, want 3", r.Progress.InFlight.Load())
			}
		}
		cancel()
		if abort {
			r.Abort()
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("abort %v: requests still in flight 30s after the interrupt (grace %v)", abort, grace)
		}
		wantSeqs(t, c.seqs(), 3)
		for _, rec := range c.recs {
			if rec.Outcome != string(backends.OutcomeCanceled) {
				t.Errorf("abort %v: record %d ended %s, want canceled", abort, rec.Seq, rec.Outcome)
			}
		}
	}
}

func TestRunnerStopsOnConsecutiveFailures(t *testing.T) {
	b := simBackend(t, sim.Config{Fail500: 1})
	res, c, err := runScenario(t, context.Background(), b,
		scenario.Scenario{NumSamples: 100, Concurrency: 1, MaxConsecutiveFailures: 3}, 0)
	if err == nil || res.StopReason != StopFailures {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	wantSeqs(t, c.seqs(), 3)
}

func TestRunnerWarmupReachesNoSink(t *testing.T) {
	b := simBackend(t, sim.Config{})
	res, c, err := runScenario(t, context.Background(), b,
		scenario.Scenario{NumSamples: 4, Warmup: 5, Concurrency: 2, MaxTokens: 2}, 0)
	if err != nil || res.Requests != 4 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	wantSeqs(t, c.seqs(), 4)
}

// timingEnabled reports whether wall-clock bounds are asserted
// (TOKENWATT_TIMING=1); without it only sanity bounds are.
func timingEnabled() bool { return os.Getenv("TOKENWATT_TIMING") == "1" }

// A concurrency far above the number of requests starts only as many
// workers as there are requests: Run returns once they are done instead
// of starting idle goroutines for minutes (issue 16, defect 10).
func TestRunnerHugeConcurrencyEndsWithTheWork(t *testing.T) {
	b := simBackend(t, sim.Config{ITL: time.Millisecond, TTFT: time.Millisecond})
	for _, sc := range []scenario.Scenario{
		{NumSamples: 2, Concurrency: math.MaxInt, MaxTokens: 2, Warmup: 1},
		{NumSamples: 2, Concurrency: math.MaxInt, MaxTokens: 2, Rate: 1000},
	} {
		type result struct {
			res *Result
			c   *collector
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, c, err := runScenario(t, context.Background(), b, sc, time.Second)
			done <- result{res, c, err}
		}()
		select {
		case r := <-done:
			if r.err != nil || r.res.Requests != 2 || r.res.StopReason != StopCount {
				t.Fatalf("rate %v: Run: %+v, %v", sc.Rate, r.res, r.err)
			}
			wantSeqs(t, r.c.seqs(), 2)
		case <-time.After(60 * time.Second):
			t.Fatalf("rate %v: concurrency %d, 2 requests: Run still running after 60s", sc.Rate, sc.Concurrency)
		}
	}
}

// An open-loop rate whose next offset overflows a Duration sends the
// first request and waits (for ever, in practice), instead of sending every
// request at once (issue 16, defect 13). Scenario validation rejects
// such rates; the runner must still not burst.
func TestRunnerTinyRateDoesNotBurst(t *testing.T) {
	b := simBackend(t, sim.Config{ITL: time.Millisecond, TTFT: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := scenario.Scenario{Name: "test", NumSamples: 3, Rate: 1e-300, MaxTokens: 2}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
		Prompts: TextPrompts("a"), Grace: time.Second, Sinks: []Sink{SinkFunc(func(*Record) { cancel() })}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx)
	if err != nil || res.Requests != 1 || res.StopReason != StopInterrupted {
		t.Fatalf("Run: %+v, %v; want 1 request, then waiting until interrupted", res, err)
	}
}

// heldRecords is an Attributor that releases every record it holds at
// each check, and counts the checks.
type heldRecords struct {
	held   []*Record
	checks int
}

func (h *heldRecords) Add(rec *Record) { h.held = append(h.held, rec) }

func (h *heldRecords) Advance(time.Time) []*Record {
	h.checks++
	out := h.held
	h.held = nil
	return out
}

func (h *heldRecords) Finish() []*Record { return h.Advance(time.Time{}) }

// The collector checks the attributor for records to release at most
// every attributionGap while requests complete (and every
// attributionPoll otherwise), not after each completion: a check walks
// every record held and request in flight, so one per completion cost
// the square of the concurrency (at 10,000 streams, a core). Every record
// still reaches the sinks once.
func TestRunnerAttributorChecksAreSpaced(t *testing.T) {
	b := simBackend(t, sim.Config{})
	const n = 2000
	h := &heldRecords{}
	c := &collector{}
	sc := scenario.Scenario{Name: "test", NumSamples: n, Concurrency: 16, MaxTokens: 1}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
		Prompts: TextPrompts("a"), Sinks: []Sink{c}, Attributor: h})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := r.Run(context.Background())
	elapsed := time.Since(start)
	if err != nil || res.Requests != n {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	wantSeqs(t, c.seqs(), n)
	if most := int(elapsed/attributionGap+elapsed/attributionPoll) + 2; h.checks > most {
		t.Errorf("%d checks for release in %v for %d records, want at most %d", h.checks, elapsed, n, most)
	}
}
