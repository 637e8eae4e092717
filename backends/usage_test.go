package backends

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A server's usage counts that cannot be true (beyond MaxUsageTokens, or
// more output than max_tokens allows) are not believed: the output count
// falls back to the text chunks, the prompt count to unknown, and
// TokensWarning says why (issue 16, defect 12: usage of 2^63-1 made
// total_tokens -6 and the throughput negative).
func TestImplausibleUsageIsNotBelieved(t *testing.T) {
	const huge = "9223372036854775807"
	tests := []struct {
		name                string
		prompt, completion  string
		maxTokens           int
		wantPrompt, wantOut int
		wantSource          string
		wantWarn            []string // substrings; none: no warning
	}{
		{name: "plausible", prompt: "5", completion: "3", maxTokens: 16,
			wantPrompt: 5, wantOut: 3, wantSource: TokensFromUsage},
		{name: "at max_tokens' slack", prompt: "5", completion: "33", maxTokens: 16,
			wantPrompt: 5, wantOut: 33, wantSource: TokensFromUsage},
		{name: "int64 max both", prompt: huge, completion: huge, maxTokens: 16,
			wantPrompt: -1, wantOut: 3, wantSource: TokensFromChunks,
			wantWarn: []string{"usage prompt_tokens " + huge + " is more than 100000000", "usage completion_tokens " + huge + " is more than 100000000"}},
		{name: "above max_tokens", prompt: "5", completion: "34", maxTokens: 16,
			wantPrompt: 5, wantOut: 3, wantSource: TokensFromChunks,
			wantWarn: []string{"usage completion_tokens 34 is more than max_tokens 16 allows (33)"}},
		{name: "no max_tokens: only the hard cap", prompt: "5", completion: "100000000", maxTokens: 0,
			wantPrompt: 5, wantOut: 100000000, wantSource: TokensFromUsage},
		{name: "no max_tokens, above the hard cap", prompt: "100000001", completion: "100000001", maxTokens: 0,
			wantPrompt: -1, wantOut: 3, wantSource: TokensFromChunks,
			wantWarn: []string{"prompt_tokens 100000001", "completion_tokens 100000001"}},
	}
	check := func(t *testing.T, resp *Response, wantPrompt, wantOut int, wantSource string, wantWarn []string) {
		t.Helper()
		if resp.Outcome != OutcomeOK || resp.PromptTokens != wantPrompt || resp.OutputTokens != wantOut || resp.TokensSource != wantSource {
			t.Errorf("outcome %s prompt %d output %d source %q, want ok %d %d %q", resp.Outcome,
				resp.PromptTokens, resp.OutputTokens, resp.TokensSource, wantPrompt, wantOut, wantSource)
		}
		if len(wantWarn) == 0 && resp.TokensWarning != "" {
			t.Errorf("warning %q, want none", resp.TokensWarning)
		}
		for _, w := range wantWarn {
			if !strings.Contains(resp.TokensWarning, w) {
				t.Errorf("warning %q does not contain %q", resp.TokensWarning, w)
			}
		}
	}
	for _, tt := range tests {
		t.Run("openai/"+tt.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				writeEvents(w, textChunk("a"), textChunk("b"), textChunk("c"),
					`{`+chunkID+`,"choices":[],"usage":{"prompt_tokens":`+tt.prompt+`,"completion_tokens":`+tt.completion+`}}`, "[DONE]")
			})
			c := newTestClient(t, srv.URL, OpenAIConfig{})
			resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: tt.maxTokens, Stream: true})
			check(t, resp, tt.wantPrompt, tt.wantOut, tt.wantSource, tt.wantWarn)
		})
		t.Run("pytorch/"+tt.name, func(t *testing.T) {
			c := torchServer(t, 200, "", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-ndjson")
				io.WriteString(w, `{"text": "a"}`+"\n"+`{"text": "b"}`+"\n"+`{"text": "c"}`+"\n")
				fmt.Fprintf(w, `{"usage": {"prompt_tokens": %s, "completion_tokens": %s}}`+"\n", tt.prompt, tt.completion)
			})
			var resp Response
			resp.Reset()
			c.Do(context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: tt.maxTokens, Stream: true}, &resp)
			check(t, &resp, tt.wantPrompt, tt.wantOut, tt.wantSource, tt.wantWarn)
		})
	}
	// A whole (non-streamed) response counts as one chunk.
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"Hi"}}],"usage":{"prompt_tokens":`+huge+`,"completion_tokens":`+huge+`}}`)
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 16})
	check(t, resp, -1, 1, TokensFromChunks, []string{"prompt_tokens " + huge, "completion_tokens " + huge})
}
