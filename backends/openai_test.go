package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

const chunkID = `"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733945600,"model":"m"`

func roleChunk() string {
	return `{` + chunkID + `,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
}

func textChunk(s string) string {
	return `{` + chunkID + `,"choices":[{"index":0,"delta":{"content":"` + s + `"},"logprobs":null,"finish_reason":null}]}`
}

func finishChunk() string {
	return `{` + chunkID + `,"choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}`
}

func usageChunk(prompt, completion int) string {
	return fmt.Sprintf(`{`+chunkID+`,"choices":[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`,
		prompt, prompt+completion, completion)
}

// writeEvents sends each data payload as one SSE event and flushes, so
// each arrives at the client when written.
func writeEvents(w http.ResponseWriter, data ...string) {
	for _, d := range data {
		fmt.Fprintf(w, "data: %s\n\n", d)
		w.(http.Flusher).Flush()
	}
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

func newTestServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func newTestClient(t *testing.T, endpoint string, cfg OpenAIConfig) *OpenAI {
	t.Helper()
	cfg.Endpoint = endpoint
	c, err := NewOpenAI(cfg)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

func do(c *OpenAI, ctx context.Context, req *Request) *Response {
	resp := new(Response)
	resp.Reset()
	c.Do(ctx, req, resp)
	return resp
}

// TestDoStreamTiming checks where each stamp is taken, against the body
// reads that delivered each event rather than against a clock: the server
// writes an event only once the client has read everything before it and
// asks for more, so every event arrives in reads of its own, and the
// client's stamp for it lies between the read that completed it and the
// next read. TTFT is stamped at the first text chunk (not the role chunk),
// ITL gaps are between text chunks (not the empty or finish chunks), and
// t_done at [DONE]. How close the figures come to the server's sleeps is
// TestTimingDoStream's business (TOKENWATT_TIMING=1).
func TestDoStreamTiming(t *testing.T) {
	const ttft, gap = 20 * time.Millisecond, 10 * time.Millisecond
	events := []string{roleChunk(), textChunk("Hello"), textChunk(" wor"), textChunk(""), textChunk("ld"), textChunk("!"),
		finishChunk(), usageChunk(11, 4), "[DONE]"}
	const first, last, done = 1, 5, 8 // indexes in events
	text := []int{1, 2, 4, 5}
	// ends[i]: the body's length once event i is written.
	ends := make([]int64, len(events))
	var total int64
	for i, e := range events {
		total += int64(len(fmt.Sprintf("data: %s\n\n", e)))
		ends[i] = total
	}
	log := &readLog{wants: make(chan int64, 1024)}
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		for i, e := range events {
			switch {
			case i == first:
				time.Sleep(ttft)
			case i > first && i <= last:
				time.Sleep(gap)
			}
			// Wait for the client to have read all before this event.
			for want := int64(0); i > 0 && want < ends[i-1] || i == 0 && want < 0; {
				select {
				case want = <-log.wants:
				case <-r.Context().Done():
					return
				}
			}
			writeEvents(w, e)
		}
	})
	client := &http.Client{Transport: loggingTransport{&http.Transport{}, log}}
	c := newTestClient(t, srv.URL, OpenAIConfig{HTTPClient: client})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", Stream: true})
	after := time.Now()

	if resp.Outcome != OutcomeOK || resp.Error != "" || resp.HTTPStatus != 200 {
		t.Fatalf("outcome=%s status=%d error=%q", resp.Outcome, resp.HTTPStatus, resp.Error)
	}
	if resp.TextChunks != 4 || len(resp.ITL) != 3 {
		t.Fatalf("text chunks=%d ITLs=%d, want 4 and 3", resp.TextChunks, len(resp.ITL))
	}
	if resp.PromptTokens != 11 || resp.OutputTokens != 4 || resp.TokensSource != TokensFromUsage {
		t.Errorf("tokens: prompt=%d output=%d source=%q", resp.PromptTokens, resp.OutputTokens, resp.TokensSource)
	}
	// lo and hi bracket the client's stamp for event i.
	lo := func(i int) time.Time { return log.completing(ends[i]).returned }
	hi := func(i int) time.Time {
		if next, ok := log.after(ends[i]); ok {
			return next.called
		}
		return after
	}
	in := func(name string, got time.Time, i int) {
		t.Helper()
		if got.Before(lo(i)) || got.After(hi(i)) {
			t.Errorf("%s stamped %v after the send; event %d was read between %v and %v", name,
				got.Sub(resp.Send), i, lo(i).Sub(resp.Send), hi(i).Sub(resp.Send))
		}
	}
	in("t_first", resp.First, first)
	in("t_last", resp.Last, last)
	in("t_done", resp.Done, done)
	var sum time.Duration
	for k, d := range resp.ITL {
		a, b := text[k], text[k+1]
		if min, max := lo(b).Sub(hi(a)), hi(b).Sub(lo(a)); d < min || d > max {
			t.Errorf("ITL[%d] = %v, want between %v and %v (text events %d and %d)", k, d, min, max, a, b)
		}
		sum += d
	}
	if sum != resp.Last.Sub(resp.First) {
		t.Errorf("sum of ITLs %v != t_last - t_first %v", sum, resp.Last.Sub(resp.First))
	}
	// The first text chunk was written TTFT after the request arrived,
	// which was after t_send: a floor, whatever the machine's load.
	if got := resp.First.Sub(resp.Send); got < ttft {
		t.Errorf("TTFT = %v, below the server's %v before the first text chunk", got, ttft)
	}
}

// readLog records a response body's reads: when each was called and
// returned, and the body's length read by then.
type readLog struct {
	mu    sync.Mutex
	reads []bodyRead
	wants chan int64 // the length read so far, at each Read call
}

type bodyRead struct {
	called, returned time.Time
	total            int64
}

// completing is the read that brought the body to length n.
func (l *readLog) completing(n int64) bodyRead {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.reads {
		if r.total >= n {
			return r
		}
	}
	return bodyRead{}
}

// after is the read following the one that brought the body to length n.
func (l *readLog) after(n int64) (bodyRead, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range l.reads {
		if r.total >= n && i+1 < len(l.reads) {
			return l.reads[i+1], true
		}
	}
	return bodyRead{}, false
}

type loggedBody struct {
	io.ReadCloser
	log   *readLog
	total int64
}

func (b *loggedBody) Read(p []byte) (int, error) {
	called := time.Now()
	select {
	case b.log.wants <- b.total:
	default:
	}
	n, err := b.ReadCloser.Read(p)
	b.total += int64(n)
	b.log.mu.Lock()
	b.log.reads = append(b.log.reads, bodyRead{called: called, returned: time.Now(), total: b.total})
	b.log.mu.Unlock()
	return n, err
}

// loggingTransport logs the reads of every response body into log.
type loggingTransport struct {
	http.RoundTripper
	log *readLog
}

func (tr loggingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tr.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = &loggedBody{ReadCloser: resp.Body, log: tr.log}
	}
	return resp, err
}

