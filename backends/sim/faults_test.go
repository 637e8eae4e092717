package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func TestInjectedHTTPErrors(t *testing.T) {
	cases := []struct {
		cfg     Config
		status  int
		errType string
	}{
		{Config{Fail500: 1}, http.StatusInternalServerError, "InternalServerError"},
		{Config{Fail429: 1}, http.StatusTooManyRequests, "RateLimitError"},
	}
	for _, c := range cases {
		t.Run(c.errType, func(t *testing.T) {
			srv := startSim(t, c.cfg)
			for _, stream := range []bool{false, true} {
				var out struct {
					Error errorInfo `json:"error"`
				}
				resp := postJSON(t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"stream": stream}), &out)
				e := out.Error
				if resp.StatusCode != c.status || e.Code != c.status || e.Type != c.errType || e.Message == "" || e.Param != nil {
					t.Errorf("stream %v: %d %+v", stream, resp.StatusCode, e)
				}
				if resp.Header.Get("Content-Type") != "application/json" {
					t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
				}
			}
		})
	}
}

func TestInjectedDisconnect(t *testing.T) {
	srv := startSim(t, Config{Disconnect: 1})
	url := srv.URL + "/v1/chat/completions"
	for i := 0; i < 3; i++ {
		res := postStream(t.Context(), t, http.DefaultClient, url, chatBody(map[string]any{
			"stream": true, "stream_options": map[string]any{}, "max_tokens": 8,
		}))
		if !errors.Is(res.err, io.ErrUnexpectedEOF) {
			t.Errorf("stream ended with %v, want unexpected EOF", res.err)
		}
		if len(textTimes(t, res.events)) == 0 {
			t.Errorf("disconnect before any token: %v", res.events)
		}
		for _, e := range res.events {
			if e.data == "[DONE]" {
				t.Errorf("[DONE] before the disconnect")
			}
		}
	}
	resp, err := http.DefaultClient.Do(newPost(t.Context(), t, url, chatBody(nil)))
	if err == nil {
		resp.Body.Close()
		t.Errorf("non-streaming request got %s, want a closed connection", resp.Status)
	}
	waitForMetric(t, srv.URL, `vllm:request_success_total{finished_reason="abort",model_name="tokenwatt-sim"} 4`)
}

func TestInjectedGarbage(t *testing.T) {
	srv := startSim(t, Config{Garbage: 1})
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		body := chatBody(map[string]any{"stream": true, "max_tokens": 6})
		if path == "/v1/completions" {
			body = completionBody(map[string]any{"stream": true, "max_tokens": 6})
		}
		res := postStream(t.Context(), t, http.DefaultClient, srv.URL+path, body)
		if res.err != nil {
			t.Fatal(res.err)
		}
		bad := 0
		for _, e := range res.events {
			if e.data != "[DONE]" && !json.Valid([]byte(e.data)) {
				bad++
			}
		}
		if bad != 1 {
			t.Errorf("%s: %d malformed data lines, want 1: %v", path, bad, res.events)
		}
		if last := res.events[len(res.events)-1].data; last != "[DONE]" {
			t.Errorf("%s: stream ends with %q, want [DONE]", path, last)
		}
	}
	resp, err := http.DefaultClient.Do(newPost(t.Context(), t, srv.URL+"/v1/completions", completionBody(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || json.Valid(raw) {
		t.Errorf("non-streaming garbage: %s %q, want 200 with invalid JSON", resp.Status, raw)
	}
}

func TestInjectedStall(t *testing.T) {
	srv := startSim(t, Config{Stall: 1})
	// The client gives up after this long; no data may arrive meanwhile.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	resp, err := http.DefaultClient.Do(newPost(ctx, t, srv.URL+"/v1/chat/completions",
		chatBody(map[string]any{"stream": true, "max_tokens": 10, "ignore_eos": true})))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := readEvents(br, 2)
	if err != nil || len(first) != 2 || len(textTimes(t, first)) != 1 {
		t.Fatalf("role and first token: %v %v", first, err)
	}
	more, err := readEvents(br, -1)
	if len(more) != 0 {
		t.Errorf("data after the stall: %v", more)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled read ended with %v, want the client's deadline", err)
	}
	const l = `{model_name="tokenwatt-sim"}`
	waitForMetric(t, srv.URL, "vllm:num_requests_running"+l+" 0")
	waitForMetric(t, srv.URL, `vllm:request_success_total{finished_reason="abort",model_name="tokenwatt-sim"} 1`)
}

func TestCloseEndsStalledStreams(t *testing.T) {
	srv, err := Start(t.Context(), "127.0.0.1:0", Config{Stall: 1})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(newPost(t.Context(), t, srv.URL+"/v1/completions",
		completionBody(map[string]any{"stream": true, "max_tokens": 10})))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if ev, err := readEvents(br, 1); err != nil || len(ev) != 1 {
		t.Fatalf("first token: %v %v", ev, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a stalled stream")
	}
	if _, err := readEvents(br, -1); err == nil {
		t.Error("stalled stream ended cleanly after Close, want it cut off")
	}
}
