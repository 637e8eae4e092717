package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzSSE feeds arbitrary bytes through the SSE reader, the chunk scanner
// and the per-request measurement, and checks both parsers against simple
// references: the events against a line-splitting SSE parser, and each
// event's chunk against encoding/json decoding with the semantics
// documented on chunk.
func FuzzSSE(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.sse"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		stream, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(stream)
	}
	for _, seed := range []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n",
		"event: error\ndata: {\"error\":\"Unauthorized\"}\n\n",
		"data: {\"object\":\"error\",\"message\":\"bad \\u0022x\\u0022\",\"code\":400}\n\n",
		"data: {\"cho\\u0069ces\":[{\"text\":\"\\\\\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"completion_tokens\":9.5}}\n\n",
		"\xef\xbb\xbfdata: {\"a\":\ndata: [1,2]}\n\ndata: {\"choices\":[{\"message\":{\"reasoning\":\"r\"}}]}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		want := referenceEvents(stream)
		r := newSSEReader(bytes.NewReader(stream), 16)
		var got []event
		for range len(stream) + 1 {
			data, errorEvent, err := r.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading from memory: %v", err)
			}
			got = append(got, event{string(data), errorEvent})
			checkChunk(t, data)
		}
		if len(got) != len(want) {
			t.Fatalf("reader found %d events %v, reference %d %v", len(got), got, len(want), want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("event %d = %v, reference %v", i, got[i], want[i])
			}
		}

		var resp Response
		resp.Reset()
		readStream(context.Background(), newSSEReader(bytes.NewReader(stream), 16), &resp, true, nil)
		if resp.Outcome != OutcomeOK && resp.Outcome != OutcomeStreamError {
			t.Fatalf("outcome %q from an in-memory stream", resp.Outcome)
		}
		if n := max(resp.TextChunks-1, 0); len(resp.ITL)+resp.MoreITL.Count() != n {
			t.Fatalf("%d ITLs for %d text chunks", len(resp.ITL), resp.TextChunks)
		}
		if len(resp.Text) > MaxText || len(resp.FinishReason) > MaxFinishReason {
			t.Fatalf("%d bytes of text, finish reason of %d bytes", len(resp.Text), len(resp.FinishReason))
		}
		if resp.OutputTokens < 0 || resp.TokensSource == "" || resp.Done.IsZero() {
			t.Fatalf("unfinished response: %+v", resp)
		}
	})
}

// referenceEvents parses an event stream the obvious way: split into
// lines, then apply the field rules sseReader implements.
func referenceEvents(stream []byte) []event {
	s := strings.TrimPrefix(string(stream), "\xef\xbb\xbf")
	lines := strings.Split(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	var (
		events     []event
		data       []string
		errorEvent bool
	)
	for _, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			if data != nil {
				events = append(events, event{strings.Join(data, "\n"), errorEvent})
			}
			data, errorEvent = nil, false
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if field == "" && found {
			continue
		}
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			data = append(data, value)
		case "event":
			errorEvent = value == "error"
		}
	}
	if data != nil {
		events = append(events, event{strings.Join(data, "\n"), errorEvent})
	}
	return events
}

// checkChunk compares scanChunk with encoding/json on one payload.
func checkChunk(t *testing.T, data []byte) {
	t.Helper()
	var c chunk
	err := scanChunk(data, &c)
	want, valid := referenceChunk(data)
	if (err == nil) != valid {
		t.Fatalf("scanChunk(%q) error = %v, json.Valid = %v", data, err, valid)
	}
	if !valid {
		return
	}
	got := refChunk{
		text: c.text, usage: c.usage, prompt: c.promptTokens, completion: c.completionTokens,
		isError: c.isError, hasMsg: c.errorMessage != nil, msg: c.message(),
		hasFinish: c.finishReason != nil, hasAnswer: c.answer != nil, answer: string(c.answerText()),
	}
	if got.hasFinish {
		var f string
		if err := json.Unmarshal(c.finishReason, &f); err != nil {
			t.Fatalf("finish reason literal %s: %v", c.finishReason, err)
		}
		got.finish = f
	}
	if got != want {
		t.Fatalf("scanChunk(%q) = %+v, encoding/json says %+v", data, got, want)
	}
}

type refChunk struct {
	text, usage        bool
	prompt, completion int64
	isError, hasMsg    bool
	msg                string
	hasFinish          bool
	finish             string
	hasAnswer          bool
	answer             string
}

// referenceChunk computes chunk's documented meaning with encoding/json.
// Decoding into interface values gives "last duplicate key wins" and
// exact key matching, as the scanner implements.
func referenceChunk(data []byte) (refChunk, bool) {
	r := refChunk{prompt: -1, completion: -1}
	if !json.Valid(data) {
		return r, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return r, false
	}
	top, ok := v.(map[string]any)
	if !ok {
		return r, true
	}
	if choices, ok := top["choices"].([]any); ok {
		for _, ch := range choices {
			r.text = r.text || refChoiceText(ch)
			choice, ok := ch.(map[string]any)
			if !ok {
				continue
			}
			if f, ok := choice["finish_reason"].(string); ok {
				r.hasFinish, r.finish = true, f
			}
			if a, ok := refAnswer(choice); ok && !r.hasAnswer {
				r.hasAnswer, r.answer = true, a
			}
		}
	}
	if u, ok := top["usage"].(map[string]any); ok {
		r.usage = true
		r.prompt = refCount(u["prompt_tokens"])
		r.completion = refCount(u["completion_tokens"])
	}
	setMsg := func(m any) {
		if s, ok := m.(string); ok {
			r.hasMsg, r.msg = true, s
		}
	}
	if e, present := top["error"]; present && e != nil && e != false {
		r.isError = true
		switch e := e.(type) {
		case map[string]any:
			setMsg(e["message"])
		case string:
			setMsg(e)
		}
	} else if top["object"] == "error" {
		r.isError = true
		setMsg(top["message"])
	}
	return r, true
}

func refChoiceText(ch any) bool {
	choice, ok := ch.(map[string]any)
	if !ok {
		return false
	}
	if s, ok := choice["text"].(string); ok && s != "" {
		return true
	}
	for _, key := range []string{"delta", "message"} {
		d, ok := choice[key].(map[string]any)
		if !ok {
			continue
		}
		for _, field := range []string{"content", "reasoning_content", "reasoning"} {
			if s, ok := d[field].(string); ok && s != "" {
				return true
			}
		}
	}
	return false
}

// refAnswer is a choice's answer text: "text", else delta.content,
// else message.content, the first that is a non-empty string.
func refAnswer(choice map[string]any) (string, bool) {
	if s, ok := choice["text"].(string); ok && s != "" {
		return s, true
	}
	for _, key := range []string{"delta", "message"} {
		if d, ok := choice[key].(map[string]any); ok {
			if s, ok := d["content"].(string); ok && s != "" {
				return s, true
			}
		}
	}
	return "", false
}

func refCount(v any) int64 {
	n, ok := v.(json.Number)
	if !ok || strings.HasPrefix(string(n), "-") {
		return -1
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return -1
	}
	return i
}
