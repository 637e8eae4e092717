package loadgen

import (
	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// Prompt is what one request sends: a dataset row as the runner needs it.
type Prompt struct {
	// Text is what the completions API and the PyTorch backend send; the
	// chat API sends it as the one user message when Messages is empty.
	Text string
	// Messages, when set, is what the chat API sends (e.g. a system
	// prompt and a user turn).
	Messages []backends.Message
	// MaxTokens is the prompt's own output length; 0: the scenario's
	// max_tokens.
	MaxTokens int
	// MinTokens, with MaxTokens, is the prompt's own min_tokens: equal
	// to MaxTokens when the output length is to be exact (output_len);
	// 0: the scenario's, lowered to MaxTokens.
	MinTokens int
	// InputTokens is the prompt's target length in tokens (synthetic
	// prompts), recorded beside what the server reports; 0: none.
	InputTokens int
	// Turns, for a conversation, are its user turns in order, which a
	// multi-turn run sends one after the other with the history so far;
	// the first is what Text, Messages and MaxTokens send alone. Empty:
	// a multi-turn run sends the prompt as a conversation of one turn.
	Turns []Turn
}

// Turn is one user turn of a conversation.
type Turn struct {
	// Messages are the turn's own messages: those after the previous
	// turn's user message, up to and including this turn's. Assistant
	// messages among them are the answers the dataset recorded for the
	// previous turn.
	Messages []backends.Message
	// MaxTokens is the turn's own output length; 0: the scenario's
	// max_tokens.
	MaxTokens int
}

// TextPrompts makes prompts that carry only text.
func TextPrompts(texts ...string) []Prompt {
	prompts := make([]Prompt, len(texts))
	for i, t := range texts {
		prompts[i].Text = t
	}
	return prompts
}

// requestTokens returns the max_tokens and min_tokens a request for p
// sends: the prompt's own output length, when it has one, replaces the
// scenario's max_tokens, and lowers min_tokens to it when above (so that,
// with ignore_eos, the request generates exactly that many tokens); the
// prompt's own min_tokens replaces the scenario's.
func requestTokens(sc *scenario.Scenario, p *Prompt) (maxTokens, minTokens int) {
	maxTokens, minTokens = sc.MaxTokens, sc.MinTokens
	if p.MaxTokens > 0 {
		maxTokens, minTokens = p.MaxTokens, min(minTokens, p.MaxTokens)
		if p.MinTokens > 0 {
			minTokens = min(p.MinTokens, p.MaxTokens)
		}
	}
	return maxTokens, minTokens
}

// setTargets records in rec the lengths the request for p asked for.
func setTargets(rec *Record, sc *scenario.Scenario, p *Prompt) {
	if maxTokens, _ := requestTokens(sc, p); maxTokens > 0 {
		rec.MaxTokens = &maxTokens
	}
	if p.InputTokens > 0 {
		rec.PromptTokensTarget = ptr(p.InputTokens)
	}
}
