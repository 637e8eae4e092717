package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// TestLatenessHistBuckets: every duration falls in the bucket whose
// bounds hold it, a bucket is never wider than 1/16 of its lower bound,
// and the bounds increase.
func TestLatenessHistBuckets(t *testing.T) {
	for i := 1; i < len(latenessBounds); i++ {
		if !(latenessBounds[i] > latenessBounds[i-1]) {
			t.Fatalf("bound %d (%v) not above bound %d (%v)", i, latenessBounds[i], i-1, latenessBounds[i-1])
		}
	}
	check := func(d time.Duration) {
		i := latenessIndex(d)
		lo, hi := latenessBounds[i], latenessBounds[i+1]
		if s := d.Seconds(); s < lo && !(i == 0 && d < 0) || s >= hi {
			t.Errorf("%v in bucket %d [%v, %v)", d, i, lo, hi)
		}
		if i > latenessSub && i < latenessBuckets-1 && (hi-lo) > lo/latenessSub*1.0000001 {
			t.Errorf("%v: bucket %d [%v, %v) wider than 1/16 of its bound", d, i, lo, hi)
		}
	}
	for _, d := range []time.Duration{-time.Hour, -1, 0, 1, 15, 16, 17, 31, 32, 999, time.Microsecond, 12300 * time.Microsecond,
		5 * time.Millisecond, time.Second, time.Hour, 1<<40 - 1, 1 << 40, math.MaxInt64} {
		check(d)
	}
	for d := time.Duration(1); d < time.Hour; d = d*21/20 + 1 {
		check(d)
	}
}

// TestSaturationMonitorSeesClientLateness: a window whose stamped chunks'
// client lateness p99 is over the threshold is saturated, and says so;
// under it, with too few chunks, or with the signal off, it is not.
func TestSaturationMonitorSeesClientLateness(t *testing.T) {
	var p Progress
	m := &SaturationMonitor{p: &p, procs: 2, cpu: func() (time.Duration, bool) { return 0, true }}
	t0 := time.Unix(1000, 0)
	p.lateness.add(time.Hour) // before the monitor started: not in any window
	m.start(t0)
	add := func(d time.Duration, n int) {
		for range n {
			p.lateness.add(d)
		}
	}

	// 1,000 chunks, the slowest 0.5% 50 ms late: p99 about 200 µs.
	add(200*time.Microsecond, 995)
	add(50*time.Millisecond, 5)
	s := m.Tick(t0.Add(time.Second))
	if s.Saturated || s.LatenessP99 < 190*time.Microsecond || s.LatenessP99 > 200*time.Microsecond {
		t.Errorf("healthy window: p99 %v, %+v", s.LatenessP99, s)
	}
	// Too few chunks for a p99.
	add(time.Second, minLatenessSamples-1)
	if s := m.Tick(t0.Add(2 * time.Second)); s.Saturated || s.LatenessP99 != -1 {
		t.Errorf("sparse window: %+v", s)
	}
	// No stamps at all.
	if s := m.Tick(t0.Add(3 * time.Second)); s.Saturated || s.LatenessP99 != -1 {
		t.Errorf("window without stamps: %+v", s)
	}
	// 3% of 1,000 chunks 12.3 ms late: p99 12.06 ms (its bucket's lower
	// bound), against 5 ms.
	add(200*time.Microsecond, 970)
	add(12300*time.Microsecond, 30)
	s = m.Tick(t0.Add(4 * time.Second))
	if !s.Saturated || s.LatenessP99 != 12058624*time.Nanosecond ||
		!strings.Contains(s.Reason, "client lateness p99 12.06ms (threshold 5ms)") {
		t.Errorf("late window: p99 %v, %+v", s.LatenessP99, s)
	}
	if sat, windows, worst := m.Summary(); sat != 1 || windows != 4 || !strings.Contains(worst, "client lateness") {
		t.Errorf("summary %d of %d, worst %q", sat, windows, worst)
	}

	// A threshold of 20 ms lets it pass; a negative one turns it off.
	for _, th := range []time.Duration{20 * time.Millisecond, -1} {
		m := &SaturationMonitor{p: &p, procs: 2, th: SaturationThresholds{Lateness: th},
			cpu: func() (time.Duration, bool) { return 0, true }}
		m.start(t0)
		add(12300*time.Microsecond, 100)
		if s := m.Tick(t0.Add(time.Second)); s.Saturated || s.LatenessP99 != 12058624*time.Nanosecond {
			t.Errorf("threshold %v: %+v", th, s)
		}
	}
}

