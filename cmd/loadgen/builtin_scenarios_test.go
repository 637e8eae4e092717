package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNewBuiltinScenariosRun: each workload scenario runs on the built-in
// simulator without network (a few requests each): prefix_caching with
// exact prompt and answer lengths, chat_mix on its synthetic fallback,
// multi_turn_chat on a local chat file (it has no fallback).
func TestNewBuiltinScenariosRun(t *testing.T) {
	offlineHF(t)
	chat := filepath.Join(t.TempDir(), "chat.jsonl")
	if err := os.WriteFile(chat, []byte(
		`{"messages":[{"role":"user","content":"What is a token?"},{"role":"assistant","content":"A piece of text."},{"role":"user","content":"And energy per token?"},{"role":"assistant","content":"Joules divided by tokens."}]}`+"\n"+
			`{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi there."},{"role":"user","content":"Bye"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		scenario string
		extra    []string
		check    func(t *testing.T, out string)
	}{
		{"prefix_caching", []string{"--num-samples", "16", "-c", "4"}, func(t *testing.T, out string) {
			for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
				if r.PromptTokens == nil || r.PromptTokensTarget == nil || *r.PromptTokens != *r.PromptTokensTarget ||
					r.OutputTokens == nil || *r.OutputTokens != 64 {
					t.Errorf("record %d: prompt %v of %v tokens, output %v of 64", r.Seq, deref(r.PromptTokens), deref(r.PromptTokensTarget), deref(r.OutputTokens))
				}
			}
		}},
		{"chat_mix", []string{"--num-samples", "6", "--rate", "50"}, nil},
		{"multi_turn_chat", []string{"--num-samples", "5", "-c", "1", "--think-time", "0s", "--dataset", chat}, func(t *testing.T, out string) {
			turns := 0
			for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
				if r.Turn != nil && *r.Turn > 1 {
					turns++
				}
			}
			if turns == 0 {
				t.Errorf("no second turn recorded")
			}
		}},
	} {
		t.Run(c.scenario, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"-s", c.scenario, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--energy", "none",
				"--metrics-addr=", "--out", out}, c.extra...)
			res := runCLI(t, args...)
			if res.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
			}
			if c.check != nil {
				c.check(t, out)
			}
		})
	}
}