func TestDoStreamTokensFromChunks(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		writeEvents(w, roleChunk(), textChunk("a"), textChunk(""), textChunk("b"), textChunk("c"), finishChunk(), "[DONE]")
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", Stream: true})
	if resp.Outcome != OutcomeOK || resp.TextChunks != 3 || resp.OutputTokens != 3 ||
		resp.TokensSource != TokensFromChunks || resp.PromptTokens != -1 {
		t.Errorf("outcome=%s chunks=%d output=%d source=%q prompt=%d", resp.Outcome, resp.TextChunks,
			resp.OutputTokens, resp.TokensSource, resp.PromptTokens)
	}
}

func TestDoReusesConnection(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		writeEvents(w, textChunk("a"), usageChunk(1, 1), "[DONE]")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	for i := range 3 {
		if resp := do(c, context.Background(), &Request{Prompt: "hi", Stream: true}); resp.Outcome != OutcomeOK {
			t.Fatalf("request %d: %s %s", i, resp.Outcome, resp.Error)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("3 sequential requests opened %d connections, want 1 (kept alive)", conns)
	}
}

func TestDoServerKeepsStreamOpenAfterDone(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		writeEvents(w, textChunk("a"), "[DONE]")
		stall(r)
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Prompt: "x", Stream: true})
	if resp.Outcome != OutcomeOK || resp.Error != "" || resp.Done.Sub(resp.Send) > drainWait {
		t.Errorf("outcome=%s error=%q done after %v", resp.Outcome, resp.Error, resp.Done.Sub(resp.Send))
	}
}

// TestModelsNotesSimulated: the simulator's answer to /v1/models carries
// X-Tokenwatt-Simulated: true, and the client says so; a server without
// the header is not simulated.
func TestModelsNotesSimulated(t *testing.T) {
	if SimulatedHeader != sim.SimulatedHeader {
		t.Fatalf("SimulatedHeader %q, the simulator's %q", SimulatedHeader, sim.SimulatedHeader)
	}
	srv, err := sim.Start(t.Context(), "127.0.0.1:0", sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	plain := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model"}]}`)
	})
	for _, tc := range []struct {
		url       string
		simulated bool
	}{{srv.URL, true}, {plain.URL, false}} {
		c := newTestClient(t, tc.url, OpenAIConfig{VLLM: true})
		if c.Simulated() {
			t.Errorf("%s: simulated before any answer", tc.url)
		}
		if _, err := c.Models(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c.Simulated() != tc.simulated {
			t.Errorf("%s: Simulated() = %v after Models, want %v", tc.url, c.Simulated(), tc.simulated)
		}
	}
}