// TestRecordAndSummaryClientLateness: a response's stamped chunks give
// the record its client_lateness_max_s and the summary its two
// distributions, whatever the request's outcome; without stamps they
// are null.
func TestRecordAndSummaryClientLateness(t *testing.T) {
	send := time.Now()
	resp := backends.Response{Send: send, First: send.Add(time.Millisecond), Last: send.Add(3 * time.Millisecond),
		Done: send.Add(3 * time.Millisecond), Outcome: backends.OutcomeOK, TextChunks: 3, OutputTokens: 3, PromptTokens: 1,
		Lateness:       []time.Duration{100 * time.Microsecond, 300 * time.Microsecond, -200 * time.Microsecond},
		ServerLate:     []time.Duration{10 * time.Microsecond, 20 * time.Microsecond, 30 * time.Microsecond, 40 * time.Microsecond},
		LatenessSkewed: 1}
	rec := newRecord(send, &resp)
	if rec.ClientLatenessMax == nil || *rec.ClientLatenessMax != 300e-6 {
		t.Fatalf("client_lateness_max_s %v, want 0.0003", rec.ClientLatenessMax)
	}
	// The record keeps its own copy: the response is reused.
	resp.Lateness[0], resp.ServerLate[0] = time.Hour, time.Hour
	line, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(line, []byte(`"client_lateness_max_s":0.0003`)) {
		t.Errorf("record line: %s", line)
	}
	failed := newRecord(send, &backends.Response{Send: send, Done: send, Outcome: backends.OutcomeStreamError,
		Lateness: []time.Duration{time.Millisecond}, ServerLate: []time.Duration{time.Millisecond}})
	plain := newRecord(send, &backends.Response{Send: send, Done: send, Outcome: backends.OutcomeOK})
	line, _ = json.Marshal(&plain)
	if plain.ClientLatenessMax != nil || !bytes.Contains(line, []byte(`"client_lateness_max_s":null`)) {
		t.Errorf("unstamped record: %s", line)
	}

	if late, timer, _ := summaryOf([]*Record{&plain}).ClientLateness(); late != nil || timer != nil {
		t.Errorf("no stamps: lateness %+v, timer %+v; want null", late, timer)
	}
	late, timer, skewed := summaryOf([]*Record{&rec, &failed, &plain}).ClientLateness()
	if late == nil || late.Count != 4 || late.Min != -200e-6 || late.Max != 1e-3 || math.Abs(late.Mean-300e-6) > 1e-12 {
		t.Errorf("lateness %+v, want 4 chunks, -0.2 to 1 ms, mean 0.3 ms", late)
	}
	if timer == nil || timer.Count != 5 || timer.Min != 10e-6 || timer.Max != 1e-3 || timer.Percentiles["p50"] == 0 {
		t.Errorf("timer lateness %+v, want 5 chunks, 10 µs to 1 ms", timer)
	}
	if skewed != 1 {
		t.Errorf("%d skewed stamps, want 1", skewed)
	}
	// Latency distributions are not touched.
	if d := summaryOf([]*Record{&rec}).Distributions(); d["lateness"] != nil || len(d) != 6 {
		t.Errorf("latency_s gained entries: %v", d)
	}
}

