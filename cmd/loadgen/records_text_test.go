package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestFinishReasonAndSaveText runs the same requests against two
// identical simulators, once without and once with --save-text. Every
// record has the simulator's finish reason ("length" exactly when the
// answer reached max_tokens, else "stop"), streamed and not, chat and
// completions, and report.json and the table count them. With
// --save-text the records hold the prompt sent (the chat messages, or the
// text) and the answer; without it, neither the prompts nor those very
// answers appear in any file under OUT.
func TestFinishReasonAndSaveText(t *testing.T) {
	dir := t.TempDir()
	const secret = "zebra-quartz private question"
	dataset := filepath.Join(dir, "chat.jsonl")
	if err := os.WriteFile(dataset, []byte(
		`{"messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "`+secret+` one"}]}`+"\n"+
			`{"messages": [{"role": "user", "content": "`+secret+` two"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const n, maxTokens = 12, 6
	simCfg := sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond, Seed: 5}

	for _, tc := range []struct {
		name string
		args []string
		chat bool
	}{
		{name: "chat, streamed", chat: true},
		{name: "completions, not streamed", args: []string{"--api", "completions", "--no-stream"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(saveText bool) (string, cliResult) {
				out := t.TempDir()
				args := append([]string{"--endpoint", startSim(t, simCfg), "--energy", "none", "--idle-baseline", "0s", "--dataset", dataset,
					"--num-samples", "12", "--max-tokens", "6", "--min-tokens", "1", "--out", out, "--run-id", "r"}, tc.args...)
				if saveText {
					args = append(args, "--save-text")
				}
				res := runCLI(t, args...)
				if res.code != 0 {
					t.Fatalf("save text %v: exit %d: %s", saveText, res.code, res.stderr)
				}
				return out, res
			}
			plainOut, plain := run(false)
			savedOut, _ := run(true)

			// Finish reasons, both runs.
			counts := map[string]int{}
			for _, r := range readRecords(t, runFile(t, plainOut, "records.jsonl")) {
				want := "stop"
				if deref(r.OutputTokens) == maxTokens {
					want = "length"
				}
				if !r.OK() || r.FinishReason == nil || *r.FinishReason != want {
					t.Errorf("record %d: %s, %v tokens, finish reason %v; want %s", r.Seq, r.Outcome, deref(r.OutputTokens), deref(r.FinishReason), want)
				}
				counts[want]++
				if r.Prompt != nil || r.Text != nil || r.TextTruncated != nil {
					t.Errorf("record %d without --save-text: prompt %v, text %v, truncated %v", r.Seq, r.Prompt, deref(r.Text), deref(r.TextTruncated))
				}
			}
			if counts["length"] == 0 || counts["stop"] == 0 {
				t.Fatalf("finish reasons %v: want both (the simulator's lengths are uniform in [1, %d])", counts, maxTokens)
			}
			var rep report.Report
			data, err := os.ReadFile(runFile(t, plainOut, "report.json"))
			if err != nil || json.Unmarshal(data, &rep) != nil {
				t.Fatalf("report.json: %v", err)
			}
			if !reflect.DeepEqual(rep.Requests.FinishReasons, counts) || rep.Requests.NoFinishReason != 0 || rep.Settings.SaveText {
				t.Errorf("report.json finish_reasons %v, no_finish_reason %d, save_text %v; want %v, 0, false",
					rep.Requests.FinishReasons, rep.Requests.NoFinishReason, rep.Settings.SaveText, counts)
			}
			if !strings.Contains(plain.stdout, "finish reason, ok requests") || !strings.Contains(plain.stdout, "length ") || !strings.Contains(plain.stdout, "stop ") {
				t.Errorf("table without the finish reasons:\n%s", plain.stdout)
			}

			// --save-text: the prompt sent and the answer.
			var answers []string
			for _, r := range readRecords(t, runFile(t, savedOut, "records.jsonl")) {
				if r.Text == nil || r.TextTruncated == nil || *r.TextTruncated || len(strings.Fields(*r.Text)) != deref(r.OutputTokens) {
					t.Errorf("record %d: text %v (truncated %v), %v tokens", r.Seq, deref(r.Text), deref(r.TextTruncated), deref(r.OutputTokens))
					continue
				}
				answers = append(answers, *r.Text)
				var want any = secret + []string{" one", " two"}[r.PromptIndex]
				if tc.chat {
					want = [][]any{
						{map[string]any{"role": "system", "content": "Be terse."}, map[string]any{"role": "user", "content": secret + " one"}},
						{map[string]any{"role": "user", "content": secret + " two"}},
					}[r.PromptIndex]
				} else if r.PromptIndex == 0 {
					want = "Be terse.\n\n" + secret + " one"
				}
				if !reflect.DeepEqual(r.Prompt, want) {
					t.Errorf("record %d: prompt %#v, want %#v", r.Seq, r.Prompt, want)
				}
			}
			if len(answers) != n {
				t.Fatalf("%d answers saved, want %d", len(answers), n)
			}
			data, err = os.ReadFile(runFile(t, savedOut, "report.json"))
			if err != nil || json.Unmarshal(data, &rep) != nil || !rep.Settings.SaveText {
				t.Errorf("report.json save_text %v (%v), want true", rep.Settings.SaveText, err)
			}

			// Without --save-text, nothing of them anywhere in OUT; not in
			// the --save-text run's report.json or summary either.
			secrets := []string{secret}
			for _, a := range answers {
				if len(strings.Fields(a)) >= 3 { // a word or two can be anywhere
					secrets = append(secrets, a)
				}
			}
			if len(secrets) < 4 {
				t.Fatalf("only %d answers of 3 words or more to look for: %q", len(secrets)-1, answers)
			}
			found := grepTree(t, plainOut, secrets)
			for _, f := range []string{filepath.Join(savedOut, "summary.csv"), runFile(t, savedOut, "report.json")} {
				found = append(found, grepFile(t, f, secrets)...)
			}
			if strings.Contains(plain.stdout+plain.stderr, secret) {
				found = append(found, "the terminal output")
			}
			if len(found) > 0 {
				t.Errorf("prompt or answer text in %v", found)
			}
		})
	}
}

// grepTree names the files under dir that contain any of needles.
func grepTree(t *testing.T, dir string, needles []string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		found = append(found, grepFile(t, path, needles)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func grepFile(t *testing.T, path string, needles []string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range needles {
		if strings.Contains(string(data), s) {
			found = append(found, path+": "+s)
		}
	}
	return found
}

// TestExtraBody: --extra-body and the scenario's extra_body reach the
// server in every request, the flag's keys over the scenario's; a key
// tokenwatt sets itself, from either, is an input error naming it and
// the flag to use; a value that is not a JSON object is one too.
func TestExtraBody(t *testing.T) {
	simURL := startSim(t, sim.Config{TTFT: time.Millisecond, ITL: time.Millisecond})
	requests, endpoint := logRequests(t, simURL)
	dir := t.TempDir()
	sc := filepath.Join(dir, "reasoning.yaml")
	if err := os.WriteFile(sc, []byte("name: reasoning\ndataset: synthetic\nnum_samples: 3\nmax_tokens: 4\n"+
		"extra_body:\n  reasoning_effort: high\n  chat_template_kwargs:\n    enable_thinking: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res := runCLI(t, "--scenario", sc, "--endpoint", endpoint, "--energy", "none", "--out", out,
		"--extra-body", `{"reasoning_effort": "low", "top_k": 20}`)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	bodies := requests.all()
	if len(bodies) != 3 {
		t.Fatalf("%d requests, want 3", len(bodies))
	}
	for i, b := range bodies {
		if b["reasoning_effort"] != "low" || b["top_k"] != 20.0 || !reflect.DeepEqual(b["chat_template_kwargs"], map[string]any{"enable_thinking": true}) ||
			b["max_tokens"] != 4.0 || b["stream"] != true {
			t.Errorf("request %d: %v", i, b)
		}
	}
	data, err := os.ReadFile(runFile(t, out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"reasoning_effort": "low", "top_k": 20.0, "chat_template_kwargs": map[string]any{"enable_thinking": true}}
	if !reflect.DeepEqual(rep.Settings.ExtraBody, want) || !strings.Contains(rep.BenchmarkName, `extra_body={"chat_template_kwargs":{"enable_thinking":true},"reasoning_effort":"low","top_k":20}`) {
		t.Errorf("report.json extra_body %v, benchmark_name %q", rep.Settings.ExtraBody, rep.BenchmarkName)
	}

	reserved := filepath.Join(dir, "reserved.yaml")
	if err := os.WriteFile(reserved, []byte("name: reserved\ndataset: synthetic\nnum_samples: 1\nextra_body:\n  stream: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(requests.all())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--extra-body", `{"max_tokens": 5}`}, `extra body key "max_tokens" is one tokenwatt sets itself; use --max-tokens (scenario key max_tokens)`},
		{[]string{"--extra-body", `{"stream_options": {}}`}, `extra body key "stream_options" is one tokenwatt sets itself`},
		{[]string{"--scenario", reserved}, `extra body key "stream" is one tokenwatt sets itself; use --stream or --no-stream`},
		{[]string{"--backend", "pytorch", "--endpoint", endpoint, "--extra-body", `{"max_new_tokens": 5}`}, `extra body key "max_new_tokens" is one tokenwatt sets itself`},
		{[]string{"--extra-body", `["low"]`}, `--extra-body: not a JSON object`},
	} {
		res := runCLI(t, append([]string{"--endpoint", endpoint, "--energy", "none", "--dataset", "synthetic", "--num-samples", "1", "--out", t.TempDir()}, tc.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %s; want %d and %q", tc.args, res.code, res.stderr, exitUsage, tc.want)
		}
	}
	if n := len(requests.all()); n != before {
		t.Errorf("%d requests sent by refused runs", n-before)
	}
}