func TestDoNonStreaming(t *testing.T) {
	tests := []struct {
		name, body     string
		api            API
		chunks         int
		prompt, output int
		source         string
		outcome        Outcome
		errSub         string
		finish, text   string
	}{
		{name: "chat", api: APIChat, body: `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello \"there\"","reasoning_content":null,"tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2,"prompt_tokens_details":null}}`,
			chunks: 1, prompt: 12, output: 2, source: TokensFromUsage, outcome: OutcomeOK, finish: "stop", text: `Hello "there"`},
		{name: "completions", api: APICompletions, body: `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"total_tokens":6,"completion_tokens":1}}`,
			chunks: 1, prompt: 5, output: 1, source: TokensFromUsage, outcome: OutcomeOK, finish: "length", text: " Paris"},
		{name: "empty text, no usage", api: APIChat, body: `{"choices":[{"message":{"role":"assistant","content":""}}]}`,
			chunks: 0, prompt: -1, output: 0, source: TokensFromChunks, outcome: OutcomeOK},
		{name: "malformed", api: APIChat, body: `{"choices":[`, chunks: 0, prompt: -1, output: 0, source: TokensFromChunks,
			outcome: OutcomeStreamError, errSub: "malformed response body"},
		{name: "error in a 200 body", api: APIChat, body: `{"object":"error","message":"engine dead","code":500}`, chunks: 0, prompt: -1, output: 0,
			source: TokensFromChunks, outcome: OutcomeStreamError, errSub: "server error in response body: engine dead"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tt.body)
			})
			c := newTestClient(t, srv.URL, OpenAIConfig{API: tt.api})
			resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", KeepText: true})
			if resp.Outcome != tt.outcome || resp.TextChunks != tt.chunks || resp.PromptTokens != tt.prompt ||
				resp.OutputTokens != tt.output || resp.TokensSource != tt.source || !strings.Contains(resp.Error, tt.errSub) {
				t.Fatalf("outcome=%s chunks=%d prompt=%d output=%d source=%q error=%q", resp.Outcome, resp.TextChunks,
					resp.PromptTokens, resp.OutputTokens, resp.TokensSource, resp.Error)
			}
			if resp.FinishReason != tt.finish || string(resp.Text) != tt.text {
				t.Errorf("finish reason %q, text %q; want %q, %q", resp.FinishReason, resp.Text, tt.finish, tt.text)
			}
			if bare := do(c, context.Background(), &Request{Model: "m", Prompt: "hi"}); bare.FinishReason != tt.finish || bare.Text != nil {
				t.Errorf("without KeepText: finish reason %q, text %q; want %q and none", bare.FinishReason, bare.Text, tt.finish)
			}
			if tt.outcome != OutcomeOK {
				return
			}
			if resp.Last.IsZero() || resp.Last != resp.Done || resp.Last.Before(resp.Send) || len(resp.ITL) != 0 {
				t.Errorf("timings: send=%v last=%v done=%v ITLs=%d", resp.Send, resp.Last, resp.Done, len(resp.ITL))
			}
			// A whole response has no first-token time: TTFT, ITL and
			// TPOT are not measured.
			if !resp.First.IsZero() {
				t.Errorf("first=%v with %d text chunks, want none (not streamed)", resp.First, tt.chunks)
			}
		})
	}
}

func TestDoRequestBody(t *testing.T) {
	temp, seed := 0.7, int64(42)
	full := Request{Model: "org/model", Prompt: "Say \"hi\"\n\tand\x01 é \xff", MaxTokens: 128, MinTokens: 16,
		IgnoreEOS: true, Temperature: &temp, Seed: &seed, Stream: true}
	tests := []struct {
		name   string
		cfg    OpenAIConfig
		req    Request
		path   string
		accept string
		auth   string
		want   map[string]any
	}{
		{name: "chat, vLLM, streaming", cfg: OpenAIConfig{API: APIChat, VLLM: true, APIKey: "sk-test"}, req: full,
			path: "/v1/chat/completions", accept: "text/event-stream", auth: "Bearer sk-test",
			want: map[string]any{
				"model":          "org/model",
				"messages":       []any{map[string]any{"role": "user", "content": "Say \"hi\"\n\tand\x01 é \uFFFD"}},
				"max_tokens":     128.0,
				"min_tokens":     16.0,
				"ignore_eos":     true,
				"temperature":    0.7,
				"seed":           42.0,
				"stream":         true,
				"stream_options": map[string]any{"include_usage": true},
			}},
		{name: "chat, openai: no vLLM extras", cfg: OpenAIConfig{API: APIChat}, req: full,
			path: "/v1/chat/completions", accept: "text/event-stream",
			want: map[string]any{
				"model":          "org/model",
				"messages":       []any{map[string]any{"role": "user", "content": "Say \"hi\"\n\tand\x01 é \uFFFD"}},
				"max_tokens":     128.0,
				"temperature":    0.7,
				"seed":           42.0,
				"stream":         true,
				"stream_options": map[string]any{"include_usage": true},
			}},
		{name: "chat messages: system prompt and turns in order", cfg: OpenAIConfig{API: APIChat, VLLM: true},
			req: Request{Model: "m", Prompt: "ignored by chat", MaxTokens: 7, Messages: []Message{
				{Role: "system", Content: "Be \"terse\"."}, {Role: "user", Content: "Hi\n"}, {Role: "assistant", Content: ""}, {Role: "user", Content: "é\xff"},
			}}, path: "/v1/chat/completions", accept: "application/json",
			want: map[string]any{"model": "m", "max_tokens": 7.0, "stream": false, "messages": []any{
				map[string]any{"role": "system", "content": "Be \"terse\"."},
				map[string]any{"role": "user", "content": "Hi\n"},
				map[string]any{"role": "assistant", "content": ""},
				map[string]any{"role": "user", "content": "é\uFFFD"},
			}}},
		{name: "completions send the prompt, not the messages", cfg: OpenAIConfig{API: APICompletions, VLLM: true},
			req:  Request{Model: "m", Prompt: "Be terse.\n\nHi", Messages: []Message{{Role: "system", Content: "Be terse."}, {Role: "user", Content: "Hi"}}},
			path: "/v1/completions", accept: "application/json",
			want: map[string]any{"model": "m", "prompt": "Be terse.\n\nHi", "stream": false}},
		{name: "completions, non-streaming, defaults", cfg: OpenAIConfig{API: APICompletions, VLLM: true},
			req: Request{Model: "m", Prompt: "The capital of France is"}, path: "/v1/completions", accept: "application/json",
			want: map[string]any{"model": "m", "prompt": "The capital of France is", "stream": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type received struct {
				path, accept, auth, contentType string
				body                            []byte
			}
			got := make(chan received, 1)
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- received{r.URL.Path, r.Header.Get("Accept"), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body}
				if tt.req.Stream {
					startStream(w)
					writeEvents(w, textChunk("x"), "[DONE]")
					return
				}
				io.WriteString(w, `{"choices":[{"text":"x"}]}`)
			})
			c := newTestClient(t, srv.URL, tt.cfg)
			if resp := do(c, context.Background(), &tt.req); resp.Outcome != OutcomeOK {
				t.Fatalf("outcome %s: %s", resp.Outcome, resp.Error)
			}
			r := <-got
			if r.path != tt.path || r.accept != tt.accept || r.auth != tt.auth || r.contentType != "application/json" {
				t.Errorf("path=%q accept=%q auth=%q content-type=%q", r.path, r.accept, r.auth, r.contentType)
			}
			var body map[string]any
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			if !reflect.DeepEqual(body, tt.want) {
				t.Errorf("body\n got %s\nwant %v", r.body, tt.want)
			}
		})
	}
}

