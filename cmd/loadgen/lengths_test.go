package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// recordingProxy serves target through a reverse proxy that keeps the
// body of every generation request; with noTokenize, it answers
// POST /tokenize 404, as servers without one do.
type recordingProxy struct {
	URL    string
	mu     sync.Mutex
	bodies []map[string]any
}

func newRecordingProxy(t *testing.T, target string, noTokenize bool) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if noTokenize && r.URL.Path == "/tokenize" {
			http.Error(w, `{"detail":"Not Found"}`, http.StatusNotFound)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/completions") {
			body, _ := io.ReadAll(r.Body)
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			p.mu.Lock()
			p.bodies = append(p.bodies, m)
			p.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// simTokens asks the simulator's /tokenize for text's ids.
func simTokens(t *testing.T, simURL, text string) []int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"prompt": text})
	resp, err := http.Post(simURL+"/tokenize", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Tokens []int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Tokens
}

func readReportSettings(t *testing.T, out string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(runFile(t, out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Settings map[string]any }
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Settings
}

// TestExactLengthsAndSharedPrefixSim: against the simulator, synthetic
// prompts with a shared prefix and drawn input and output lengths come
// out exactly as asked: each record's prompt_tokens is its
// prompt_tokens_target and its output_tokens its max_tokens, and the
// prompts the server received fall into 3 groups whose first 64 tokens
// are the same within a group and differ between groups.
func TestExactLengthsAndSharedPrefixSim(t *testing.T) {
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = time.Millisecond, time.Millisecond
	simURL := startSim(t, cfg)
	proxy := newRecordingProxy(t, simURL, false)
	out := t.TempDir()
	const n, prefix, groups = 24, 64, 3
	res := runCLI(t, "--endpoint", proxy.URL+"/v1", "--dataset", fmt.Sprintf("synthetic:n=%d,prefix=%d,groups=%d", n, prefix, groups),
		"--input-len", "lognormal:mean=150,std=60,min=16,max=400", "--output-len", "uniform:min=2,max=6",
		"--num-samples", fmt.Sprint(n), "-c", "4", "--energy", "none", "--idle-baseline", "0s", "--metrics-addr", "", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{"made exact with the server's POST /tokenize", fmt.Sprintf("%d of %d exactly their target length", n, n),
		"output_len uniform:min=2,max=6"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	if len(recs) != n {
		t.Fatalf("%d records", len(recs))
	}
	for _, r := range recs {
		if r.PromptTokensTarget == nil || r.PromptTokens == nil || *r.PromptTokens != *r.PromptTokensTarget || *r.PromptTokensTarget < prefix+16 {
			t.Errorf("record %d: prompt_tokens %v, target %v", r.Seq, deref(r.PromptTokens), deref(r.PromptTokensTarget))
		}
		if r.OutputTokens == nil || r.MaxTokens == nil || *r.OutputTokens != *r.MaxTokens || *r.MaxTokens < 2 || *r.MaxTokens > 6 {
			t.Errorf("record %d: output_tokens %v, max_tokens %v", r.Seq, deref(r.OutputTokens), deref(r.MaxTokens))
		}
	}
	// At the server: each request's first 64 tokens are one of 3 heads.
	heads := map[string]int{}
	var next [][]int
	for _, b := range proxy.bodies {
		if b["min_tokens"] != b["max_tokens"] {
			t.Errorf("sent max_tokens %v, min_tokens %v", b["max_tokens"], b["min_tokens"])
		}
		msgs, _ := b["messages"].([]any)
		if len(msgs) != 1 {
			t.Fatalf("sent messages %v", b["messages"])
		}
		ids := simTokens(t, simURL, msgs[0].(map[string]any)["content"].(string))
		heads[fmt.Sprint(ids[:prefix])]++
		next = append(next, ids[:prefix+1])
	}
	if len(heads) != groups {
		t.Errorf("%d distinct %d-token prefixes at the server, want %d", len(heads), prefix, groups)
	}
	for h, count := range heads {
		if count != n/groups {
			t.Errorf("a prefix is shared by %d prompts, want %d: %.40s", count, n/groups, h)
		}
	}
	distinct := 0
	for i := range next {
		if !slices.ContainsFunc(next[:i], func(o []int) bool { return slices.Equal(o, next[i]) }) {
			distinct++
		}
	}
	if distinct <= groups {
		t.Errorf("the prompts share more than their %d-token prefixes (%d distinct %d-token heads)", prefix, distinct, prefix+1)
	}
	s := readReportSettings(t, out)
	if s["prompt_tokenizer"] != "server" || s["input_len"] != "lognormal:mean=150,std=60,min=16,max=400" || s["output_len"] != "uniform:min=2,max=6" {
		t.Errorf("report.json settings: prompt_tokenizer %v, input_len %v, output_len %v", s["prompt_tokenizer"], s["input_len"], s["output_len"])
	}
}

// TestExactLengthsPyTorch: against the PyTorch reference server's tiny
// model (a byte-level tokenizer: a prompt of 40 tokens is 40 bytes), the
// records' prompt_tokens are their targets and the answers exactly
// --output-len long.
func TestExactLengthsPyTorch(t *testing.T) {
	offlineHF(t)
	base, _ := startTorchServer(t, "--tiny", "--device", "cpu")
	out := t.TempDir()
	res := runCLI(t, "--backend", "pytorch", "--endpoint", base, "--dataset", "synthetic:n=8,prefix=12,groups=2",
		"--input-len", "uniform:min=20,max=60", "--output-len", "4", "--num-samples", "8",
		"--energy", "none", "--metrics-addr", "", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "8 of 8 exactly their target length") || !strings.Contains(res.stderr, "max_new_tokens and min_new_tokens") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
		if r.PromptTokensTarget == nil || r.PromptTokens == nil || *r.PromptTokens != *r.PromptTokensTarget ||
			*r.PromptTokensTarget < 32 || *r.PromptTokensTarget > 72 {
			t.Errorf("record %d: prompt_tokens %v, target %v", r.Seq, deref(r.PromptTokens), deref(r.PromptTokensTarget))
		}
		if r.OutputTokens == nil || *r.OutputTokens != 4 || r.MaxTokens == nil || *r.MaxTokens != 4 {
			t.Errorf("record %d: output_tokens %v, max_tokens %v", r.Seq, deref(r.OutputTokens), deref(r.MaxTokens))
		}
	}
}

// TestEstimatedLengthsWarn: a server without POST /tokenize, and no
// --tokenizer: the lengths are estimated, the log says how far off they
// may be, and the records keep the targets to compare; output_len on
// --backend openai is a cap only, and says so. A --tokenizer that does
// not exist is a usage error.
func TestEstimatedLengthsWarn(t *testing.T) {
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = time.Millisecond, time.Millisecond
	proxy := newRecordingProxy(t, startSim(t, cfg), true)
	out := t.TempDir()
	args := []string{"--backend", "openai", "--endpoint", proxy.URL, "--dataset", "synthetic:n=10", "--input-len", "200",
		"--output-len", "3", "--num-samples", "10", "--energy", "none", "--idle-baseline", "0s", "--metrics-addr", "", "--out", out}
	res := runCLI(t, args...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{"lengths are estimated at 1.3 tokens per word", "15 % under to 25 % over", "--tokenizer PATH",
		"caps only: --backend openai"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	off := 0
	for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
		if r.PromptTokensTarget == nil || *r.PromptTokensTarget != 200 || r.PromptTokens == nil {
			t.Fatalf("record %d: prompt_tokens %v, target %v", r.Seq, deref(r.PromptTokens), deref(r.PromptTokensTarget))
		}
		if *r.PromptTokens != 200 {
			off++
		}
	}
	if off == 0 {
		t.Error("every estimated prompt is exactly 200 tokens at the simulator: the estimate is not what is tested")
	}
	if s := readReportSettings(t, out); s["prompt_tokenizer"] != "estimate" {
		t.Errorf("report.json prompt_tokenizer %v", s["prompt_tokenizer"])
	}

	bad := runCLI(t, append(args, "--tokenizer", "/nonexistent/tokenizer.json", "--out", t.TempDir())...)
	if bad.code != exitUsage || !strings.Contains(bad.stderr, "/nonexistent/tokenizer.json: no such file") {
		t.Errorf("--tokenizer missing: exit %d, stderr %s", bad.code, bad.stderr)
	}
	badLen := runCLI(t, append(args, "--input-len", "lognormal:mean=5,sd=1", "--out", t.TempDir())...)
	if badLen.code != exitUsage || !strings.Contains(badLen.stderr, `--input-len "lognormal:mean=5,sd=1": unknown parameter "sd"`) {
		t.Errorf("--input-len bad: exit %d, stderr %s", badLen.code, badLen.stderr)
	}
}
