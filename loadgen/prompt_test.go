package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// bodyRecorder is a reverse proxy on 127.0.0.1 that keeps the JSON body
// of every generation request before passing it on.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func recordBodies(t *testing.T, target string) (*bodyRecorder, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &bodyRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("request body %s: %v", body, err)
			}
			rec.mu.Lock()
			rec.bodies = append(rec.bodies, m)
			rec.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// TestRunnerSendsEachPromptsShape: a prompt's messages reach the server as
// chat messages (system prompt kept), and its own output length replaces
// the scenario's max_tokens (min_tokens lowered to it): with ignore_eos
// the simulator generates exactly that many tokens, and the record says
// what was asked.
func TestRunnerSendsEachPromptsShape(t *testing.T) {
	srv, err := sim.Start(context.Background(), "127.0.0.1:0", sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bodies, endpoint := recordBodies(t, srv.URL)
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: endpoint, API: backends.APIChat, VLLM: true})
	if err != nil {
		t.Fatal(err)
	}
	chat := []backends.Message{{Role: "system", Content: "Be terse."}, {Role: "user", Content: "Capital of France?"}}
	prompts := []Prompt{
		{Text: "plain"},
		{Text: "Be terse.\n\nCapital of France?", Messages: chat, MaxTokens: 3},
		{Text: "long", MaxTokens: 40},
	}
	sc := scenario.Scenario{Name: "test", NumSamples: 3, Concurrency: 1, MaxTokens: 20, MinTokens: 10, IgnoreEOS: true}
	c := &collector{}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim", Prompts: prompts, Sinks: []Sink{c}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Run(context.Background()); err != nil || res.OK != 3 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	sort.Slice(c.recs, func(i, j int) bool { return c.recs[i].Seq < c.recs[j].Seq })
	for i, want := range []struct{ maxTokens, minTokens int }{{20, 10}, {3, 3}, {40, 10}} {
		rec := c.recs[i]
		if rec.OutputTokens == nil || *rec.OutputTokens != want.maxTokens || rec.MaxTokens == nil || *rec.MaxTokens != want.maxTokens {
			t.Errorf("prompt %d: %v output tokens, max_tokens %v recorded; want %d and %d", i, derefInt(rec.OutputTokens), derefInt(rec.MaxTokens),
				want.maxTokens, want.maxTokens)
		}
		body := bodies.bodies[i]
		if body["max_tokens"] != float64(want.maxTokens) || body["min_tokens"] != float64(want.minTokens) {
			t.Errorf("prompt %d: sent max_tokens %v, min_tokens %v; want %d, %d", i, body["max_tokens"], body["min_tokens"],
				want.maxTokens, want.minTokens)
		}
	}
	wantMessages := [][]any{
		{map[string]any{"role": "user", "content": "plain"}},
		{map[string]any{"role": "system", "content": "Be terse."}, map[string]any{"role": "user", "content": "Capital of France?"}},
		{map[string]any{"role": "user", "content": "long"}},
	}
	for i, want := range wantMessages {
		if got := bodies.bodies[i]["messages"]; !reflect.DeepEqual(got, want) {
			t.Errorf("prompt %d sent messages %v, want %v", i, got, want)
		}
	}
}

func derefInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestRunnerExactLengths: a prompt's own min_tokens (output_len) makes
// its output exact without ignore_eos, and its input target is recorded
// beside the prompt_tokens the server reports.
func TestRunnerExactLengths(t *testing.T) {
	srv, err := sim.Start(context.Background(), "127.0.0.1:0", sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	bodies, endpoint := recordBodies(t, srv.URL)
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: endpoint, API: backends.APICompletions, VLLM: true})
	if err != nil {
		t.Fatal(err)
	}
	prompts := []Prompt{
		{Text: "twelve chars", MaxTokens: 7, MinTokens: 7, InputTokens: 3},
		{Text: "plain"},
	}
	sc := scenario.Scenario{Name: "test", NumSamples: 2, Concurrency: 1, MaxTokens: 20}
	c := &collector{}
	r, err := NewRunner(RunConfig{RunID: "r1", Scenario: &sc, Backend: b, Model: "tokenwatt-sim", Prompts: prompts, Sinks: []Sink{c}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := r.Run(context.Background()); err != nil || res.OK != 2 {
		t.Fatalf("Run: %+v, %v", res, err)
	}
	sort.Slice(c.recs, func(i, j int) bool { return c.recs[i].Seq < c.recs[j].Seq })
	exact, plain := c.recs[0], c.recs[1]
	if derefInt(exact.OutputTokens) != 7 || derefInt(exact.MaxTokens) != 7 || bodies.bodies[0]["min_tokens"] != float64(7) {
		t.Errorf("exact: output %v, max_tokens %v, sent min_tokens %v", derefInt(exact.OutputTokens), derefInt(exact.MaxTokens), bodies.bodies[0]["min_tokens"])
	}
	if derefInt(exact.PromptTokensTarget) != 3 || derefInt(exact.PromptTokens) != 3 {
		t.Errorf("exact: prompt_tokens_target %v, prompt_tokens %v", derefInt(exact.PromptTokensTarget), derefInt(exact.PromptTokens))
	}
	if plain.PromptTokensTarget != nil || bodies.bodies[1]["min_tokens"] != nil {
		t.Errorf("plain: prompt_tokens_target %v, min_tokens %v", derefInt(plain.PromptTokensTarget), bodies.bodies[1]["min_tokens"])
	}
}