// TestDoExtraBody: the extra body's fields follow tokenwatt's own in
// every request, chat and completions, streamed or not; a key tokenwatt
// sets itself is refused, naming the key and the flag to use instead.
func TestDoExtraBody(t *testing.T) {
	extra, err := ParseExtraBody(`{"reasoning_effort":"low","chat_template_kwargs":{"enable_thinking":false},"top_k":20,"x<y":1.50}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, api := range []API{APIChat, APICompletions} {
		for _, stream := range []bool{true, false} {
			got := make(chan []byte, 1)
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				got <- body
				if stream {
					startStream(w)
					writeEvents(w, textChunk("x"), "[DONE]")
					return
				}
				io.WriteString(w, `{"choices":[{"text":"x"}]}`)
			})
			c := newTestClient(t, srv.URL, OpenAIConfig{API: api, VLLM: true, ExtraBody: extra})
			if resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 5, IgnoreEOS: true, Stream: stream}); resp.Outcome != OutcomeOK {
				t.Fatalf("%s stream=%v: outcome %s: %s", api, stream, resp.Outcome, resp.Error)
			}
			body := string(<-got)
			// Numbers go as written, keys in order, after tokenwatt's own.
			if want := `,"ignore_eos":true,"chat_template_kwargs":{"enable_thinking":false},"reasoning_effort":"low","top_k":20,"x<y":1.50}`; !strings.HasSuffix(body, want) {
				t.Errorf("%s stream=%v: body %s, want it to end %s", api, stream, body, want)
			}
		}
	}

	for _, key := range []string{"model", "messages", "prompt", "stream", "stream_options", "max_tokens", "max_completion_tokens",
		"min_tokens", "ignore_eos", "temperature", "seed"} {
		_, err := NewOpenAI(OpenAIConfig{Endpoint: "http://127.0.0.1:1", ExtraBody: ExtraBody{"top_p": 0.9, key: 1}})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("extra body key %q is one tokenwatt sets itself; use ", key)) {
			t.Errorf("extra body key %s: %v", key, err)
		}
	}
	if _, err := NewOpenAI(OpenAIConfig{Endpoint: "http://127.0.0.1:1", ExtraBody: ExtraBody{"f": math.NaN()}}); err == nil ||
		!strings.Contains(err.Error(), `extra body key "f": cannot be sent as JSON`) {
		t.Errorf("NaN: %v", err)
	}
	for _, bad := range []string{``, `null`, `[1]`, `"low"`, `{"a":1} {"b":2}`, `{"a":`} {
		if _, err := ParseExtraBody(bad); err == nil {
			t.Errorf("ParseExtraBody(%q) accepted", bad)
		}
	}
}

// TestDoKeepsTextUpToMaxText: the answer text is kept up to MaxText,
// cut at a UTF-8 boundary, and the cut is noted.
func TestDoKeepsTextUpToMaxText(t *testing.T) {
	// 2,001 bytes: MaxText falls inside an "é" of the 525th piece, the
	// text is cut before it.
	piece := "a" + strings.Repeat("é", 1000)
	n := MaxText/len(piece) + 2
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		startStream(w)
		for range n {
			fmt.Fprintf(w, "data: %s\n\n", textChunk(piece))
		}
		writeEvents(w, `{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`, "[DONE]")
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi", Stream: true, KeepText: true})
	if resp.Outcome != OutcomeOK || resp.TextChunks != n || resp.FinishReason != "length" {
		t.Fatalf("outcome %s, %d chunks, finish %q: %s", resp.Outcome, resp.TextChunks, resp.FinishReason, resp.Error)
	}
	if !resp.TextTruncated || len(resp.Text) != MaxText-1 || !utf8.Valid(resp.Text) || string(resp.Text[:2*len(piece)]) != piece+piece {
		t.Errorf("kept %d bytes (valid UTF-8 %v), truncated %v; want %d and true", len(resp.Text), utf8.Valid(resp.Text), resp.TextTruncated, MaxText-1)
	}
	// A long reason is cut too.
	srv = newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"choices":[{"message":{"content":"x"},"finish_reason":"`+strings.Repeat("ü", 100)+`"}]}`)
	})
	c = newTestClient(t, srv.URL, OpenAIConfig{})
	if resp := do(c, context.Background(), &Request{Model: "m", Prompt: "hi"}); resp.FinishReason != strings.Repeat("ü", MaxFinishReason/2) {
		t.Errorf("long finish reason kept as %q", resp.FinishReason)
	}
}

