package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startSim serves cfg on a free loopback port for the test's duration.
func startSim(t *testing.T, cfg Config) *Running {
	t.Helper()
	r, err := Start(t.Context(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// sseEvent is one "data: ..." line and when the client read it.
type sseEvent struct {
	at   time.Time
	data string
}

// streamResult is what a client saw of one streaming request.
type streamResult struct {
	resp   *http.Response
	send   time.Time
	events []sseEvent
	err    error // the error that ended reading, nil after a clean EOF
}

// postStream sends body to path and reads the SSE stream to its end,
// stamping each data line on arrival.
func postStream(ctx context.Context, t *testing.T, client *http.Client, url string, body any) streamResult {
	t.Helper()
	req := newPost(ctx, t, url, body)
	var res streamResult
	res.send = time.Now()
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	res.resp = resp
	defer resp.Body.Close()
	res.events, res.err = readEvents(bufio.NewReader(resp.Body), -1)
	return res
}

// readEvents reads SSE data lines until EOF, an error or limit events
// (limit < 0: no limit).
func readEvents(br *bufio.Reader, limit int) ([]sseEvent, error) {
	var events []sseEvent
	for limit < 0 || len(events) < limit {
		line, err := br.ReadString('\n')
		at := time.Now()
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.HasSuffix(data, "\n") {
			events = append(events, sseEvent{at: at, data: strings.TrimSuffix(data, "\n")})
		}
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, err
		}
	}
	return events, nil
}

func newPost(ctx context.Context, t *testing.T, url string, body any) *http.Request {
	t.Helper()
	var payload []byte
	switch b := body.(type) {
	case string:
		payload = []byte(b)
	default:
		var err error
		if payload, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// postJSON sends body and decodes the JSON response into out (when not
// nil), returning the response with its body consumed.
func postJSON(t *testing.T, url string, body, out any) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(newPost(t.Context(), t, url, body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("decode %s response %q: %v", url, raw, err)
		}
	}
	return resp
}

// chatBody is a chat request; extra fields are merged in.
func chatBody(extra map[string]any) map[string]any {
	b := map[string]any{
		"model":    "tokenwatt-sim",
		"messages": []map[string]any{{"role": "user", "content": "What does a token cost in joules?"}},
	}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// completionBody is a text completion request; extra fields are merged in.
func completionBody(extra map[string]any) map[string]any {
	b := map[string]any{"model": "tokenwatt-sim", "prompt": "The energy of one token is"}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// streamChunk is the union of the chunk fields the tests look at.
type streamChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Text  *string
		Delta struct {
			Role             *string `json:"role"`
			Content          *string `json:"content"`
			ReasoningContent *string `json:"reasoning_content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func decodeChunk(t *testing.T, data string) streamChunk {
	t.Helper()
	var c streamChunk
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		t.Fatalf("chunk %q is not JSON: %v", data, err)
	}
	return c
}

// chunkText is the text a chunk carries (content, reasoning or text).
func chunkText(c streamChunk) (string, bool) {
	if len(c.Choices) == 0 {
		return "", false
	}
	ch := c.Choices[0]
	switch {
	case ch.Text != nil && *ch.Text != "":
		return *ch.Text, true
	case ch.Delta.Content != nil && *ch.Delta.Content != "":
		return *ch.Delta.Content, true
	case ch.Delta.ReasoningContent != nil && *ch.Delta.ReasoningContent != "":
		return *ch.Delta.ReasoningContent, true
	}
	return "", false
}

// scrape returns the /metrics exposition.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// waitForMetric polls /metrics until it has line, or fails after a
// deadline.
func waitForMetric(t *testing.T, base, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		text := scrape(t, base)
		if strings.Contains(text, line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q; last:\n%s", line, text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
