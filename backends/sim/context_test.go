package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The simulator checks the context length as vLLM does: a prompt plus
// max_tokens (or min_tokens) beyond Config.MaxModelLen is answered 400,
// which also bounds what one request can make it generate and hold
// (issue 16, defect 11: max_tokens 4.6e18, not streamed, grew to 1.2 GB).
func TestContextLength(t *testing.T) {
	srv := startSim(t, Config{TTFT: time.Millisecond, ITL: time.Millisecond, MaxModelLen: 64})
	post := func(t *testing.T, path string, body map[string]any) (int, map[string]any) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s %s: %v", path, b, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("POST %s %s: decode: %v", path, b, err)
		}
		return resp.StatusCode, out
	}
	message := func(out map[string]any) string {
		e, _ := out["error"].(map[string]any)
		m, _ := e["message"].(string)
		return m
	}
	completion := func(out map[string]any) float64 {
		u, _ := out["usage"].(map[string]any)
		n, _ := u["completion_tokens"].(float64)
		return n
	}

	// "The energy of one token is": 27 characters, 7 tokens; 57 left.
	for _, tc := range []struct {
		name    string
		body    map[string]any
		status  int
		message string
		tokens  float64
	}{
		{"max_tokens 4.6e18", completionBody(map[string]any{"max_tokens": 4600000000000000000}), 400,
			"'max_tokens' or 'max_completion_tokens' is too large: 4600000000000000000. This model's maximum context length is 64 tokens and your request has 7 input tokens", 0},
		{"max_tokens one too many", completionBody(map[string]any{"max_tokens": 58, "ignore_eos": true}), 400, "too large: 58", 0},
		{"max_tokens that fits", completionBody(map[string]any{"max_tokens": 57, "ignore_eos": true}), 200, "", 57},
		{"the default gives way to the context", completionBody(map[string]any{"ignore_eos": true}), 200, "", 57},
		{"min_tokens beyond the context", completionBody(map[string]any{"min_tokens": 1 << 40}), 400,
			"min_tokens must be less than or equal to max_tokens=57", 0},
		{"prompt beyond the context", completionBody(map[string]any{"prompt": strings.Repeat("word ", 60)}), 400,
			"This model's maximum context length is 64 tokens. However, your request has 75 input tokens", 0},
		{"streamed too", completionBody(map[string]any{"max_tokens": 1 << 40, "stream": true}), 400, "too large", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := post(t, "/v1/completions", tc.body)
			if status != tc.status || !strings.Contains(message(out), tc.message) || completion(out) != tc.tokens {
				t.Errorf("%d %q, %v tokens; want %d %q, %v tokens", status, message(out), completion(out), tc.status, tc.message, tc.tokens)
			}
		})
	}

	resp, err := http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			MaxModelLen int `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) != 1 || list.Data[0].MaxModelLen != 64 {
		t.Errorf("model card: %+v (%v), want max_model_len 64", list, err)
	}
}