// TestDoLongerThanTheBuffers: the connection's buffers and the SSE
// reader's are sized for ordinary chunks and prompts; a prompt far longer
// than the write buffer arrives whole, and events longer than the read
// buffers (either side of each size, and of the 32 KiB the buffers once
// were) are assembled whole, the text kept intact, the chunks timed.
func TestDoLongerThanTheBuffers(t *testing.T) {
	prompt := strings.Repeat("a long prompt ", 10000) // 140 KB
	var sizes []int
	for _, n := range []int{sseBufferSize, connBufferSize, 32 << 10} {
		sizes = append(sizes, n-100, n-1, n, n+1, 2*n+1)
	}
	var want strings.Builder
	for i, n := range sizes {
		want.WriteString(strings.Repeat(string(rune('a'+i%26)), n))
	}
	got := make(chan string, 1)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Messages) != 1 {
			got <- fmt.Sprintf("bad body (%v)", err)
		} else {
			got <- body.Messages[0].Content
		}
		startStream(w)
		for i, n := range sizes {
			writeEvents(w, textChunk(strings.Repeat(string(rune('a'+i%26)), n)))
		}
		writeEvents(w, finishChunk(), "[DONE]")
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{API: APIChat})
	resp := do(c, context.Background(), &Request{Model: "m", Prompt: prompt, Stream: true, KeepText: true})
	if p := <-got; p != prompt {
		t.Errorf("the server got a %d-byte prompt, want the %d bytes sent", len(p), len(prompt))
	}
	if resp.Outcome != OutcomeOK || resp.TextChunks != len(sizes) || len(resp.ITL) != len(sizes)-1 {
		t.Fatalf("outcome %s, %d text chunks, %d gaps (want %d chunks): %s", resp.Outcome, resp.TextChunks, len(resp.ITL), len(sizes), resp.Error)
	}
	if string(resp.Text) != want.String() {
		t.Errorf("kept %d bytes of text, want the %d sent", len(resp.Text), want.Len())
	}
}

// bodyCheck is a RoundTripper that, once the real transport has sent a
// request and got its response's headers, records how many bytes the
// request body still holds and what GetBody gives.
type bodyCheck struct {
	http.RoundTripper
	held  []int64
	again []string
}

func (b *bodyCheck) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.RoundTripper.RoundTrip(r)
	held := int64(-1) // not a bytes.Reader in io.NopCloser
	if v := reflect.ValueOf(r.Body); v.Kind() == reflect.Struct && v.NumField() == 1 {
		if br, ok := v.Field(0).Interface().(*bytes.Reader); ok {
			held = br.Size()
		}
	}
	b.held = append(b.held, held)
	again := "GetBody is nil"
	if r.GetBody != nil {
		rc, gerr := r.GetBody()
		if gerr != nil {
			again = gerr.Error()
		} else {
			raw, _ := io.ReadAll(rc)
			again = string(raw)
		}
	}
	b.again = append(b.again, again)
	return resp, err
}