// TestRunnerCountsClientLateness: against a simulator that stamps its
// chunks, the runner's records carry each text chunk's lateness, and the
// progress histogram the saturation monitor reads has every one of them.
func TestRunnerCountsClientLateness(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL, cfg.StampChunks = time.Millisecond, 100*time.Microsecond, true
	b := simBackend(t, cfg)
	sc := scenario.Scenario{Name: "test", NumSamples: 6, Concurrency: 2, MaxTokens: 20, IgnoreEOS: true}
	c := &collector{}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim",
		Prompts: TextPrompts("a"), Sinks: []Sink{c}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for _, rec := range c.recs {
		if !rec.OK() || len(rec.lateness) != rec.TextChunks || len(rec.serverLate) != rec.TextChunks || rec.ClientLatenessMax == nil {
			t.Fatalf("record %d: %s, %d text chunks, %d latenesses, %d timer latenesses, max %v", rec.Seq, rec.Outcome,
				rec.TextChunks, len(rec.lateness), len(rec.serverLate), rec.ClientLatenessMax)
		}
		chunks += rec.TextChunks
	}
	var hist uint64
	for _, n := range r.Progress.lateness.read(nil) {
		hist += n
	}
	if chunks != 6*20 || hist != uint64(chunks) || r.Progress.ClockSkewed.Load() != 0 {
		t.Errorf("%d text chunks, %d in the progress histogram, %d skewed; want %d, %d, 0", chunks, hist, r.Progress.ClockSkewed.Load(), 6*20, 6*20)
	}
}

// TestExactLatenessDecidesOverItsEstimates: Go's scheduling latency and
// the run-queue wait estimate the client's lateness; in a window with
// enough stamped chunks, the measured lateness decides instead. A burst
// of runnable goroutines (scheduling latency p99 well over 2 ms) with
// every chunk read within 0.2 ms is not saturation; the same burst
// without stamps is.
func TestExactLatenessDecidesOverItsEstimates(t *testing.T) {
	var p Progress
	// Go's scheduling latencies, cumulative: every window gains 100
	// samples at 10 ms.
	buckets := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	var ticks, runs uint64
	m := &SaturationMonitor{p: &p, procs: 2, cpu: func() (time.Duration, bool) { return 0, true },
		sched: func() ([]uint64, []float64, bool) {
			ticks++
			return []uint64{0, 0, ticks * 100, 0}, buckets, true
		},
		// 1 ms of run-queue wait per run, 100 runs a window.
		runq: func() (time.Duration, uint64, bool) {
			runs += 100
			return time.Duration(runs) * time.Millisecond, runs, true
		}}
	t0 := time.Unix(1000, 0)
	m.start(t0)

	// No stamps: the estimates decide.
	s := m.Tick(t0.Add(time.Second))
	if !s.Saturated || !strings.Contains(s.Reason, "Go scheduling latency") || !strings.Contains(s.Reason, "waited") {
		t.Errorf("window without stamps: %+v", s)
	}
	// 1,000 stamped chunks read within 0.2 ms: not saturated, though
	// the estimates are as high.
	for range 1000 {
		p.lateness.ObserveLateness(200 * time.Microsecond)
	}
	s = m.Tick(t0.Add(2 * time.Second))
	if s.Saturated || s.SchedP99 <= 2*time.Millisecond || s.RunqueueWait <= 200*time.Microsecond {
		t.Errorf("window with prompt stamped chunks: %+v", s)
	}
	// With the lateness signal off, the estimates decide again.
	m.th.Lateness = -1
	for range 1000 {
		p.lateness.ObserveLateness(200 * time.Microsecond)
	}
	if s := m.Tick(t0.Add(3 * time.Second)); !s.Saturated {
		t.Errorf("lateness signal off: %+v", s)
	}
}

// TestRunnerCountsLatenessWhileStreaming: each stamped chunk reaches the
// saturation monitor's histogram as it arrives, not when its request
// ends, so a window sees the streams still in flight (a long answer's
// lateness would otherwise land in the window where it ends, or after
// the run's last window).
func TestRunnerCountsLatenessWhileStreaming(t *testing.T) {
	const chunks = 5
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range chunks {
			fmt.Fprintf(w, "%s%d 0\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d\"}}]}\n\n", backends.StampPrefix, time.Now().UnixNano(), i)
			w.(http.Flusher).Flush()
		}
		select { // the stream stays open until the test has looked
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: srv.URL, API: backends.APIChat, VLLM: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := scenario.Scenario{Name: "test", NumSamples: 1, Concurrency: 1, MaxTokens: 20}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "m", Prompts: TextPrompts("a")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Run(t.Context()); done <- err }()
	var seen uint64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		seen = 0
		for _, n := range r.Progress.lateness.read(nil) {
			seen += n
		}
		if seen == chunks {
			break
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if seen != chunks {
		t.Errorf("the histogram had %d of the %d chunks streamed so far while the request was in flight", seen, chunks)
	}
}
