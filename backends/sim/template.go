package sim

import (
	"bytes"
	"encoding/json"
)

// A stream's ordinary token events (neither the first, which carries the
// role chunk, nor the last, which carries the finish reason, nor a
// garbled one) differ only in the token's text. tokenTemplates encodes
// such an event once per stream with encoding/json, around a placeholder
// text, and keeps the bytes either side of it: each token then costs
// appending its text instead of encoding the whole chunk by reflection,
// which was a tenth of the simulator's CPU at 1,000 streams. The bytes
// are the same.
type tokenTemplates struct {
	off   bool             // tests: always encode by reflection
	built [2]bool          // content, reasoning_content
	tmpl  [2]tokenTemplate // valid where built; empty where the placeholder was not found once
}

// tokenTemplate is an event's bytes before and after its text's JSON
// string.
type tokenTemplate struct{ before, after []byte }

// placeholder is a text no id or model name holds: encoding/json writes
// it as "\u0000tokenwatt\u0000".
const placeholder = "\x00tokenwatt\x00"

// staged formats the k-th token's event into o.next from a template, and
// reports false where it cannot (stage then encodes it).
func (o *sseOutput) staged(k int, text string) bool {
	p := o.p
	if o.tmpl.off || k == 1 || k == p.outputTokens || (p.fault == faultGarbage && k == p.faultToken) {
		return false
	}
	i := 0
	if p.api == apiChat && k <= p.reasoning {
		i = 1
	}
	if !o.tmpl.built[i] {
		o.tmpl.built[i] = true
		o.tmpl.tmpl[i] = o.newTemplate(i == 1)
	}
	t := &o.tmpl.tmpl[i]
	if t.before == nil {
		return false
	}
	next := append(o.next[:0], t.before...)
	next, ok := appendPlainString(next, text)
	if !ok {
		return false
	}
	o.next = append(next, t.after...)
	return true
}

// newTemplate encodes this stream's ordinary token event around
// placeholder; reasoning puts the text in reasoning_content. It returns
// an empty template if the placeholder is not found exactly once.
func (o *sseOutput) newTemplate(reasoning bool) tokenTemplate {
	p := o.p
	text := placeholder
	var v any
	switch {
	case p.api == apiCompletions:
		v = completionChunk{ID: p.id, Object: "text_completion", Created: p.created, Model: o.model,
			Choices: []completionChunkChoice{{Text: text}}}
	case reasoning:
		v = chatChunk{ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: o.model,
			Choices: []chatChunkChoice{{Delta: chatDelta{ReasoningContent: &text}}}}
	default:
		v = chatChunk{ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: o.model,
			Choices: []chatChunkChoice{{Delta: chatDelta{Content: &text}}}}
	}
	event, err := appendEvent(nil, v, false)
	if err != nil {
		return tokenTemplate{}
	}
	quoted, _ := json.Marshal(placeholder)
	i := bytes.Index(event, quoted)
	if i < 0 || bytes.Count(event, quoted) != 1 {
		return tokenTemplate{}
	}
	return tokenTemplate{before: event[:i:i], after: event[i+len(quoted):]}
}

// appendPlainString appends s as a JSON string if encoding/json would
// write it unchanged between quotes (printable ASCII, none of " \ < > &),
// and reports false, appending nothing, otherwise.
func appendPlainString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return dst, false
		}
	}
	return append(append(append(dst, '"'), s...), '"'), true
}
