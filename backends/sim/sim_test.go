package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestChatStreamShape(t *testing.T) {
	srv := startSim(t, Config{})
	res := postStream(t.Context(), t, http.DefaultClient, srv.URL+"/v1/chat/completions", chatBody(map[string]any{
		"stream": true, "stream_options": map[string]any{"include_usage": true},
		"max_tokens": 5, "ignore_eos": true,
	}))
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := res.resp.Header.Get("Content-Type"); got != "text/event-stream; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := res.resp.Header.Get(SimulatedHeader); got != "true" {
		t.Errorf("%s = %q, want true", SimulatedHeader, got)
	}
	ev := res.events
	// role, 5 tokens (the last with finish_reason), usage, [DONE]
	if len(ev) != 8 {
		t.Fatalf("got %d events, want 8:\n%v", len(ev), ev)
	}
	role := regexp.MustCompile(`^\{"id":"chatcmpl-sim-[0-9a-f]{32}","object":"chat\.completion\.chunk","created":\d+,"model":"tokenwatt-sim","choices":\[\{"index":0,"delta":\{"role":"assistant","content":""\},"logprobs":null,"finish_reason":null\}\]\}$`)
	if !role.MatchString(ev[0].data) {
		t.Errorf("role chunk:\n%s", ev[0].data)
	}
	token := regexp.MustCompile(`^\{"id":"chatcmpl-sim-[0-9a-f]{32}","object":"chat\.completion\.chunk","created":\d+,"model":"tokenwatt-sim","choices":\[\{"index":0,"delta":\{"content":"[^"]+"\},"logprobs":null,"finish_reason":null\}\]\}$`)
	for _, e := range ev[1:5] {
		if !token.MatchString(e.data) {
			t.Errorf("token chunk:\n%s", e.data)
		}
	}
	final := regexp.MustCompile(`"delta":\{"content":"[^"]+"\},"logprobs":null,"finish_reason":"length","stop_reason":null\}\]\}$`)
	if !final.MatchString(ev[5].data) {
		t.Errorf("final chunk:\n%s", ev[5].data)
	}
	usageRe := regexp.MustCompile(`^\{"id":"chatcmpl-sim-[0-9a-f]{32}","object":"chat\.completion\.chunk","created":\d+,"model":"tokenwatt-sim","choices":\[\],"usage":\{"prompt_tokens":9,"total_tokens":14,"completion_tokens":5\}\}$`)
	if !usageRe.MatchString(ev[6].data) {
		t.Errorf("usage chunk:\n%s", ev[6].data)
	}
	if ev[7].data != "[DONE]" {
		t.Errorf("last event = %q, want [DONE]", ev[7].data)
	}
	id := decodeChunk(t, ev[0].data).ID
	for _, e := range ev[1:7] {
		if c := decodeChunk(t, e.data); c.ID != id {
			t.Errorf("chunk id %q, want %q throughout", c.ID, id)
		}
	}
}

func TestCompletionsStreamShape(t *testing.T) {
	srv := startSim(t, Config{})
	res := postStream(t.Context(), t, http.DefaultClient, srv.URL+"/v1/completions", completionBody(map[string]any{
		"stream": true, "stream_options": map[string]any{"include_usage": true},
		"max_tokens": 3, "ignore_eos": true,
	}))
	if res.err != nil {
		t.Fatal(res.err)
	}
	ev := res.events
	if len(ev) != 5 {
		t.Fatalf("got %d events, want 3 tokens + usage + [DONE]:\n%v", len(ev), ev)
	}
	token := regexp.MustCompile(`^\{"id":"cmpl-sim-[0-9a-f]{32}","object":"text_completion","created":\d+,"model":"tokenwatt-sim","choices":\[\{"index":0,"text":"[^"]+","logprobs":null,"finish_reason":(null|"length"),"stop_reason":null\}\]\}$`)
	for i, e := range ev[:3] {
		if !token.MatchString(e.data) {
			t.Errorf("token chunk %d:\n%s", i, e.data)
		}
	}
	if !strings.Contains(ev[2].data, `"finish_reason":"length"`) || strings.Contains(ev[1].data, `"finish_reason":"length"`) {
		t.Errorf("finish_reason must be on the last token only:\n%s\n%s", ev[1].data, ev[2].data)
	}
	usageRe := regexp.MustCompile(`^\{"id":"cmpl-sim-[0-9a-f]{32}","object":"text_completion","created":\d+,"model":"tokenwatt-sim","choices":\[\],"usage":\{"prompt_tokens":7,"total_tokens":10,"completion_tokens":3\}\}$`)
	if !usageRe.MatchString(ev[3].data) {
		t.Errorf("usage chunk:\n%s", ev[3].data)
	}
	if ev[4].data != "[DONE]" {
		t.Errorf("last event = %q, want [DONE]", ev[4].data)
	}
}

