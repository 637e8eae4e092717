package backends

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestKeepText checks that Request.KeepText brings back the answer's
// text, and only then: the chat API's content (escapes decoded,
// reasoning left out), the completions API's text, a whole response's
// message, the PyTorch server's lines and plain chunks.
func TestKeepText(t *testing.T) {
	reasoning := `{` + chunkID + `,"choices":[{"index":0,"delta":{"reasoning_content":"let me think"},"logprobs":null,"finish_reason":null}]}`
	completion := func(s string) string {
		return `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"` + s + `","logprobs":null,"finish_reason":null}]}`
	}
	for _, tc := range []struct {
		name   string
		api    API
		stream bool
		serve  func(w http.ResponseWriter)
		want   string
	}{
		{name: "chat stream", api: APIChat, stream: true, serve: func(w http.ResponseWriter) {
			startStream(w)
			writeEvents(w, roleChunk(), reasoning, textChunk("Hello"), textChunk(`, \"w\u00f6rld\"\n`), textChunk("¡ok!"),
				finishChunk(), usageChunk(3, 4), "[DONE]")
		}, want: "Hello, \"wörld\"\n¡ok!"},
		{name: "completions stream", api: APICompletions, stream: true, serve: func(w http.ResponseWriter) {
			startStream(w)
			writeEvents(w, completion("one"), completion(""), completion(" two\\t"), usageChunk(3, 2), "[DONE]")
		}, want: "one two\t"},
		{name: "chat whole", api: APIChat, serve: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"All \"of\" it.","reasoning_content":"hidden"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":3}}`)
		}, want: `All "of" it.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { tc.serve(w) })
			c := newTestClient(t, srv.URL, OpenAIConfig{API: tc.api})
			for _, keep := range []bool{false, true} {
				resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", Stream: tc.stream, KeepText: keep})
				if resp.Outcome != OutcomeOK {
					t.Fatalf("keep %v: %s: %s", keep, resp.Outcome, resp.Error)
				}
				want := ""
				if keep {
					want = tc.want
				}
				if string(resp.Text) != want || resp.TextTruncated {
					t.Errorf("keep %v: text %q (cut %v), want %q", keep, resp.Text, resp.TextTruncated, want)
				}
			}
		})
	}

	// Reset empties the text for the next request.
	var resp Response
	resp.Text = append(resp.Text, "old"...)
	resp.TextTruncated = true
	resp.Reset()
	if len(resp.Text) != 0 || resp.TextTruncated {
		t.Errorf("after Reset: text %q, cut %v", resp.Text, resp.TextTruncated)
	}

	t.Run("pytorch", func(t *testing.T) {
		for _, tc := range []struct {
			contentType string
			lines       []string
		}{
			{"application/x-ndjson", []string{`{"text": "a \u00e9"}` + "\n", `{"text": " b"}` + "\n", `{"usage": {"prompt_tokens": 2, "completion_tokens": 2}}` + "\n"}},
			{"text/plain", []string{"a é", " b"}},
		} {
			c := torchServer(t, 200, "", streamLines(tc.contentType, 0, tc.lines...))
			var resp Response
			resp.Reset()
			c.Do(context.Background(), &Request{Model: "m", Prompt: "hi", Stream: true, KeepText: true}, &resp)
			if resp.Outcome != OutcomeOK || string(resp.Text) != "a é b" {
				t.Errorf("%s: %s %s, text %q, want %q", tc.contentType, resp.Outcome, resp.Error, resp.Text, "a é b")
			}
		}
	})
}

// TestKeepTextIsBounded checks that an answer longer than MaxText keeps
// its first MaxText bytes at most, cut on a character boundary, and says
// it was cut; the request itself still succeeds.
func TestKeepTextIsBounded(t *testing.T) {
	long := strings.Repeat("a", MaxText-1)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		// "é" is two bytes: only one byte of room is left for it.
		// The long answer in four chunks: one event may not exceed
		// MaxStreamLine.
		q := len(long) / 4
		writeEvents(w, roleChunk(), textChunk(long[:q]), textChunk(long[q:2*q]), textChunk(long[2*q:3*q]), textChunk(long[3*q:]),
			textChunk("é"), textChunk("b"), finishChunk(), usageChunk(1, 6), "[DONE]")
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", Stream: true, KeepText: true})
	if resp.Outcome != OutcomeOK || resp.TextChunks != 6 {
		t.Fatalf("%s: %s, %d text chunks", resp.Outcome, resp.Error, resp.TextChunks)
	}
	if string(resp.Text) != long || !resp.TextTruncated || !utf8.Valid(resp.Text) {
		t.Errorf("kept %d bytes (cut %v, valid UTF-8 %v), want the first %d and cut", len(resp.Text), resp.TextTruncated, utf8.Valid(resp.Text), len(long))
	}
	// Reset does not keep such a buffer for the next request.
	resp.Reset()
	if cap(resp.Text) > keptTextCap {
		t.Errorf("Reset kept a text buffer of %d bytes", cap(resp.Text))
	}
}
