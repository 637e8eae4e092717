package dataset

import (
	"context"
	"reflect"
	"testing"
)

// TestTurns splits loaded conversations into their user turns: each
// turn's own messages (the recorded answers to the previous turn first),
// and its output length (the row's own for every turn, else the answer
// recorded after the turn); the first turn is the single-turn prompt.
func TestTurns(t *testing.T) {
	t.Parallel()
	content := chatRow + "\n" +
		// The row's output_len applies to every turn.
		`{"output_len": 7, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b c"}, {"role": "user", "content": "d"}]}` + "\n" +
		// Two user messages in a row, and a blank last answer: no lengths.
		`{"messages": [{"role": "user", "content": "e"}, {"role": "user", "content": "f"}, {"role": "assistant", "content": ""}]}` + "\n" +
		`{"messages": [{"role": "user", "content": "g"}, {"role": "assistant", "content": "one two three four five six"}, {"role": "tool", "content": "t"}, {"role": "user", "content": "h"}, {"role": "assistant", "content": "x"}]}` + "\n"
	set, err := Load(context.Background(), writeFile(t, "c.jsonl", content), Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, a := func(s string) Message { return Message{RoleUser, s} }, func(s string) Message { return Message{RoleAssistant, s} }
	want := [][]Turn{
		{{Messages: chatConv[:2], MaxTokens: 4}, {Messages: chatConv[2:], MaxTokens: 0}},
		{{Messages: []Message{u("a")}, MaxTokens: 7}, {Messages: []Message{a("b c"), u("d")}, MaxTokens: 7}},
		{{Messages: []Message{u("e")}}, {Messages: []Message{u("f")}}},
		// 6 words × 1.3 = 7.8: 8 tokens; "x": 1.
		{{Messages: []Message{u("g")}, MaxTokens: 8}, {Messages: []Message{a("one two three four five six"), {"tool", "t"}, u("h")}, MaxTokens: 1}},
	}
	if len(set.Prompts) != len(want) {
		t.Fatalf("%d prompts, want %d", len(set.Prompts), len(want))
	}
	for i := range set.Prompts {
		p := &set.Prompts[i]
		got := p.Turns()
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("row %d: turns %+v, want %+v", i+1, got, want[i])
			continue
		}
		if !reflect.DeepEqual(got[0].Messages, p.Messages) || got[0].MaxTokens != p.MaxTokens {
			t.Errorf("row %d: first turn %+v, but the single-turn prompt sends %+v with max_tokens %d", i+1, got[0], p.Messages, p.MaxTokens)
		}
	}

	// A prompt row has no turns.
	set, err = Load(context.Background(), writeFile(t, "p.jsonl", `{"prompt": "a"}`+"\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if turns := set.Prompts[0].Turns(); turns != nil {
		t.Errorf("prompt row: turns %+v, want none", turns)
	}
}