func TestStreamWithoutUsage(t *testing.T) {
	srv := startSim(t, Config{})
	for _, opts := range []any{nil, map[string]any{"include_usage": false}} {
		body := chatBody(map[string]any{"stream": true, "max_tokens": 2, "ignore_eos": true})
		if opts != nil {
			body["stream_options"] = opts
		}
		res := postStream(t.Context(), t, http.DefaultClient, srv.URL+"/v1/chat/completions", body)
		if res.err != nil {
			t.Fatal(res.err)
		}
		if len(res.events) != 4 || res.events[3].data != "[DONE]" {
			t.Errorf("stream_options %v: want role, 2 tokens, [DONE]; got %v", opts, res.events)
		}
		for _, e := range res.events {
			if strings.Contains(e.data, `"usage"`) {
				t.Errorf("stream_options %v: unexpected usage in %s", opts, e.data)
			}
		}
	}
}

func TestNonStreaming(t *testing.T) {
	srv := startSim(t, Config{})
	var chat struct {
		Object  string `json:"object"`
		Choices []struct {
			Message      chatMessage `json:"message"`
			FinishReason string      `json:"finish_reason"`
		} `json:"choices"`
		Usage usage `json:"usage"`
	}
	resp := postJSON(t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"max_tokens": 4, "ignore_eos": true}), &chat)
	if resp.StatusCode != http.StatusOK || resp.Header.Get(SimulatedHeader) != "true" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if chat.Object != "chat.completion" || len(chat.Choices) != 1 {
		t.Fatalf("response %+v", chat)
	}
	c := chat.Choices[0]
	if c.Message.Role != "assistant" || len(strings.Fields(c.Message.Content)) != 4 || c.FinishReason != "length" {
		t.Errorf("choice %+v", c)
	}
	if chat.Usage != (usage{PromptTokens: 9, CompletionTokens: 4, TotalTokens: 13}) {
		t.Errorf("usage %+v", chat.Usage)
	}

	var text struct {
		Object  string             `json:"object"`
		Choices []completionChoice `json:"choices"`
		Usage   usage              `json:"usage"`
	}
	postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": 6, "ignore_eos": true, "prompt": []int{1, 2, 3}}), &text)
	if text.Object != "text_completion" || len(text.Choices) != 1 || len(strings.Fields(text.Choices[0].Text)) != 6 {
		t.Fatalf("response %+v", text)
	}
	if text.Usage != (usage{PromptTokens: 3, CompletionTokens: 6, TotalTokens: 9}) {
		t.Errorf("usage %+v", text.Usage)
	}
}

func TestReasoning(t *testing.T) {
	srv := startSim(t, Config{Reasoning: true})
	res := postStream(t.Context(), t, http.DefaultClient, srv.URL+"/v1/chat/completions",
		chatBody(map[string]any{"stream": true, "max_tokens": 6, "ignore_eos": true}))
	if res.err != nil {
		t.Fatal(res.err)
	}
	var kinds []string
	for _, e := range res.events[1 : len(res.events)-1] {
		c := decodeChunk(t, e.data)
		switch d := c.Choices[0].Delta; {
		case d.ReasoningContent != nil && d.Content == nil:
			kinds = append(kinds, "r")
		case d.Content != nil && d.ReasoningContent == nil:
			kinds = append(kinds, "c")
		default:
			t.Errorf("chunk with neither or both kinds of text: %s", e.data)
		}
	}
	if got := strings.Join(kinds, ""); got != "rrrccc" {
		t.Errorf("token kinds %q, want rrrccc", got)
	}
	var chat struct {
		Choices []struct {
			Message chatMessage `json:"message"`
		} `json:"choices"`
	}
	postJSON(t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"max_tokens": 6, "ignore_eos": true}), &chat)
	m := chat.Choices[0].Message
	if m.ReasoningContent == nil || len(strings.Fields(*m.ReasoningContent)) != 3 || len(strings.Fields(m.Content)) != 3 {
		t.Errorf("message %+v", m)
	}
}

