package loadgen

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// TestShardSchedulesPartitionTheUnsharded is the property that makes
// sharding sound: for every arrival process, and for a ramp and stages,
// shard i's j-th arrival is the unsharded schedule's arrival i + j·N from
// the same seed, so the N shards' schedules together are exactly the
// unsharded one, each arrival in one shard.
func TestShardSchedulesPartitionTheUnsharded(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 9).Draw(t, "shards")
		seed := rapid.Int64().Draw(t, "seed")
		sc := &scenario.Scenario{
			Arrival:    rapid.SampledFrom([]string{scenario.ArrivalConstant, scenario.ArrivalPoisson, scenario.ArrivalGamma}).Draw(t, "arrival"),
			Burstiness: rapid.Float64Range(0.1, 8).Draw(t, "burstiness"),
			Seed:       &seed,
		}
		rate := rapid.Float64Range(0.5, 5000).Draw(t, "rate")
		switch rapid.IntRange(0, 2).Draw(t, "load") {
		case 0:
			sc.Rate = rate
		case 1:
			sc.Ramp = &scenario.Ramp{From: rapid.Float64Range(0, 100).Draw(t, "from"), To: rate, Duration: 10 * time.Second}
		case 2:
			sc.Stages = []scenario.Stage{{Duration: 5 * time.Second, Rate: rate}, {Duration: time.Second, Concurrency: 2 * n}, {Duration: 5 * time.Second, Rate: rate / 3}}
		}
		const arrivals = 400
		full := scheduleOf(t, sc, Shard{}) // the unsharded run's
		var all [][]time.Duration
		for k := range full {
			all = append(all, take(full[k], arrivals))
		}
		for i := range n {
			shard := Shard{Index: i, Count: n}
			own := scheduleOf(t, sc, shard)
			for k := range own {
				got := take(own[k], arrivals/n)
				for j, off := range got {
					if want := all[k][i+j*n]; off != want {
						t.Fatalf("shard %s, schedule %d: arrival %d at %v, want the unsharded arrival %d's %v", shard, k, j, off, i+j*n, want)
					}
				}
			}
		}
	})
}

// scheduleOf is a scenario's schedules as a runner (of shard) draws them:
// its open loop's, or each open-loop stage's.
func scheduleOf(t *rapid.T, sc *scenario.Scenario, shard Shard) []Schedule {
	// A client that is never asked anything: the runner only draws its
	// schedules here.
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: "http://127.0.0.1:1/v1", API: backends.APIChat})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(RunConfig{Scenario: sc, Shard: shard, Backend: b, Prompts: TextPrompts("a")})
	if err != nil {
		t.Fatal(err)
	}
	if r.stages == nil {
		return []Schedule{r.schedule}
	}
	var out []Schedule
	for _, p := range r.stages.plan {
		if p.open {
			out = append(out, p.sched)
		}
	}
	return out
}

func take(s Schedule, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = s.Next()
	}
	return out
}

func TestParseShard(t *testing.T) {
	for _, c := range []struct {
		spec, env string
		want      Shard
		err       string
	}{
		{spec: "0/4", want: Shard{0, 4}},
		{spec: " 3/4 ", want: Shard{3, 4}},
		{spec: "/4", env: "2", want: Shard{2, 4}},
		{spec: "1/4", env: "2", want: Shard{1, 4}}, // the flag's own index wins
		{spec: "0/1", want: Shard{0, 1}},
		{spec: "4/4", err: "from 0 to 3"},
		{spec: "/4", env: "4", err: "(JOB_COMPLETION_INDEX) must be"},
		{spec: "/4", err: "JOB_COMPLETION_INDEX"},
		{spec: "-1/4", err: "from 0 to 3"},
		{spec: "1/0", err: "from 1 to"},
		{spec: "4", err: "INDEX/COUNT"},
		{spec: "a/b", err: "shard count"},
	} {
		got, err := ParseShard(c.spec, c.env)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseShard(%q, %q): error %v, want one with %q", c.spec, c.env, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseShard(%q, %q) = %v, %v; want %v", c.spec, c.env, got, err, c.want)
		}
	}
	if s := (Shard{1, 4}).String(); s != "1/4" {
		t.Errorf("String %q", s)
	}
	if s := (Shard{0, 1}).String(); s != "" {
		t.Errorf("one shard: String %q, want none", s)
	}
}