// writeCounter counts the writes to its connection.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestDoLetsGoOfTheSentBody: once a request is sent its body's bytes are
// no longer held (a stream holds its request to the end, and at thousands
// of streams of long prompts the bodies were most of the heap); a short
// request still goes out in one write, headers and body together; and
// GetBody, which net/http uses to send the request again on a kept-alive
// connection the server had closed, gives the same body again.
func TestDoLetsGoOfTheSentBody(t *testing.T) {
	got := make(chan string, 1)
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		got <- string(raw)
		startStream(w)
		writeEvents(w, textChunk("a"), finishChunk(), "[DONE]")
	})
	var writes atomic.Int64
	dial := (&net.Dialer{}).DialContext
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		return writeCounter{Conn: conn, writes: &writes}, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	check := &bodyCheck{RoundTripper: tr}
	c := newTestClient(t, srv.URL, OpenAIConfig{HTTPClient: &http.Client{Transport: check}})
	for _, prompt := range []string{"a short prompt", strings.Repeat("a long prompt ", 5000)} {
		before := writes.Load()
		resp := do(c, context.Background(), &Request{Model: "m", Prompt: prompt, MaxTokens: 4, Stream: true})
		if resp.Outcome != OutcomeOK {
			t.Fatalf("outcome %s: %s", resp.Outcome, resp.Error)
		}
		sent := <-got
		if n := writes.Load() - before; len(prompt) < 100 && n != 1 {
			t.Errorf("a %d-byte request went out in %d writes, want 1", len(sent), n)
		}
		if held := check.held[len(check.held)-1]; held != 0 {
			t.Errorf("%d-byte prompt: the request body still holds %d bytes once sent (-1: not a bytes.Reader)", len(prompt), held)
		}
		if again := check.again[len(check.again)-1]; again != sent {
			t.Errorf("%d-byte prompt: GetBody gives %.80q..., the server got %.80q...", len(prompt), again, sent)
		}
	}
}

func TestDoInvalidTemperature(t *testing.T) {
	c := newTestClient(t, "http://"+refusedAddr(t), OpenAIConfig{})
	nan := 0.0
	nan /= nan
	resp := do(c, context.Background(), &Request{Prompt: "x", Temperature: &nan})
	if resp.Outcome != OutcomeHTTP4xx || !strings.Contains(resp.Error, "temperature NaN") || !resp.Send.IsZero() {
		t.Errorf("outcome=%s error=%q send=%v", resp.Outcome, resp.Error, resp.Send)
	}
}

func TestDoHTTPErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		outcome     Outcome
		wantMessage string
	}{
		{name: "500 OpenAI shape", status: 500, body: `{"error":{"message":"CUDA out of memory","type":"InternalServerError","param":null,"code":500}}`,
			outcome: OutcomeHTTP5xx, wantMessage: "CUDA out of memory"},
		{name: "429 old vLLM shape", status: 429, body: `{"object":"error","message":"Too many requests, retry later","type":"TooManyRequests","param":null,"code":429}`,
			outcome: OutcomeHTTP4xx, wantMessage: "Too many requests, retry later"},
		{name: "400 escaped message", status: 400, body: `{"error":{"message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (\"max_tokens\")","type":"BadRequestError","code":400}}`,
			outcome: OutcomeHTTP4xx, wantMessage: `This model's maximum context length is 4096 tokens. However, you requested 5000 tokens ("max_tokens")`},
		{name: "401 vLLM auth", status: 401, body: `{"error": "Unauthorized"}`, outcome: OutcomeHTTP4xx, wantMessage: "Unauthorized"},
		{name: "404 non-JSON", status: 404, body: "  404 page\n  not found \n", outcome: OutcomeHTTP4xx, wantMessage: "404 page not found"},
		{name: "502 empty body", status: 502, body: "", outcome: OutcomeHTTP5xx, wantMessage: "502 Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			c := newTestClient(t, srv.URL, OpenAIConfig{})
			resp := do(c, context.Background(), &Request{Prompt: "x", Stream: true})
			if resp.Outcome != tt.outcome || resp.HTTPStatus != tt.status || resp.Error != tt.wantMessage {
				t.Errorf("outcome=%s status=%d error=%q, want %s %d %q", resp.Outcome, resp.HTTPStatus, resp.Error,
					tt.outcome, tt.status, tt.wantMessage)
			}
			if !resp.First.IsZero() || resp.OutputTokens != -1 || resp.Done.IsZero() {
				t.Errorf("first=%v output=%d done=%v", resp.First, resp.OutputTokens, resp.Done)
			}
		})
	}
}

