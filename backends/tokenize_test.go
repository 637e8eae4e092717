package backends

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// TestTokenizeAgainstSim: the OpenAI client's Tokenize, on either API,
// counts what the simulator's usage then reports for the same text.
func TestTokenizeAgainstSim(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 0, 0
	srv, err := sim.Start(t.Context(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	text := "Energy per token depends on what the server is asked to do. Ünïcödé too."
	for _, api := range []API{APIChat, APICompletions} {
		c, err := NewOpenAI(OpenAIConfig{Endpoint: srv.URL + "/v1", API: api, VLLM: true})
		if err != nil {
			t.Fatal(err)
		}
		ids, err := c.Tokenize(t.Context(), "tokenwatt-sim", text, api == APIChat)
		if err != nil {
			t.Fatalf("%s: %v", api, err)
		}
		var resp Response
		resp.Reset()
		c.Do(t.Context(), &Request{Model: "tokenwatt-sim", Prompt: text, MaxTokens: 2, Stream: true}, &resp)
		if resp.Outcome != OutcomeOK || resp.PromptTokens != len(ids) {
			t.Errorf("%s: %d token ids, usage prompt_tokens %d (%s %s)", api, len(ids), resp.PromptTokens, resp.Outcome, resp.Error)
		}
		if !c.Simulated() {
			t.Errorf("%s: the simulator's header on /tokenize went unnoticed", api)
		}
	}
}

// TestTokenizeRequests checks what is sent (vLLM's request shapes, at the
// server's root) and how answers are read.
func TestTokenizeRequests(t *testing.T) {
	var got []map[string]any
	var paths []string
	answer := `{"count": 3, "max_model_len": 4096, "tokens": [1, 2, 3]}`
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		got = append(got, m)
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer srv.Close()
	c, err := NewOpenAI(OpenAIConfig{Endpoint: srv.URL + "/prefix/v1/chat/completions", APIKey: "sk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := c.Tokenize(t.Context(), "m", "hi", true); err != nil || len(ids) != 3 {
		t.Fatalf("chat: %v, %v", ids, err)
	}
	if _, err := c.Tokenize(t.Context(), "m", "hi", false); err != nil {
		t.Fatal(err)
	}
	want := []string{"POST /prefix/tokenize Bearer sk-secret", "POST /prefix/tokenize Bearer sk-secret"}
	if strings.Join(paths, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", paths, want)
	}
	chat, _ := json.Marshal(got[0])
	prompt, _ := json.Marshal(got[1])
	if string(chat) != `{"add_generation_prompt":true,"messages":[{"content":"hi","role":"user"}],"model":"m"}` ||
		string(prompt) != `{"add_special_tokens":true,"model":"m","prompt":"hi"}` {
		t.Errorf("bodies %s and %s", chat, prompt)
	}

	p, err := NewPyTorch(PyTorchConfig{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := p.Tokenize(t.Context(), "tiny", "hi", true); err != nil || len(ids) != 3 {
		t.Errorf("pytorch: %v, %v", ids, err)
	}
	if body, _ := json.Marshal(got[2]); string(body) != `{"add_special_tokens":true,"model":"tiny","prompt":"hi"}` || !strings.HasPrefix(paths[2], "POST /tokenize ") {
		t.Errorf("pytorch sent %s to %s", body, paths[2])
	}

	for _, tt := range []struct {
		status   int
		answer   string
		noTok    bool
		contains string
	}{
		{http.StatusNotFound, `{"detail":"Not Found"}`, true, "HTTP 404"},
		{http.StatusMethodNotAllowed, ``, true, "HTTP 405"},
		{http.StatusBadRequest, `{"error":{"message":"bad prompt sk-secret","type":"BadRequestError","code":400}}`, false, "bad prompt [api key]"},
		{http.StatusOK, `{"count": 2}`, false, "not a tokenize answer"},
		{http.StatusOK, `<html>`, false, "not a tokenize answer"},
		{http.StatusOK, `{"count": 2, "tokens": [1]}`, false, "count 2 but 1 token ids"},
	} {
		status, answer = tt.status, tt.answer
		_, err := c.Tokenize(t.Context(), "m", "hi", false)
		if err == nil || errors.Is(err, ErrNoTokenize) != tt.noTok || !strings.Contains(err.Error(), tt.contains) || strings.Contains(err.Error(), "sk-secret") {
			t.Errorf("HTTP %d %s: error %v", tt.status, tt.answer, err)
		}
	}
	status, answer = http.StatusNotFound, `{"code": 404, "type": "ResourceNotFoundException", "message": "Requested resource is not found: /tokenize"}`
	if _, err := p.Tokenize(t.Context(), "tiny", "hi", false); !errors.Is(err, ErrNoTokenize) {
		t.Errorf("pytorch on a TorchServe without /tokenize: %v", err)
	}
}