func TestTokenCounts(t *testing.T) {
	srv := startSim(t, Config{Seed: 7})
	t.Run("ignore_eos gives exactly max_tokens", func(t *testing.T) {
		for _, n := range []int{1, 2, 17, 100} {
			var out struct {
				Usage usage `json:"usage"`
			}
			postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": n, "ignore_eos": true}), &out)
			if out.Usage.CompletionTokens != n {
				t.Errorf("max_tokens %d: completion_tokens %d", n, out.Usage.CompletionTokens)
			}
		}
	})
	t.Run("natural length within min_tokens and max_tokens", func(t *testing.T) {
		seen := map[int]bool{}
		for i := 0; i < 40; i++ {
			var out struct {
				Choices []completionChoice `json:"choices"`
				Usage   usage              `json:"usage"`
			}
			postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": 12, "min_tokens": 8}), &out)
			n := out.Usage.CompletionTokens
			seen[n] = true
			if n < 8 || n > 12 {
				t.Fatalf("completion_tokens %d outside [8, 12]", n)
			}
			want := "stop"
			if n == 12 {
				want = "length"
			}
			if out.Choices[0].FinishReason != want {
				t.Errorf("%d tokens: finish_reason %q, want %q", n, out.Choices[0].FinishReason, want)
			}
		}
		if len(seen) < 3 {
			t.Errorf("40 requests gave only lengths %v: lengths should vary", seen)
		}
	})
	t.Run("default max tokens", func(t *testing.T) {
		srv := startSim(t, Config{DefaultMaxTokens: 3})
		var out struct {
			Usage usage `json:"usage"`
		}
		postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"ignore_eos": true}), &out)
		if out.Usage.CompletionTokens != 3 {
			t.Errorf("completion_tokens %d, want DefaultMaxTokens 3", out.Usage.CompletionTokens)
		}
	})
}

func TestDeterminism(t *testing.T) {
	run := func(seed int64) []string {
		srv := startSim(t, Config{Seed: seed, Fail500: 0.3})
		var got []string
		for i := 0; i < 12; i++ {
			resp, err := http.DefaultClient.Do(newPost(t.Context(), t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"max_tokens": 30})))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				ID      string `json:"id"`
				Choices []struct {
					Message chatMessage `json:"message"`
				} `json:"choices"`
			}
			if resp.StatusCode == http.StatusOK {
				if err := json.Unmarshal(raw, &out); err != nil {
					t.Fatal(err)
				}
				got = append(got, out.ID+" "+out.Choices[0].Message.Content)
			} else {
				got = append(got, resp.Status)
			}
		}
		return got
	}
	a, b, c := run(42), run(42), run(43)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("same seed, different output:\n%s\n---\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	if strings.Join(a, "\n") == strings.Join(c, "\n") {
		t.Errorf("seeds 42 and 43 gave the same output")
	}
	failed := 0
	for _, s := range a {
		if strings.HasPrefix(s, "500") {
			failed++
		}
	}
	if failed == 0 || failed == len(a) {
		t.Errorf("Fail500 0.3 failed %d of %d requests", failed, len(a))
	}
}