// TestShareSplitsEvenly: the shards' shares of counts and concurrencies
// add up to the scenario's, none differing by more than one, and their
// rates to its rates.
func TestShareSplitsEvenly(t *testing.T) {
	sc := &scenario.Scenario{NumSamples: 1001, Warmup: 3, Concurrency: 10,
		Stages: []scenario.Stage{{Duration: time.Second, Rate: 30, Concurrency: 7}, {Duration: time.Second, Concurrency: 5}}}
	const n = 4
	var samples, warm, conc, cap0, conc1 []int
	var rate float64
	for i := range n {
		s, err := Shard{i, n}.Share(sc)
		if err != nil {
			t.Fatal(err)
		}
		samples, warm, conc = append(samples, s.NumSamples), append(warm, s.Warmup), append(conc, s.Concurrency)
		cap0, conc1 = append(cap0, s.Stages[0].Concurrency), append(conc1, s.Stages[1].Concurrency)
		rate += s.Stages[0].Rate
	}
	for _, c := range []struct {
		name  string
		parts []int
		total int
	}{{"num_samples", samples, 1001}, {"warmup", warm, 3}, {"concurrency", conc, 10}, {"stage 1 cap", cap0, 7}, {"stage 2 concurrency", conc1, 5}} {
		sum := 0
		for _, p := range c.parts {
			sum += p
		}
		if sum != c.total || slices.Max(c.parts)-slices.Min(c.parts) > 1 || !slices.IsSortedFunc(c.parts, func(a, b int) int { return b - a }) {
			t.Errorf("%s: shares %v, want %d split evenly, the first shards getting the rest", c.name, c.parts, c.total)
		}
	}
	if rate < 29.999 || rate > 30.001 {
		t.Errorf("stage rates add up to %v, want 30", rate)
	}
	for _, c := range []struct {
		sc   scenario.Scenario
		want string
	}{
		{scenario.Scenario{Concurrency: 3}, "concurrency 3 is less than the 4 shards"},
		{scenario.Scenario{}, "concurrency 1 is less than the 4 shards"},
		{scenario.Scenario{Rate: 10, Concurrency: 2}, "in-flight cap (concurrency) 2"},
		{scenario.Scenario{Concurrency: 8, NumSamples: 3}, "num_samples 3"},
		{scenario.Scenario{Stages: []scenario.Stage{{Duration: time.Second, Concurrency: 2}}}, "stage 1's concurrency 2"},
	} {
		if _, err := (Shard{0, 4}).Share(&c.sc); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.sc, err, c.want)
		}
	}
}

