package sim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// tokenizeResult is the part of a /tokenize answer the tests read.
type tokenizeResult struct {
	Count       int      `json:"count"`
	MaxModelLen int      `json:"max_model_len"`
	Tokens      []int    `json:"tokens"`
	TokenStrs   []string `json:"token_strs"`
}

// TestTokenizeMatchesUsage checks the simulator's promise: /tokenize
// counts a prompt, or a chat's messages, exactly as usage does.
func TestTokenizeMatchesUsage(t *testing.T) {
	srv := startSim(t, Config{TTFT: 0, ITL: 0})
	texts := []string{"a", "four", "five!", "Ünïcödé tëxt, 12 characters… and more", strings.Repeat("word ", 257), "日本語のテキスト"}
	for i, text := range texts {
		var tok tokenizeResult
		resp := postJSON(t, srv.URL+"/tokenize", map[string]any{"model": "tokenwatt-sim", "prompt": text}, &tok)
		if resp.StatusCode != http.StatusOK || tok.Count != len(tok.Tokens) || tok.MaxModelLen <= 0 {
			t.Fatalf("tokenize %q: status %d, %+v", text, resp.StatusCode, tok)
		}
		var out struct{ Usage usage }
		postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"prompt": text, "max_tokens": 1}), &out)
		if out.Usage.PromptTokens != tok.Count {
			t.Errorf("prompt %d: /tokenize counts %d, usage %d", i, tok.Count, out.Usage.PromptTokens)
		}

		// The same text as chat messages: a system prompt, and the user
		// turn as content parts.
		half := len([]rune(text)) / 2
		messages := []map[string]any{
			{"role": "system", "content": string([]rune(text)[:half])},
			{"role": "user", "content": []map[string]any{{"type": "text", "text": string([]rune(text)[half:])}}},
		}
		var chatTok tokenizeResult
		postJSON(t, srv.URL+"/tokenize", map[string]any{"messages": messages, "add_generation_prompt": true}, &chatTok)
		postJSON(t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"messages": messages, "max_tokens": 1}), &out)
		if out.Usage.PromptTokens != chatTok.Count || chatTok.Count != tok.Count {
			t.Errorf("chat %d: /tokenize counts %d, usage %d, as a prompt %d", i, chatTok.Count, out.Usage.PromptTokens, tok.Count)
		}
	}
}

func TestTokenizeIDs(t *testing.T) {
	srv := startSim(t, Config{})
	tokens := func(text string) tokenizeResult {
		var tok tokenizeResult
		postJSON(t, srv.URL+"/tokenize", map[string]any{"prompt": text, "return_token_strs": true}, &tok)
		return tok
	}
	prefix := strings.Repeat("abcd", 10) // 10 tokens
	a, b := tokens(prefix+" one suffix"), tokens(prefix+" another, longer suffix")
	if !slices.Equal(a.Tokens[:10], b.Tokens[:10]) || slices.Equal(a.Tokens[10:12], b.Tokens[10:12]) {
		t.Errorf("shared 40-character prefix: ids %v and %v", a.Tokens, b.Tokens)
	}
	if got := strings.Join(a.TokenStrs, ""); got != prefix+" one suffix" || a.TokenStrs[10] != " one" {
		t.Errorf("token strings %q", a.TokenStrs)
	}
	if again := tokens(prefix + " one suffix"); !slices.Equal(again.Tokens, a.Tokens) {
		t.Error("the same text tokenizes differently")
	}
	if plain := postJSON(t, srv.URL+"/tokenize", map[string]any{"prompt": "x"}, nil); plain.StatusCode != http.StatusOK {
		t.Errorf("status %d", plain.StatusCode)
	}
}

func TestTokenizeErrors(t *testing.T) {
	srv := startSim(t, Config{})
	for body, want := range map[string]int{
		`{"model": "other", "prompt": "x"}`:              http.StatusNotFound,
		`{"prompt": "x", "messages": []}`:                http.StatusBadRequest,
		`{"model": "tokenwatt-sim"}`:                     http.StatusBadRequest,
		`{"messages": [{"role": "user", "content": 3}]}`: http.StatusBadRequest,
		`not json`: http.StatusBadRequest,
		fmt.Sprintf(`{"prompt": %q}`, strings.Repeat("x", 4000)):              http.StatusOK,
		`{"messages": [{"role": "user", "content": null}, {"role": "user"}]}`: http.StatusOK,
	} {
		if resp := postJSON(t, srv.URL+"/tokenize", body, nil); resp.StatusCode != want {
			t.Errorf("%.60s: status %d, want %d", body, resp.StatusCode, want)
		}
	}
	resp, err := http.Get(srv.URL + "/tokenize")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /tokenize: status %d", resp.StatusCode)
	}
}
