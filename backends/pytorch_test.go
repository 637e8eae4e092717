package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// torchServer is a local stand-in for a TorchServe-style server: /ping
// answers with ping, /models with models (404 when empty), and
// /predictions/m with predict.
func torchServer(t *testing.T, ping int, models string, predict http.HandlerFunc) *PyTorch {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(ping)
		if ping == http.StatusOK {
			io.WriteString(w, `{"status": "Healthy"}`)
		} else {
			io.WriteString(w, `{"status": "Unhealthy"}`)
		}
	})
	mux.HandleFunc("GET /models", func(w http.ResponseWriter, r *http.Request) {
		if models == "" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, models)
	})
	mux.HandleFunc("POST /predictions/{model}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("model") != "m" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"code": 404, "type": "ModelNotFoundException", "message": "Model not found: %s"}`, r.PathValue("model"))
			return
		}
		predict(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := NewPyTorch(PyTorchConfig{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// streamLines writes each line as its own flushed chunk, gap apart.
func streamLines(contentType string, gap time.Duration, lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		for _, l := range lines {
			io.WriteString(w, l)
			w.(http.Flusher).Flush()
			time.Sleep(gap)
		}
	}
}

func torchDo(t *testing.T, c *PyTorch, model string) *Response {
	t.Helper()
	var resp Response
	resp.Reset()
	c.Do(context.Background(), &Request{Model: model, Prompt: "hi", MaxTokens: 3, MinTokens: 3, Stream: true, KeepText: true}, &resp)
	return &resp
}

func TestPyTorchNDJSONWithUsage(t *testing.T) {
	c := torchServer(t, 200, `{"models": [{"modelName": "m", "modelUrl": "x"}]}`, streamLines("application/x-ndjson", 20*time.Millisecond,
		`{"text": "a"}`+"\n", `{"text": "b"}`+"\n", `{"text": "\u00e9"}`+"\n", `{"usage": {"prompt_tokens": 5, "completion_tokens": 3}, "finish_reason": "length"}`+"\n"))
	models, err := c.Models(context.Background())
	if err != nil || len(models) != 1 || models[0] != "m" {
		t.Fatalf("Models = %v, %v", models, err)
	}
	r := torchDo(t, c, "m")
	if r.Outcome != OutcomeOK || r.TextChunks != 3 || r.OutputTokens != 3 || r.PromptTokens != 5 || r.TokensSource != TokensFromUsage {
		t.Fatalf("response %+v", r)
	}
	if r.FinishReason != "length" || string(r.Text) != "abé" || r.TextTruncated {
		t.Errorf("finish reason %q, text %q (truncated %v); want length, abé", r.FinishReason, r.Text, r.TextTruncated)
	}
	// The relations hold on any machine; how close the ITLs come to the
	// server's 20 ms is TestTimingPyTorchITL's (TOKENWATT_TIMING=1). The
	// third line is written two gaps after the request arrived.
	if len(r.ITL) != 2 || r.First.Sub(r.Send) <= 0 || r.ITL[0] < 0 || r.ITL[1] < 0 ||
		r.ITL[0]+r.ITL[1] != r.Last.Sub(r.First) || r.Last.Sub(r.Send) < 40*time.Millisecond {
		t.Errorf("timing: TTFT %v, ITL %v, last after %v (server gap 20 ms)", r.First.Sub(r.Send), r.ITL, r.Last.Sub(r.Send))
	}
}

func TestPyTorchPlainTextChunks(t *testing.T) {
	c := torchServer(t, 200, "", streamLines("text/plain; charset=utf-8", 20*time.Millisecond, "Hel", "lo", " world"))
	if _, err := c.Models(context.Background()); !errors.Is(err, ErrModelsNotListed) {
		t.Errorf("Models without /models: %v, want ErrModelsNotListed", err)
	}
	r := torchDo(t, c, "m")
	if r.Outcome != OutcomeOK || r.TextChunks != 3 || r.OutputTokens != 3 || r.TokensSource != TokensFromChunks || r.PromptTokens != -1 {
		t.Fatalf("response %+v", r)
	}
	if r.FinishReason != "" || string(r.Text) != "Hello world" {
		t.Errorf("finish reason %q, text %q; want none, the text", r.FinishReason, r.Text)
	}
}

func TestPyTorchErrorMidStream(t *testing.T) {
	c := torchServer(t, 200, "", streamLines("application/x-ndjson", 0,
		`{"text": "a"}`+"\n", `{"error": "CUDA out of memory"}`+"\n"))
	r := torchDo(t, c, "m")
	if r.Outcome != OutcomeStreamError || r.TextChunks != 1 || !strings.Contains(r.Error, "CUDA out of memory") {
		t.Fatalf("response %+v", r)
	}
	// TorchServe's own error shape as a line, too.
	c = torchServer(t, 200, "", streamLines("application/x-ndjson", 0,
		`{"code": 500, "type": "InternalServerException", "message": "worker died"}`+"\n"))
	if r := torchDo(t, c, "m"); r.Outcome != OutcomeStreamError || !strings.Contains(r.Error, "InternalServerException: worker died") {
		t.Fatalf("response %+v", r)
	}
	// A cut connection: a truncated chunked body.
	c = torchServer(t, 200, "", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"text": "a"}`+"\n")
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	})
	if r := torchDo(t, c, "m"); r.Outcome != OutcomeStreamError || !strings.Contains(r.Error, "stream cut after 1 lines") {
		t.Fatalf("cut stream: %+v", r)
	}
	// Garbage in the stream.
	c = torchServer(t, 200, "", streamLines("application/x-ndjson", 0, "not json\n"))
	if r := torchDo(t, c, "m"); r.Outcome != OutcomeStreamError || !strings.Contains(r.Error, "malformed NDJSON line 1") {
		t.Fatalf("garbage: %+v", r)
	}
}

func TestPyTorchPingUnhealthy(t *testing.T) {
	c := torchServer(t, http.StatusServiceUnavailable, "", nil)
	_, err := c.Models(context.Background())
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("Models with /ping 503: %v", err)
	}
}

func TestPyTorchWrongModel(t *testing.T) {
	c := torchServer(t, 200, "", nil)
	r := torchDo(t, c, "nope")
	if r.Outcome != OutcomeHTTP4xx || r.HTTPStatus != 404 || r.Error != "ModelNotFoundException: Model not found: nope" {
		t.Fatalf("response %+v", r)
	}
}

// TestPyTorchModelsNotesSimulated: a server whose /ping answers with
// X-Tokenwatt-Simulated: true is simulated, one without it is not.
func TestPyTorchModelsNotesSimulated(t *testing.T) {
	for _, simulated := range []bool{false, true} {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
			if simulated {
				w.Header().Set(SimulatedHeader, "true")
			}
			io.WriteString(w, `{"status": "Healthy"}`)
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		c, err := NewPyTorch(PyTorchConfig{Endpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Models(context.Background()); !errors.Is(err, ErrModelsNotListed) {
			t.Fatalf("Models: %v", err)
		}
		if c.Simulated() != simulated {
			t.Errorf("Simulated() = %v, want %v", c.Simulated(), simulated)
		}
	}
}

func TestPyTorchRequestBodyAndWholeResponse(t *testing.T) {
	var got string
	c := torchServer(t, 200, "", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"text": "abc", "usage": {"prompt_tokens": 2, "completion_tokens": 3}, "finish_reason": "stop"}`)
	})
	temp, seed := 0.0, int64(7)
	var resp Response
	resp.Reset()
	c.Do(context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 8, IgnoreEOS: true, Temperature: &temp, Seed: &seed, KeepText: true}, &resp)
	if want := `{"prompt":"hi","max_new_tokens":8,"min_new_tokens":8,"temperature":0,"seed":7,"stream":false}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
	if resp.FinishReason != "stop" || string(resp.Text) != "abc" {
		t.Errorf("finish reason %q, text %q; want stop, abc", resp.FinishReason, resp.Text)
	}

	// An extra body follows the client's own fields; its own keys are
	// refused.
	c.extra, _ = ExtraBody{"top_k": 5, "do_sample": true}.encode(reservedPyTorch)
	resp.Reset()
	c.Do(context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 8}, &resp)
	if want := `{"prompt":"hi","max_new_tokens":8,"stream":false,"do_sample":true,"top_k":5}`; got != want {
		t.Errorf("body with extra %s, want %s", got, want)
	}
	for _, key := range []string{"prompt", "max_new_tokens", "min_new_tokens", "temperature", "seed", "stream"} {
		if _, err := NewPyTorch(PyTorchConfig{Endpoint: "http://127.0.0.1:1", ExtraBody: ExtraBody{key: 1}}); err == nil ||
			!strings.Contains(err.Error(), fmt.Sprintf("extra body key %q is one tokenwatt sets itself", key)) {
			t.Errorf("extra body key %s: %v", key, err)
		}
	}
	// Not streamed: the body is read at t_last = t_done; no first-token
	// time, no gaps.
	if resp.Outcome != OutcomeOK || resp.OutputTokens != 3 || resp.TextChunks != 1 || !resp.First.IsZero() ||
		resp.Last.IsZero() || resp.Last != resp.Done || len(resp.ITL) != 0 {
		t.Errorf("whole response %+v", resp)
	}
}

// TestPyTorchNotStreamedButChunked: a server that streams NDJSON although
// the request said stream: false still gives a non-streamed measurement
// (E2E only); its lines count as text chunks, its usage as the tokens.
func TestPyTorchNotStreamedButChunked(t *testing.T) {
	c := torchServer(t, 200, "", streamLines("application/x-ndjson", 5*time.Millisecond,
		`{"text": "a"}`+"\n", `{"text": "b"}`+"\n", `{"text": "c", "usage": {"prompt_tokens": 2, "completion_tokens": 3}}`+"\n"))
	var resp Response
	resp.Reset()
	c.Do(context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 3}, &resp)
	if resp.Outcome != OutcomeOK || resp.OutputTokens != 3 || resp.TokensSource != TokensFromUsage || resp.TextChunks != 3 ||
		!resp.First.IsZero() || len(resp.ITL) != 0 || resp.Last.IsZero() || resp.Last != resp.Done || resp.Last.Before(resp.Send) {
		t.Errorf("non-streamed request: %+v", resp)
	}
}

func TestPyTorchUnreachableAndTimeout(t *testing.T) {
	c, err := NewPyTorch(PyTorchConfig{Endpoint: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Models(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Models: %v", err)
	}
	if r := torchDo(t, c, "m"); r.Outcome != OutcomeConnectError {
		t.Errorf("Do: %+v", r)
	}
	slow := torchServer(t, 200, "", streamLines("application/x-ndjson", time.Second, `{"text": "a"}`+"\n", `{"text": "b"}`+"\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var resp Response
	resp.Reset()
	slow.Do(ctx, &Request{Model: "m", Prompt: "x", Stream: true}, &resp)
	if resp.Outcome != OutcomeTimeout || resp.TextChunks != 1 {
		t.Errorf("timeout: %+v", resp)
	}
	if _, err := NewPyTorch(PyTorchConfig{Endpoint: "ftp://x"}); err == nil {
		t.Error("ftp endpoint accepted")
	}
}

// TestPyTorchRedactsEndpointCredentials: an endpoint's user:password is
// sent as basic auth, but Endpoint and every error (an unhealthy server, a
// failed request, a server gone, an address that does not parse) show it
// redacted.
func TestPyTorchRedactsEndpointCredentials(t *testing.T) {
	const user, pass = "torch", "pw-do-not-leak-8086"
	var (
		mu    sync.Mutex
		auths []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		mu.Lock()
		auths = append(auths, u+":"+p)
		mu.Unlock()
		switch r.URL.Path {
		case "/ping":
			io.WriteString(w, `{"status": "Healthy"}`)
		case "/models":
			io.WriteString(w, `{"models": [{"modelName": "m"}]}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"code": 500, "type": "InternalServerException", "message": "boom"}`)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, err := NewPyTorch(PyTorchConfig{Endpoint: "http://" + user + ":" + pass + "@" + host})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	if got, want := c.Endpoint(), "http://"+user+":xxxxx@"+host; got != want {
		t.Errorf("Endpoint() = %q, want %q", got, want)
	}
	if _, err := c.Models(context.Background()); err != nil {
		t.Fatalf("Models: %v", err)
	}
	r := torchDo(t, c, "m")
	if r.Outcome != OutcomeHTTP5xx {
		t.Errorf("Do: %+v, want http_5xx", r)
	}
	msgs = append(msgs, r.Error)
	mu.Lock()
	if len(auths) != 3 {
		t.Errorf("the server got %d requests, want 3", len(auths))
	}
	for i, a := range auths {
		if a != user+":"+pass {
			t.Errorf("request %d sent basic auth %q, want the endpoint's", i, a)
		}
	}
	mu.Unlock()
	srv.Close()
	_, err = c.Models(context.Background())
	r = torchDo(t, c, "m")
	if err == nil || r.Outcome != OutcomeConnectError {
		t.Fatalf("server gone: Models %v, Do %+v", err, r)
	}
	msgs = append(msgs, err.Error(), r.Error)
	for _, bad := range []string{"http://" + user + ":" + pass + "@" + host + ":x", "ftp://" + user + ":" + pass + "@" + host} {
		if _, err := NewPyTorch(PyTorchConfig{Endpoint: bad}); err == nil {
			t.Errorf("NewPyTorch(%q) succeeded", bad)
		} else {
			msgs = append(msgs, err.Error())
		}
	}
	for _, m := range msgs {
		if strings.Contains(m, pass) {
			t.Errorf("message names the password: %s", m)
		}
	}
	if all := strings.Join(msgs, "\n"); !strings.Contains(all, user+":xxxxx@"+host) {
		t.Errorf("no message names the endpoint redacted:\n%s", all)
	}
}
