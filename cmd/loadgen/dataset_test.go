package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/report"
)

// requestLog serves target (a simulator) through a reverse proxy on
// 127.0.0.1 that keeps the JSON body of every POST.
type requestLog struct {
	mu     sync.Mutex
	bodies []map[string]any
}

func logRequests(t *testing.T, target string) (*requestLog, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l := &requestLog{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Inference requests only: not the /tokenize probe that sizes
		// synthetic prompts.
		if r.Method == http.MethodPost && !strings.HasSuffix(r.URL.Path, "/tokenize") {
			body, _ := io.ReadAll(r.Body)
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("request body %s: %v", body, err)
			}
			l.mu.Lock()
			l.bodies = append(l.bodies, m)
			l.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return l, srv.URL
}

func (l *requestLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bodies
}

func msg(role, content string) map[string]any {
	return map[string]any{"role": role, "content": content}
}

// TestDatasetShapes runs each dataset shape against the simulator, one
// request at a time: the log names the detected format, chat and ShareGPT
// rows reach the server as chat messages with their system prompt (the
// completions API gets them as text), and each row's output length
// (its own output_len, or its recorded answer's) is the request's
// max_tokens, generated exactly with --ignore-eos and kept in the record.
func TestDatasetShapes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The first answer has 7 words: 7 × 1.3 = 9.1, 9 tokens.
	sharegpt := write("sharegpt.json", `[
  {"id": "split", "conversations": [{"from": "gpt", "value": "...and that is all."}]},
  {"id": "a", "conversations": [
    {"from": "system", "value": "You answer in one line."},
    {"from": "human", "value": "What does a watt measure?"},
    {"from": "gpt", "value": "Power: one joule of energy per second."},
    {"from": "human", "value": "And a joule?"}]},
  {"id": "b", "output_len": 5, "conversations": [
    {"from": "human", "value": "Name a unit of energy."},
    {"from": "gpt", "value": "The joule."}]}
]
`)
	chat := write("chat.jsonl", `{"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}], "max_tokens": 4}`+"\n")
	prompts := write("prompts.jsonl", `{"prompt": "Count to three.", "output_len": 6}`+"\n"+`{"prompt": "Say hi."}`+"\n")
	simURL := startSim(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond})

	for _, tc := range []struct {
		name, dataset, format string
		args                  []string
		log                   string
		messages              [][]any // per request; nil: completions
		prompts               []string
		maxTokens             []int
	}{
		{name: "ShareGPT JSON array", dataset: sharegpt, format: "sharegpt",
			log: "2 prompts, format sharegpt (auto-detected), 1 conversations without a user turn skipped; max_tokens per prompt: 1 from the rows' output_len, max_tokens or output_tokens, " +
				"1 from the first recorded answer (estimated at 1.3 tokens per word)",
			messages: [][]any{
				{msg("system", "You answer in one line."), msg("user", "What does a watt measure?")},
				{msg("user", "Name a unit of energy.")},
			}, maxTokens: []int{9, 5}},
		{name: "chat JSONL", dataset: chat, format: "chat",
			log:      "1 prompts, format chat (auto-detected); max_tokens per prompt: 1 from the rows' output_len, max_tokens or output_tokens",
			messages: [][]any{{msg("system", "Be terse."), msg("user", "Hi")}}, maxTokens: []int{4}},
		{name: "chat on the completions API", dataset: chat, format: "chat", args: []string{"--api", "completions"},
			log:     "the completions API gets each conversation's messages as plain text",
			prompts: []string{"Be terse.\n\nHi"}, maxTokens: []int{4}},
		{name: "prompts, forced", dataset: prompts, format: "prompt", args: []string{"--dataset-format", "prompt"},
			log:      "2 prompts, format prompt (as dataset_format says); max_tokens per prompt: 1 from the rows' output_len, max_tokens or output_tokens, 1 the scenario's 20",
			messages: [][]any{{msg("user", "Count to three.")}, {msg("user", "Say hi.")}}, maxTokens: []int{6, 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requests, endpoint := logRequests(t, simURL)
			out := t.TempDir()
			n := len(tc.maxTokens)
			res := runCLI(t, append([]string{"--endpoint", endpoint, "--energy", "none", "--idle-baseline", "0s", "--dataset", tc.dataset,
				"--num-samples", strconv.Itoa(n), "--max-tokens", "20", "--min-tokens", "10", "--ignore-eos", "--out", out}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tc.log) {
				t.Errorf("log does not say %q:\n%s", tc.log, res.stderr)
			}
			bodies := requests.all()
			if len(bodies) != n {
				t.Fatalf("%d requests, want %d", len(bodies), n)
			}
			for i, body := range bodies {
				if tc.messages != nil && !reflect.DeepEqual(body["messages"], tc.messages[i]) {
					t.Errorf("request %d sent messages %v, want %v", i, body["messages"], tc.messages[i])
				}
				if tc.prompts != nil && body["prompt"] != tc.prompts[i] {
					t.Errorf("request %d sent prompt %q, want %q", i, body["prompt"], tc.prompts[i])
				}
				if want := float64(tc.maxTokens[i]); body["max_tokens"] != want || body["min_tokens"] != min(want, 10) {
					t.Errorf("request %d sent max_tokens %v, min_tokens %v; want %v, %v", i, body["max_tokens"], body["min_tokens"], want, min(want, 10))
				}
			}
			for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
				want := tc.maxTokens[r.PromptIndex]
				if !r.OK() || r.OutputTokens == nil || *r.OutputTokens != want || r.MaxTokens == nil || *r.MaxTokens != want {
					t.Errorf("prompt %d: %s, %v output tokens, max_tokens %v; want %d", r.PromptIndex, r.Outcome, deref(r.OutputTokens), deref(r.MaxTokens), want)
				}
			}
			data, err := os.ReadFile(runFile(t, out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var rep report.Report
			if err := json.Unmarshal(data, &rep); err != nil || rep.Settings.DatasetFormat != tc.format {
				t.Errorf("report.json dataset_format %q (%v), want %q", rep.Settings.DatasetFormat, err, tc.format)
			}
		})
	}

	// A row of the wrong shape is an input error naming the file, the row
	// and its line.
	res := runCLI(t, "--endpoint", simURL, "--energy", "none", "--dataset", sharegpt, "--dataset-format", "chat", "--num-samples", "2")
	if want := "loadgen: " + sharegpt + ":2: row 1: conversations[0] has no role\n"; res.code != exitUsage || !strings.HasSuffix(res.stderr, want) {
		t.Errorf("forced chat on ShareGPT rows: exit %d, stderr %q; want %d and a last line %q", res.code, res.stderr, exitUsage, want)
	}
}