func TestDoRedactsAPIKey(t *testing.T) {
	const key = "sk-secret-123"
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"invalid key %s"}}`, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{APIKey: key})
	resp := do(c, context.Background(), &Request{Prompt: "x"})
	if strings.Contains(resp.Error, key) || resp.Error != "invalid key [api key]" {
		t.Errorf("error = %q", resp.Error)
	}
	_, err := c.Models(context.Background())
	if err == nil || strings.Contains(err.Error(), key) {
		t.Errorf("Models error = %v", err)
	}
}

func TestDoStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		chunks  int
		errText string
	}{
		{name: "malformed data line", chunks: 1, errText: `malformed SSE data in chunk 3 (invalid JSON at byte 1: expected a string key in object): "{oops: 1}"`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				writeEvents(w, roleChunk(), textChunk("a"), "{oops: 1}", textChunk("b"), "[DONE]")
			}},
		{name: "in-stream error event", chunks: 2, errText: "server error in chunk 3: Internal server error",
			handler: func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				writeEvents(w, textChunk("a"), textChunk("b"),
					`{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`, "[DONE]")
			}},
		{name: "event: error with text data", chunks: 1, errText: "server error event in chunk 2: overloaded",
			handler: func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				writeEvents(w, textChunk("a"))
				io.WriteString(w, "event: error\ndata: overloaded\n\n")
			}},
		{name: "EOF without DONE", chunks: 2, errText: "stream ended without [DONE] after 3 chunks",
			handler: func(w http.ResponseWriter, r *http.Request) {
				startStream(w)
				writeEvents(w, roleChunk(), textChunk("a"), textChunk("b"))
			}},
		{name: "JSON instead of SSE", chunks: 0, errText: `stream ended without [DONE] after 0 chunks (response Content-Type is "application/json", not text/event-stream)`,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"choices":[{"message":{"content":"hi"}}]}`)
			}},
		{name: "connection cut mid-stream", chunks: 2, errText: "stream cut after 2 chunks: unexpected EOF",
			handler: func(w http.ResponseWriter, r *http.Request) {
				conn, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					panic(err)
				}
				defer conn.Close()
				buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
				for _, d := range []string{textChunk("a"), textChunk("b")} {
					ev := "data: " + d + "\n\n"
					fmt.Fprintf(buf, "%x\r\n%s\r\n", len(ev), ev)
				}
				fmt.Fprintf(buf, "%x\r\ndata: {\"choi", 100)
				buf.Flush()
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.handler)
			c := newTestClient(t, srv.URL, OpenAIConfig{})
			resp := do(c, context.Background(), &Request{Prompt: "x", Stream: true})
			if resp.Outcome != OutcomeStreamError || resp.Error != tt.errText || resp.HTTPStatus != 200 {
				t.Fatalf("outcome=%s status=%d error=%q, want stream_error %q", resp.Outcome, resp.HTTPStatus, resp.Error, tt.errText)
			}
			if resp.TextChunks != tt.chunks || resp.OutputTokens != tt.chunks || resp.TokensSource != TokensFromChunks ||
				(tt.chunks > 0) == resp.First.IsZero() || resp.Done.IsZero() {
				t.Errorf("kept: chunks=%d output=%d source=%q first=%v done=%v", resp.TextChunks, resp.OutputTokens,
					resp.TokensSource, resp.First, resp.Done)
			}
		})
	}
}

func TestDoNonStreamingCut(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"choices\":[")
		buf.Flush()
	})
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Prompt: "x"})
	if resp.Outcome != OutcomeStreamError || resp.Error != "response body cut after 12 bytes: unexpected EOF" {
		t.Errorf("outcome=%s error=%q", resp.Outcome, resp.Error)
	}
}

func TestDoTimeout(t *testing.T) {
	tests := []struct {
		name    string
		stream  bool
		started bool // the server sends a text chunk before stalling
		errText string
	}{
		{name: "before headers", stream: true, errText: "timed out before the response arrived"},
		{name: "mid-stream", stream: true, started: true, errText: "timed out after 1 chunks"},
		{name: "non-streaming body", started: true, errText: "timed out after 11 bytes of the response body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.started {
					w.Header().Set("Content-Length", "1000")
					startStream(w)
					if tt.stream {
						writeEvents(w, textChunk("a"))
					} else {
						io.WriteString(w, `{"choices":`)
						w.(http.Flusher).Flush()
					}
				}
				stall(r)
			})
			c := newTestClient(t, srv.URL, OpenAIConfig{})
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			resp := do(c, ctx, &Request{Prompt: "x", Stream: tt.stream})
			if resp.Outcome != OutcomeTimeout || resp.Error != tt.errText {
				t.Fatalf("outcome=%s error=%q, want timeout %q", resp.Outcome, resp.Error, tt.errText)
			}
			if tt.stream && tt.started && (resp.TextChunks != 1 || resp.First.IsZero() || resp.OutputTokens != 1) {
				t.Errorf("measurements before the timeout lost: chunks=%d first=%v output=%d", resp.TextChunks, resp.First, resp.OutputTokens)
			}
			// t_send is stamped once the headers are written, a moment
			// after the deadline's clock started: measure from before.
			if d := resp.Done.Sub(start); d < 150*time.Millisecond {
				t.Errorf("done %v after the deadline started, before it expired", d)
			}
		})
	}
}

// cancelOnSecondRead cancels a request when the client asks for more of
// the body after its first read, i.e. once the first chunk is processed.
type cancelOnSecondRead struct {
	io.ReadCloser
	reads  int
	cancel context.CancelFunc
}

func (b *cancelOnSecondRead) Read(p []byte) (int, error) {
	b.reads++
	if b.reads == 2 {
		b.cancel()
	}
	return b.ReadCloser.Read(p)
}

func TestDoCancel(t *testing.T) {
	t.Run("before the response", func(t *testing.T) {
		received := make(chan struct{})
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			close(received)
			stall(r)
		})
		c := newTestClient(t, srv.URL, OpenAIConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-received
			cancel()
		}()
		resp := do(c, ctx, &Request{Prompt: "x", Stream: true})
		if resp.Outcome != OutcomeCanceled || resp.Error != "canceled before the response arrived" {
			t.Errorf("outcome=%s error=%q", resp.Outcome, resp.Error)
		}
	})
	t.Run("mid-stream", func(t *testing.T) {
		srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
			startStream(w)
			writeEvents(w, textChunk("a"))
			stall(r)
		})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		transport := newLoadClient().Transport
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := transport.RoundTrip(r)
			if err == nil {
				resp.Body = &cancelOnSecondRead{ReadCloser: resp.Body, cancel: cancel}
			}
			return resp, err
		})}
		c := newTestClient(t, srv.URL, OpenAIConfig{HTTPClient: client})
		resp := do(c, ctx, &Request{Prompt: "x", Stream: true})
		if resp.Outcome != OutcomeCanceled || resp.Error != "canceled after 1 chunks" || resp.TextChunks != 1 || resp.First.IsZero() {
			t.Errorf("outcome=%s error=%q chunks=%d first=%v", resp.Outcome, resp.Error, resp.TextChunks, resp.First)
		}
	})
}