func TestModelsAndHealth(t *testing.T) {
	srv := startSim(t, Config{Model: "my-model"})
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get(SimulatedHeader) != "true" {
		t.Errorf("/health: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	resp, err = http.Get(srv.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID        string `json:"id"`
			Object    string `json:"object"`
			OwnedBy   string `json:"owned_by"`
			Root      string `json:"root"`
			Simulated bool   `json:"simulated"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 {
		t.Fatalf("models %+v", list)
	}
	m := list.Data[0]
	if m.ID != "my-model" || m.Object != "model" || m.OwnedBy != "tokenwatt-sim" || m.Root != "my-model" || !m.Simulated {
		t.Errorf("model card %+v", m)
	}
}

func TestRequestErrors(t *testing.T) {
	srv := startSim(t, Config{})
	chat, comp := srv.URL+"/v1/chat/completions", srv.URL+"/v1/completions"
	cases := []struct {
		name, url string
		body      any
		status    int
		errType   string
		param     string
		message   string
	}{
		{"bad JSON", chat, `{"model":`, 400, "BadRequestError", "", "JSON decode error"},
		{"wrong field type", chat, `{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}`, 400, "BadRequestError", "", "JSON decode error"},
		{"unknown model", chat, chatBody(map[string]any{"model": "gpt-9"}), 404, "NotFoundError", "model", "The model `gpt-9` does not exist."},
		{"unknown model, completions", comp, completionBody(map[string]any{"model": "gpt-9"}), 404, "NotFoundError", "model", "The model `gpt-9` does not exist."},
		{"missing messages", chat, map[string]any{"model": "tokenwatt-sim"}, 400, "BadRequestError", "messages", "messages: Field required"},
		{"missing prompt", comp, map[string]any{"model": "tokenwatt-sim"}, 400, "BadRequestError", "prompt", "Either prompt or prompt_embeds must be provided and non-empty."},
		{"batched prompt", comp, completionBody(map[string]any{"prompt": []string{"a", "b"}}), 400, "BadRequestError", "prompt", "does not batch"},
		{"max_tokens < min_tokens", chat, chatBody(map[string]any{"max_tokens": 5, "min_tokens": 10}), 400, "BadRequestError", "min_tokens", "min_tokens must be less than or equal to max_tokens=5, got 10."},
		{"max_tokens 0", comp, completionBody(map[string]any{"max_tokens": 0}), 400, "BadRequestError", "max_tokens", "max_tokens must be at least 1, got 0."},
		{"stream_options without stream", chat, chatBody(map[string]any{"stream_options": map[string]any{"include_usage": true}}), 400, "BadRequestError", "stream_options", "Stream options can only be defined when `stream=True`."},
		{"n > 1", chat, chatBody(map[string]any{"n": 2}), 400, "BadRequestError", "n", "n must be 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    int     `json:"code"`
				} `json:"error"`
			}
			resp := postJSON(t, c.url, c.body, &out)
			e := out.Error
			if resp.StatusCode != c.status || e.Code != c.status || e.Type != c.errType || !strings.Contains(e.Message, c.message) {
				t.Errorf("got %d %+v, want %d %s %q", resp.StatusCode, e, c.status, c.errType, c.message)
			}
			if (c.param == "") != (e.Param == nil) || (e.Param != nil && *e.Param != c.param) {
				t.Errorf("param %v, want %q", e.Param, c.param)
			}
			if resp.Header.Get(SimulatedHeader) != "true" {
				t.Errorf("error response lacks %s", SimulatedHeader)
			}
		})
	}
	t.Run("unknown path and method", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/v2/nothing")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("unknown path: %d", resp.StatusCode)
		}
		resp, err = http.Get(chat)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("GET chat: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"negative TTFT", func(c *Config) { c.TTFT = -time.Millisecond }, "TTFT"},
		{"negative PrefillPerToken", func(c *Config) { c.PrefillPerToken = -1 }, "PrefillPerToken"},
		{"negative ITL", func(c *Config) { c.ITL = -1 }, "ITL"},
		{"negative Jitter", func(c *Config) { c.Jitter = -1 }, "Jitter"},
		{"negative MaxNumSeqs", func(c *Config) { c.MaxNumSeqs = -1 }, "MaxNumSeqs"},
		{"negative DefaultMaxTokens", func(c *Config) { c.DefaultMaxTokens = -3 }, "DefaultMaxTokens"},
		{"negative SlowdownPerSeq", func(c *Config) { c.SlowdownPerSeq = -0.1 }, "SlowdownPerSeq"},
		{"Fail500 above 1", func(c *Config) { c.Fail500 = 1.5 }, "Fail500"},
		{"negative Garbage", func(c *Config) { c.Garbage = -0.1 }, "Garbage"},
		{"faults sum above 1", func(c *Config) { c.Stall, c.Disconnect = 0.6, 0.6 }, "sum"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("New: %v, want an error naming %s", err, c.field)
			}
		})
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}): %v", err)
	}
	got := s.Config()
	if got.Model != "tokenwatt-sim" || got.MaxNumSeqs != 256 || got.DefaultMaxTokens != 256 || got.TTFT != 0 {
		t.Errorf("zero Config filled in as %+v", got)
	}
}

func TestSlowdown(t *testing.T) {
	s, err := New(Config{ITL: 10 * time.Millisecond, SlowdownPerSeq: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	for running, want := range map[int]time.Duration{0: 10 * time.Millisecond, 1: 10 * time.Millisecond, 2: 15 * time.Millisecond, 5: 30 * time.Millisecond} {
		if got := s.itl(running); got != want {
			t.Errorf("itl(%d) = %v, want %v", running, got, want)
		}
	}
}

func TestStartStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	srv, err := Start(ctx, "127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(srv.URL + "/health")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still serving after its context ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close after context end: %v", err)
	}
	if _, err := Start(t.Context(), "127.0.0.1:-1", Config{}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:-1") {
		t.Errorf("Start on a bad address: %v", err)
	}
	if _, err := Start(t.Context(), "127.0.0.1:0", Config{TTFT: -1}); err == nil {
		t.Error("Start with a bad config succeeded")
	}
}

func TestMetrics(t *testing.T) {
	srv := startSim(t, Config{})
	for i := 0; i < 2; i++ {
		postJSON(t, srv.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": 4, "ignore_eos": true}), nil)
	}
	res := postStream(t.Context(), t, http.DefaultClient, srv.URL+"/v1/chat/completions",
		chatBody(map[string]any{"stream": true, "max_tokens": 3, "ignore_eos": true}))
	if res.err != nil {
		t.Fatal(res.err)
	}
	text := scrape(t, srv.URL)
	const l = `{model_name="tokenwatt-sim"}`
	for _, want := range []string{
		`vllm:request_success_total{finished_reason="length",model_name="tokenwatt-sim"} 3`,
		`vllm:request_success_total{finished_reason="stop",model_name="tokenwatt-sim"} 0`,
		`vllm:request_success_total{finished_reason="abort",model_name="tokenwatt-sim"} 0`,
		"vllm:generation_tokens_total" + l + " 11",
		"vllm:prompt_tokens_total" + l + " 23", // 7 + 7 + 9
		"vllm:num_requests_running" + l + " 0",
		"vllm:num_requests_waiting" + l + " 0",
		"vllm:time_to_first_token_seconds_count" + l + " 3",
		"vllm:e2e_request_latency_seconds_count" + l + " 3",
		"vllm:inter_token_latency_seconds_count" + l + " 8",
		"vllm:time_per_output_token_seconds_count" + l + " 8",
		"vllm:request_prompt_tokens_sum" + l + " 23",
		"vllm:request_generation_tokens_sum" + l + " 11",
		`tokenwatt_sim_info{model_name="tokenwatt-sim",simulated="true"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// TestSimulatedEverywhere checks the simulated marker on every endpoint.
func TestSimulatedEverywhere(t *testing.T) {
	srv := startSim(t, Config{})
	for _, path := range []string{"/health", "/v1/models", "/metrics", "/nowhere"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get(SimulatedHeader) != "true" {
			t.Errorf("%s: no %s header", path, SimulatedHeader)
		}
	}
}

func ExampleStart() {
	srv, err := Start(context.Background(), "127.0.0.1:0", Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt": "Hello", "max_tokens": 3, "ignore_eos": true}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var out struct {
		Usage usage `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Header.Get(SimulatedHeader), out.Usage.CompletionTokens)
	// Output: true 3
}
