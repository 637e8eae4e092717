package loadgen

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// conversations are three chat conversations of 3, 2 and 1 turns.
func conversations() []Prompt {
	u := func(s string) backends.Message { return backends.Message{Role: "user", Content: s} }
	a := func(s string) backends.Message { return backends.Message{Role: "assistant", Content: s} }
	convs := [][]Turn{
		{{Messages: []backends.Message{{Role: "system", Content: "terse"}, u("q1")}, MaxTokens: 3}, {Messages: []backends.Message{a("r1"), u("q2")}}, {Messages: []backends.Message{a("r2"), u("q3")}, MaxTokens: 4}},
		{{Messages: []backends.Message{u("p1")}}, {Messages: []backends.Message{a("s1"), u("p2")}}},
		{{Messages: []backends.Message{u("only")}}},
	}
	prompts := make([]Prompt, len(convs))
	for i, turns := range convs {
		prompts[i] = Prompt{Text: flatten(turns[0].Messages), Messages: turns[0].Messages, MaxTokens: turns[0].MaxTokens, Turns: turns}
	}
	return prompts
}

// runConversations runs sc over conversations() against a simulator and
// returns the records by conversation, each in turn order.
func runConversations(t *testing.T, cfg sim.Config, sc scenario.Scenario) (*Result, map[int64][]Record, error) {
	t.Helper()
	b := simBackend(t, cfg)
	sc.Name, sc.MultiTurn = "test", true
	c := &collector{}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim", Prompts: conversations(), Sinks: []Sink{c}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background())
	byConv := map[int64][]Record{}
	seqs := make([]int64, 0, len(c.recs))
	for _, rec := range c.recs {
		if rec.ConversationID == nil || rec.Turn == nil {
			t.Fatalf("record %d has conversation_id %v, turn %v", rec.Seq, rec.ConversationID, rec.Turn)
		}
		byConv[*rec.ConversationID] = append(byConv[*rec.ConversationID], rec)
		seqs = append(seqs, rec.Seq)
	}
	slices.Sort(seqs)
	wantSeqs(t, seqs, len(c.recs))
	for conv, recs := range byConv {
		slices.SortFunc(recs, func(a, b Record) int { return *a.Turn - *b.Turn })
		for k, rec := range recs {
			if *rec.Turn != k+1 || rec.PromptIndex != int(conv%3) {
				t.Fatalf("conversation %d: record %d is turn %d of prompt %d, want turn %d of prompt %d", conv, k, *rec.Turn, rec.PromptIndex, k+1, conv%3)
			}
		}
	}
	return res, byConv, err
}

// TestConversationsClosedLoop runs whole conversations on two workers:
// num_samples counts turns, each conversation's turns come in order with
// their own max_tokens, each later turn is due the think time after the
// previous one ended, and the server's history makes prompts grow.
func TestConversationsClosedLoop(t *testing.T) {
	const think = 20 * time.Millisecond
	res, byConv, err := runConversations(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond},
		scenario.Scenario{NumSamples: 14, Concurrency: 2, MaxTokens: 5, IgnoreEOS: true, ThinkTime: think})
	if err != nil || res.StopReason != StopCount || res.Requests != 14 || res.OK != 14 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	wantTurns := []int{3, 2, 1}
	var complete int
	for conv, recs := range byConv {
		if len(recs) == wantTurns[conv%3] {
			complete++
		}
		for k, rec := range recs {
			want := []int{3, 5, 4}[k]
			if conv%3 != 0 {
				want = 5
			}
			if rec.MaxTokens == nil || *rec.MaxTokens != want {
				t.Errorf("conversation %d turn %d: max_tokens %v, want %d", conv, k+1, derefInt(rec.MaxTokens), want)
			}
			if k == 0 {
				if rec.ScheduleLag != 0 {
					t.Errorf("conversation %d: first turn's schedule lag %v, want 0 (closed loop)", conv, rec.ScheduleLag)
				}
				continue
			}
			prev := recs[k-1]
			if gap := rec.SchedUnix - prev.DoneUnix; math.Abs(gap-think.Seconds()) > 1e-5 {
				t.Errorf("conversation %d turn %d due %.6fs after the previous turn ended, want the think time %v", conv, k+1, gap, think)
			}
			if *rec.PromptTokens <= *prev.PromptTokens {
				t.Errorf("conversation %d turn %d: %d prompt tokens, not more than turn %d's %d", conv, k+1, *rec.PromptTokens, k, *prev.PromptTokens)
			}
		}
	}
	// 14 turns: at least 6 whole conversations (3+2+1 twice), the last
	// ones possibly cut by the count.
	if complete < 6 {
		t.Errorf("%d complete conversations, want at least 6: %v", complete, byConv)
	}
}

// TestConversationStopsAtAFailedTurn: a failed turn ends its
// conversation (no answer to go on from); the next conversation starts.
func TestConversationStopsAtAFailedTurn(t *testing.T) {
	res, byConv, err := runConversations(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond, Fail500: 0.3, Seed: 3},
		scenario.Scenario{NumSamples: 30, Concurrency: 1, MaxTokens: 3, History: scenario.HistoryDataset})
	if err != nil || res.Requests != 30 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	cut := 0
	last := int64(len(byConv) - 1) // may be cut by the count
	for conv, recs := range byConv {
		for k, rec := range recs[:len(recs)-1] {
			if !rec.OK() {
				t.Errorf("conversation %d went on after its failed turn %d", conv, k+1)
			}
		}
		if n := len(recs); n < []int{3, 2, 1}[conv%3] && conv != last {
			cut++
			if recs[n-1].OK() {
				t.Errorf("conversation %d ended after turn %d, which succeeded", conv, n)
			}
		}
	}
	if cut == 0 || res.OK == 30 {
		t.Errorf("no conversation was cut by a failure (%d ok of 30); the test proves nothing", res.OK)
	}
}

// TestConversationsOpenLoop starts conversations on the open-loop
// schedule (rate counts conversations) with at most two in progress at
// once; their later turns follow their own think time.
func TestConversationsOpenLoop(t *testing.T) {
	const rate, think = 50.0, 5 * time.Millisecond
	res, byConv, err := runConversations(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond},
		scenario.Scenario{NumSamples: 12, Rate: rate, Concurrency: 2, MaxTokens: 3, ThinkTime: think,
			ThinkTimeDistribution: scenario.ThinkExponential})
	if err != nil || res.StopReason != StopCount || res.Requests != 12 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	first := byConv[0][0].SchedUnix
	type span struct{ from, to float64 }
	var spans []span
	for conv, recs := range byConv {
		// Conversation k was due at k/rate: the schedule counts starts.
		if off := recs[0].SchedUnix - first; math.Abs(off-float64(conv)/rate) > 1e-5 {
			t.Errorf("conversation %d due at %.6fs, want %.6fs", conv, off, float64(conv)/rate)
		}
		for k := 1; k < len(recs); k++ {
			if recs[k].SchedUnix < recs[k-1].DoneUnix-1e-6 {
				t.Errorf("conversation %d turn %d due before turn %d ended", conv, k+1, k)
			}
		}
		spans = append(spans, span{recs[0].SendUnix, recs[len(recs)-1].DoneUnix})
	}
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if o.from <= s.from && s.from < o.to {
				n++
			}
		}
		if n > 2 {
			t.Errorf("%d conversations in progress at %.6f, want at most the cap of 2", n, s.from)
		}
	}
}