// TestShardedRunnersSendTheUnshardedRequests: three runners, shards of
// one open-loop scenario and of one closed-loop one, against a real
// simulator; together they send the unsharded run's requests, each once,
// with its prompt and (open loop) its intended send time, and each waits
// for the common start.
func TestShardedRunnersSendTheUnshardedRequests(t *testing.T) {
	b := simBackend(t, sim.Config{Model: "tokenwatt-sim", TTFT: time.Millisecond, ITL: time.Millisecond})
	prompts := TextPrompts("p0", "p1", "p2", "p3", "p4", "p5", "p6")
	seed := int64(7)
	for _, sc := range []scenario.Scenario{
		{Name: "open", Rate: 400, Arrival: scenario.ArrivalPoisson, NumSamples: 50, Seed: &seed, Concurrency: 30, MaxTokens: 2},
		{Name: "closed", Concurrency: 5, NumSamples: 40, Warmup: 2, MaxTokens: 2},
	} {
		t.Run(sc.Name, func(t *testing.T) {
			const n = 3
			at := time.Now().Add(300 * time.Millisecond)
			type shardRun struct {
				res  *Result
				recs []Record
			}
			runs := make([]shardRun, n)
			done := make(chan error, n)
			for i := range n {
				go func() {
					c := &collector{}
					r, err := NewRunner(RunConfig{RunID: "shards", Scenario: &sc, Shard: Shard{i, n}, StartAt: at, Backend: b,
						Model: "tokenwatt-sim", Prompts: prompts, Sinks: []Sink{c}})
					if err != nil {
						done <- err
						return
					}
					res, err := r.Run(context.Background())
					runs[i] = shardRun{res, c.recs}
					done <- err
				}()
			}
			for range n {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			var seqs []int64
			for i, run := range runs {
				if run.res.LateStart != 0 {
					t.Logf("shard %d started %v late (a busy machine)", i, run.res.LateStart)
				}
				for _, rec := range run.recs {
					if rec.Seq%n != int64(i) || rec.PromptIndex != int(rec.Seq%int64(len(prompts))) {
						t.Errorf("shard %d sent request %d with prompt %d; want requests %d mod %d, each with prompt seq mod %d",
							i, rec.Seq, rec.PromptIndex, i, n, len(prompts))
					}
					send := unixTime(rec.SendUnix)
					if send.Before(at) {
						t.Errorf("shard %d sent request %d at %v, before the start %v", i, rec.Seq, send, at)
					}
					seqs = append(seqs, rec.Seq)
				}
			}
			slices.Sort(seqs)
			wantSeqs(t, seqs, sc.NumSamples)
			if sc.Rate == 0 {
				return
			}
			// Open loop: each request's intended send time is the
			// unsharded schedule's, from the common start.
			full, err := NewSchedule(sc.Arrival, sc.Rate, sc.Burstiness, seed)
			if err != nil {
				t.Fatal(err)
			}
			want := take(full, sc.NumSamples)
			for i, run := range runs {
				for _, rec := range run.recs {
					got := unixTime(rec.SchedUnix).Sub(at)
					if d := got - want[rec.Seq]; d < -2*time.Microsecond || d > 2*time.Microsecond {
						t.Errorf("shard %d: request %d intended at start+%v, want the unsharded start+%v", i, rec.Seq, got, want[rec.Seq])
					}
				}
			}
		})
	}
}

func ExampleShard_Share() {
	sc := &scenario.Scenario{Rate: 100, Concurrency: 10, NumSamples: 1000}
	for i := range 3 {
		s, _ := Shard{i, 3}.Share(sc)
		fmt.Printf("shard %d/3: %.4g req/s, cap %d, %d requests\n", i, s.Rate, s.Concurrency, s.NumSamples)
	}
	// Output:
	// shard 0/3: 33.33 req/s, cap 4, 334 requests
	// shard 1/3: 33.33 req/s, cap 3, 333 requests
	// shard 2/3: 33.33 req/s, cap 3, 333 requests
}

// TestShardedConversations: the shards of a multi-turn run split its
// conversations, conversation k going to shard k mod N with the prompt the
// unsharded run gives it, whole; num_samples (turns) splits evenly, and
// every turn's seq is the shard's.
func TestShardedConversations(t *testing.T) {
	b := simBackend(t, sim.Config{Model: "tokenwatt-sim", TTFT: time.Millisecond, ITL: time.Millisecond})
	const n = 2
	for _, sc := range []scenario.Scenario{
		{Name: "closed", MultiTurn: true, NumSamples: 21, Concurrency: 4, MaxTokens: 2},
		{Name: "open", MultiTurn: true, NumSamples: 21, Rate: 200, MaxTokens: 2},
	} {
		t.Run(sc.Name, func(t *testing.T) {
			var seqs []int64
			for i := range n {
				c := &collector{}
				r, err := NewRunner(RunConfig{RunID: "conv", Scenario: &sc, Shard: Shard{i, n}, Backend: b, Model: "tokenwatt-sim",
					Prompts: conversations(), Sinks: []Sink{c}})
				if err != nil {
					t.Fatal(err)
				}
				res, err := r.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if want := []int{11, 10}[i]; res.Requests != want {
					t.Errorf("shard %d sent %d turns, want %d", i, res.Requests, want)
				}
				turns := map[int64][]int{}
				for _, rec := range c.recs {
					conv := *rec.ConversationID
					if conv%n != int64(i) || rec.PromptIndex != int(conv%3) || rec.Seq%n != int64(i) {
						t.Errorf("shard %d: turn %d (seq %d) of conversation %d with prompt %d", i, *rec.Turn, rec.Seq, conv, rec.PromptIndex)
					}
					turns[conv] = append(turns[conv], *rec.Turn)
					seqs = append(seqs, rec.Seq)
				}
				for conv, ts := range turns {
					slices.Sort(ts)
					for k, turn := range ts {
						if turn != k+1 {
							t.Errorf("shard %d: conversation %d has turns %v", i, conv, ts)
							break
						}
					}
				}
			}
			slices.Sort(seqs)
			wantSeqs(t, seqs, sc.NumSamples) // the unsharded run's
		})
	}
}