func TestModels(t *testing.T) {
	srv := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/v1/models" || r.Method != http.MethodGet:
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "Bearer good":
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error": "Unauthorized"}`)
		default:
			io.WriteString(w, `{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B-Instruct","object":"model","created":1,"owned_by":"vllm","root":"meta-llama/Llama-3.1-8B-Instruct","parent":null,"max_model_len":8192,"permission":[]},{"id":"lora-a","object":"model"}]}`)
		}
	})

	ids, err := newTestClient(t, srv.URL, OpenAIConfig{APIKey: "good"}).Models(context.Background())
	if err != nil || !reflect.DeepEqual(ids, []string{"meta-llama/Llama-3.1-8B-Instruct", "lora-a"}) {
		t.Errorf("Models = %q, %v", ids, err)
	}

	_, err = newTestClient(t, srv.URL, OpenAIConfig{APIKey: "bad"}).Models(context.Background())
	want := "GET " + srv.URL + "/v1/models: HTTP 401 Unauthorized: Unauthorized (check the API key)"
	if err == nil || err.Error() != want {
		t.Errorf("401: %v, want %q", err, want)
	}

	addr := refusedAddr(t)
	_, err = newTestClient(t, "http://"+addr, OpenAIConfig{}).Models(context.Background())
	want = "GET http://" + addr + "/v1/models: connection refused"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: %v, want %q wrapping ECONNREFUSED", err, want)
	}
}

func TestNewOpenAI(t *testing.T) {
	c, err := NewOpenAI(OpenAIConfig{Endpoint: "http://h:8001/v1", VLLM: true})
	if err != nil || c.Name() != "vllm" || c.Endpoint() != "http://h:8001/v1" || c.url != "http://h:8001/v1/chat/completions" {
		t.Errorf("vllm client: %v %+v", err, c)
	}
	c, err = NewOpenAI(OpenAIConfig{Endpoint: "http://h:8000", API: APICompletions})
	if err != nil || c.Name() != "openai" || c.url != "http://h:8000/v1/completions" {
		t.Errorf("openai client: %v %+v", err, c)
	}
	for _, cfg := range []OpenAIConfig{
		{Endpoint: "http://h:8000", API: "responses"},
		{Endpoint: "ftp://h:8000"},
		{Endpoint: "http://h:8000", APIKey: "sk-abc\n"},
	} {
		if _, err := NewOpenAI(cfg); err == nil || strings.Contains(err.Error(), "sk-abc") {
			t.Errorf("NewOpenAI(%q, %q) = %v, want an error without the key", cfg.Endpoint, cfg.API, err)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" backslash\\ nl\n cr\r tab\t", "\x00\x1f\x7f", "é€😀", "bad \xff\xfe utf8 \xed\xa0\x80", "<&>\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: invalid JSON: %v", s, enc, err)
		}
		std, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("appendJSONString(%q) decodes to %q, encoding/json gives %q", s, got, want)
		}
	})
}

// BenchmarkRequestBody compares the hand-written body encoder with
// encoding/json on a typical energy_star request (~1 KB prompt).
func BenchmarkRequestBody(b *testing.B) {
	temp := 0.0
	req := &Request{Model: "openai/gpt-oss-120b", Prompt: strings.Repeat("Summarise the \"energy\" report.\n", 32),
		MaxTokens: 10, MinTokens: 10, IgnoreEOS: true, Temperature: &temp, Stream: true}
	c := &OpenAI{api: APIChat, vllm: true}
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.appendBody(make([]byte, 0, len(req.Prompt)+len(req.Prompt)/8+len(req.Model)+256), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		type message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		type body struct {
			Model         string          `json:"model"`
			Messages      []message       `json:"messages"`
			MaxTokens     int             `json:"max_tokens,omitempty"`
			Temperature   *float64        `json:"temperature,omitempty"`
			Stream        bool            `json:"stream"`
			StreamOptions map[string]bool `json:"stream_options,omitempty"`
			MinTokens     int             `json:"min_tokens,omitempty"`
			IgnoreEOS     bool            `json:"ignore_eos,omitempty"`
		}
		for b.Loop() {
			_, err := json.Marshal(body{Model: req.Model, Messages: []message{{"user", req.Prompt}}, MaxTokens: req.MaxTokens,
				Temperature: req.Temperature, Stream: true, StreamOptions: map[string]bool{"include_usage": true},
				MinTokens: req.MinTokens, IgnoreEOS: req.IgnoreEOS})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
