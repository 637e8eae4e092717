package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// exchange is one generation request as the server got it, and the
// answer's text as the server streamed it.
type exchange struct {
	body   map[string]any
	answer string
}

// exchangeLog serves target (a simulator) through a reverse proxy on
// 127.0.0.1 that keeps every POST's JSON body and the text of its
// streamed answer.
type exchangeLog struct {
	mu sync.Mutex
	ex []exchange
}

// teeWriter copies what the proxy writes to the client.
type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func logExchanges(t *testing.T, target string) (*exchangeLog, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l := &exchangeLog{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			proxy.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("request body %s: %v", body, err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		tee := &teeWriter{ResponseWriter: w}
		proxy.ServeHTTP(tee, r)
		answer := sseAnswer(t, tee.buf.Bytes())
		l.mu.Lock()
		l.ex = append(l.ex, exchange{m, answer})
		l.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return l, srv.URL
}

func (l *exchangeLog) all() []exchange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ex
}

// sseAnswer joins the content (chat) or text (completions) of a stream's
// chunks.
func sseAnswer(t *testing.T, stream []byte) string {
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(stream))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Text  string `json:"text"`
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Errorf("SSE data %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			b.WriteString(ch.Text + ch.Delta.Content)
		}
	}
	return b.String()
}

// TestMultiTurn replays a ShareGPT dataset's conversations against the
// simulator, through a proxy that sees what each turn sends: with the
// server's history, each turn sends exactly the previous request's
// messages, the answer the server streamed to it and the next user turn;
// with the dataset's, exactly the recorded conversation so far (as text
// on the completions API). Each turn's max_tokens is its recorded
// answer's length; records carry conversation_id and turn; and on the
// simulator's prefill model TTFT grows with the history.
func TestMultiTurn(t *testing.T) {
	type m = map[string]any
	msg := func(role, content string) m { return m{"role": role, "content": content} }
	// The conversations, and each turn's max_tokens: its recorded answer's
	// words × 1.3, rounded, else the scenario's 20.
	convs := [][]m{
		{msg("system", "You answer briefly."), msg("user", "What does a watt measure?"), msg("assistant", "One joule per second."),
			msg("user", "And a kilowatt-hour?"), msg("assistant", "A kilowatt for one hour, 3.6 megajoules."),
			msg("user", "Per token, then?"), msg("assistant", "It depends.")},
		{msg("user", "Name a unit of energy."), msg("assistant", "The joule."), msg("user", "Another one?"), msg("assistant", "The calorie, for food.")},
		{msg("user", "Say nothing.")},
	}
	maxTokens := [][]float64{{5, 9, 3}, {3, 5}, {20}}
	var rows []string
	for _, c := range convs {
		var turns []string
		for _, x := range c {
			from := map[string]string{"system": "system", "user": "human", "assistant": "gpt"}[x["role"].(string)]
			turns = append(turns, `{"from": "`+from+`", "value": "`+x["content"].(string)+`"}`)
		}
		rows = append(rows, `{"conversations": [`+strings.Join(turns, ", ")+`]}`)
	}
	dataset := filepath.Join(t.TempDir(), "chats.json")
	if err := os.WriteFile(dataset, []byte("["+strings.Join(rows, ",\n")+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// prefix finds the conversation whose first user message is first and
	// returns its messages up to and including its k-th user message.
	prefix := func(t *testing.T, first string, k int) (conv int, msgs []any) {
		t.Helper()
		for i, c := range convs {
			var users []int
			for j, x := range c {
				if x["role"] == "user" {
					users = append(users, j)
				}
			}
			if len(users) >= k && c[users[0]]["content"] == first {
				for _, y := range c[:users[k-1]+1] {
					msgs = append(msgs, y)
				}
				return i, msgs
			}
		}
		t.Fatalf("no conversation starts with %q and has %d turns", first, k)
		return 0, nil
	}
	users := func(msgs []any) (first string, n int) {
		for _, x := range msgs {
			if x.(m)["role"] == "user" {
				if n == 0 {
					first = x.(m)["content"].(string)
				}
				n++
			}
		}
		return first, n
	}
	notAnswers := func(msgs []any) (out []any) {
		for _, x := range msgs {
			if x.(m)["role"] != "assistant" {
				out = append(out, x)
			}
		}
		return out
	}

	const ttft, prefill = time.Millisecond, 5 * time.Millisecond
	simURL := startSim(t, sim.Config{TTFT: ttft, PrefillPerToken: prefill, ITL: time.Millisecond})
	for _, tc := range []struct {
		name    string
		args    []string
		samples int
		check   func(t *testing.T, all []exchange, e exchange) (conv, turn int)
	}{
		{name: "server history, two at once", args: []string{"-c", "2", "--think-time", "10ms"}, samples: 12,
			check: func(t *testing.T, all []exchange, e exchange) (int, int) {
				msgs := e.body["messages"].([]any)
				first, k := users(msgs)
				conv, want := prefix(t, first, k)
				if !reflect.DeepEqual(notAnswers(msgs), notAnswers(want)) {
					t.Errorf("turn %d sent %v, want the conversation's %v with the server's answers", k, msgs, want)
				}
				if k == 1 {
					if !reflect.DeepEqual(msgs, want) {
						t.Errorf("first turn sent %v, want %v", msgs, want)
					}
					return conv, k
				}
				// The previous turn's request, and the answer it got.
				prev, answer := msgs[:len(msgs)-2], msgs[len(msgs)-2].(m)
				found := false
				for _, o := range all {
					if reflect.DeepEqual(o.body["messages"], prev) && answer["role"] == "assistant" && answer["content"] == o.answer {
						found = true
					}
				}
				if !found {
					t.Errorf("turn %d's history %v is not a request the server got plus the answer it streamed", k, msgs)
				}
				return conv, k
			}},
		{name: "dataset history", args: []string{"--history", "dataset"}, samples: 6,
			check: func(t *testing.T, _ []exchange, e exchange) (int, int) {
				msgs := e.body["messages"].([]any)
				first, k := users(msgs)
				conv, want := prefix(t, first, k)
				if !reflect.DeepEqual(msgs, want) {
					t.Errorf("turn %d sent %v, want the recorded conversation %v", k, msgs, want)
				}
				return conv, k
			}},
		{name: "dataset history on the completions API", args: []string{"--history", "dataset", "--api", "completions"}, samples: 6,
			check: func(t *testing.T, _ []exchange, e exchange) (int, int) {
				prompt := e.body["prompt"].(string)
				for conv, c := range convs {
					k := 0
					for j, x := range c {
						if x["role"] != "user" {
							continue
						}
						k++
						var parts []string
						for _, y := range c[:j+1] {
							parts = append(parts, y["content"].(string))
						}
						if prompt == strings.Join(parts, "\n\n") {
							return conv, k
						}
					}
				}
				t.Errorf("prompt %q is no conversation's turns so far, joined by blank lines", prompt)
				return 0, 1
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, endpoint := logExchanges(t, simURL)
			out := t.TempDir()
			res := runCLI(t, append([]string{"--endpoint", endpoint, "--energy", "none", "--idle-baseline", "0s", "--dataset", dataset,
				"--multi-turn", "--num-samples", strconv.Itoa(tc.samples), "--max-tokens", "20", "--min-tokens", "0", "--ignore-eos", "--out", out}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("exit %d: %s", res.code, res.stderr)
			}
			if want := "multi-turn: concurrency and rate count conversations, requests count turns"; !strings.Contains(res.stderr, want) {
				t.Errorf("log does not say %q:\n%s", want, res.stderr)
			}
			all := log.all()
			if len(all) != tc.samples {
				t.Fatalf("%d requests, want %d", len(all), tc.samples)
			}
			for _, e := range all {
				conv, k := tc.check(t, all, e)
				if want := maxTokens[conv][k-1]; e.body["max_tokens"] != want {
					t.Errorf("conversation %d turn %d sent max_tokens %v, want %v", conv, k, e.body["max_tokens"], want)
				}
			}

			recs := readRecords(t, runFile(t, out, "records.jsonl"))
			byConv := map[int64][]loadgen.Record{}
			for _, r := range recs {
				if r.ConversationID == nil || r.Turn == nil || !r.OK() {
					t.Fatalf("record %d: %s, conversation_id %v, turn %v", r.Seq, r.Outcome, deref(r.ConversationID), deref(r.Turn))
				}
				byConv[*r.ConversationID] = append(byConv[*r.ConversationID], r)
				// The simulator waits its prefill for every prompt token.
				if floor := (ttft + time.Duration(*r.PromptTokens)*prefill).Seconds(); *r.TTFT < floor {
					t.Errorf("conversation %d turn %d: TTFT %.4fs with %d prompt tokens, below the prefill model's %.4fs",
						*r.ConversationID, *r.Turn, *r.TTFT, *r.PromptTokens, floor)
				}
			}
			var firstTTFT, lastTTFT float64
			for conv, rs := range byConv {
				for k, r := range rs {
					if *r.Turn != k+1 || r.PromptIndex != int(conv)%len(convs) {
						t.Fatalf("conversation %d: record %d is turn %d of prompt %d", conv, k, *r.Turn, r.PromptIndex)
					}
					if k > 0 && *r.PromptTokens <= *rs[k-1].PromptTokens {
						t.Errorf("conversation %d turn %d: %d prompt tokens, not more than the turn before's %d", conv, k+1, *r.PromptTokens, *rs[k-1].PromptTokens)
					}
				}
				if len(rs) > 1 {
					firstTTFT += *rs[0].TTFT
					lastTTFT += *rs[len(rs)-1].TTFT
				}
			}
			// Later turns carry the history: they wait longer for their
			// first token.
			if lastTTFT <= firstTTFT {
				t.Errorf("last turns' TTFT sum %.4fs is not above first turns' %.4fs", lastTTFT, firstTTFT)
			}

			data, err := os.ReadFile(runFile(t, out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			var rep report.Report
			if err := json.Unmarshal(data, &rep); err != nil || rep.Settings.MultiTurn == nil {
				t.Errorf("report.json settings.multi_turn %+v (%v)", rep.Settings.MultiTurn, err)
			}
		})
	}

	// Prompts are no conversations, and the multi-turn settings need
	// --multi-turn: both are bad input, found before the first request.
	prompts := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(prompts, []byte(`{"prompt": "hi"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--dataset", prompts, "--multi-turn"},
			"multi_turn replays conversations, but dataset " + prompts + " has prompt rows: give a chat (messages) or ShareGPT (conversations) dataset"},
		{[]string{"--dataset", dataset, "--think-time", "1s"},
			"think_time: applies to multi-turn conversations only: set multi_turn: true (--multi-turn)"},
	} {
		res := runCLI(t, append([]string{"--endpoint", simURL, "--energy", "none", "--num-samples", "2"}, bad.args...)...)
		if res.code != exitUsage || !strings.Contains(lastLine(res.stderr), bad.want) {
			t.Errorf("%v: exit %d, last line %q; want %d and %q", bad.args, res.code, lastLine(res.stderr), exitUsage, bad.want)
		}
	}
}
