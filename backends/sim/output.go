package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// output writes one request's response as its tokens are generated.
type output interface {
	begin() error                   // before queueing: a stream's headers
	stage(k int, text string) error // prepare the k-th token (1-based) ahead of its deadline
	emit(deadline time.Time) error  // at the deadline: send what stage prepared
	end() error                     // after the last token
}

// sseOutput streams vLLM's server-sent events, flushing after each.
type sseOutput struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	p     *plan
	model string
	buf   []byte
	next  []byte // the staged token's events
	stamp bool   // Config.StampChunks: each token's write starts with a StampPrefix line
	out   []byte // a stamped write's stamp line, written before next
	tmpl  tokenTemplates
}

func newSSEOutput(w http.ResponseWriter, p *plan, model string, stamp bool) *sseOutput {
	return &sseOutput{w: w, rc: http.NewResponseController(w), p: p, model: model, stamp: stamp}
}

func (o *sseOutput) begin() error {
	o.w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	o.w.Header().Set("Cache-Control", "no-cache")
	o.w.WriteHeader(http.StatusOK)
	return o.flush()
}

func (o *sseOutput) flush() error {
	if err := o.rc.Flush(); err != nil {
		return fmt.Errorf("flush event: %w", err)
	}
	return nil
}

// appendEvent appends "data: <v as JSON>\n\n" to dst. A garbage event is
// cut in half, as a torn write would leave it, so it is not valid JSON.
func appendEvent(dst []byte, v any, garbage bool) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("encode event: %w", err)
	}
	if garbage {
		payload = payload[:len(payload)/2]
	}
	return append(append(append(dst, "data: "...), payload...), "\n\n"...), nil
}

// send writes events and flushes them.
func (o *sseOutput) send(events []byte) error {
	if _, err := o.w.Write(events); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return o.flush()
}

// event writes and flushes one event.
func (o *sseOutput) event(v any, garbage bool) error {
	var err error
	if o.buf, err = appendEvent(o.buf[:0], v, garbage); err != nil {
		return err
	}
	return o.send(o.buf)
}

func (o *sseOutput) raw(payload []byte) error {
	o.buf = append(append(append(o.buf[:0], "data: "...), payload...), "\n\n"...)
	return o.send(o.buf)
}

// emit sends the staged token. Formatting happened in stage, before the
// deadline, so the bytes leave at the deadline rather than a JSON
// encoding later. With stamps, the write starts with the StampPrefix
// line: the time just before the write and how late that is after the
// deadline, formatted into a reused buffer (no allocation).
func (o *sseOutput) emit(deadline time.Time) error {
	if !o.stamp {
		return o.send(o.next)
	}
	now := time.Now()
	b := append(o.out[:0], StampPrefix...)
	b = strconv.AppendInt(b, now.UnixNano(), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(now.Sub(deadline)), 10)
	o.out = append(b, '\n')
	// Two writes into the response's buffer, one flush: the same bytes
	// leave together, without copying the staged events behind the stamp.
	if _, err := o.w.Write(o.out); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return o.send(o.next)
}

// stage formats the k-th token's events (for the first token, the role
// chunk too: vLLM sends both with its first engine output, and one flush
// carrying both keeps a text-less chunk from waking the client on its
// own).
func (o *sseOutput) stage(k int, text string) error {
	if o.staged(k, text) {
		return nil
	}
	o.next = o.next[:0]
	p := o.p
	last := k == p.outputTokens
	garbage := p.fault == faultGarbage && k == p.faultToken
	var finish *string
	if last {
		finish = &p.finishReason
	}
	var err error
	if p.api == apiCompletions {
		o.next, err = appendEvent(o.next, completionChunk{
			ID: p.id, Object: "text_completion", Created: p.created, Model: o.model,
			Choices: []completionChunkChoice{{Text: text, FinishReason: finish}},
		}, garbage)
		return err
	}
	if k == 1 {
		empty := ""
		if o.next, err = appendEvent(o.next, chatChunk{
			ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: o.model,
			Choices: []chatChunkChoice{{Delta: chatDelta{Role: "assistant", Content: &empty}}},
		}, false); err != nil {
			return err
		}
	}
	choice := chatChunkChoice{FinishReason: finish}
	if k <= p.reasoning {
		choice.Delta.ReasoningContent = &text
	} else {
		choice.Delta.Content = &text
	}
	if last {
		choice.StopReason = &jsonNull{}
	}
	o.next, err = appendEvent(o.next, chatChunk{
		ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: o.model,
		Choices: []chatChunkChoice{choice},
	}, garbage)
	return err
}

func (o *sseOutput) end() error {
	p := o.p
	if p.includeUsage {
		u := &usage{PromptTokens: p.promptTokens, CompletionTokens: p.outputTokens, TotalTokens: p.promptTokens + p.outputTokens}
		var v any
		if p.api == apiCompletions {
			v = completionChunk{ID: p.id, Object: "text_completion", Created: p.created, Model: o.model,
				Choices: []completionChunkChoice{}, Usage: u}
		} else {
			v = chatChunk{ID: p.id, Object: "chat.completion.chunk", Created: p.created, Model: o.model,
				Choices: []chatChunkChoice{}, Usage: u}
		}
		if err := o.event(v, false); err != nil {
			return err
		}
	}
	return o.raw([]byte("[DONE]"))
}

// jsonOutput collects the tokens and writes one JSON body at the end, as
// vLLM does for "stream": false.
type jsonOutput struct {
	w         http.ResponseWriter
	p         *plan
	model     string
	reasoning strings.Builder
	content   strings.Builder
}

func (o *jsonOutput) begin() error { return nil }

func (o *jsonOutput) stage(k int, text string) error {
	if k <= o.p.reasoning {
		o.reasoning.WriteString(text)
	} else {
		o.content.WriteString(text)
	}
	return nil
}

func (o *jsonOutput) emit(time.Time) error { return nil }

func (o *jsonOutput) end() error {
	p := o.p
	u := usage{PromptTokens: p.promptTokens, CompletionTokens: p.outputTokens, TotalTokens: p.promptTokens + p.outputTokens}
	var v any
	if p.api == apiCompletions {
		v = textCompletion{ID: p.id, Object: "text_completion", Created: p.created, Model: o.model, Usage: u,
			Choices: []completionChoice{{Text: o.content.String(), FinishReason: p.finishReason}}}
	} else {
		msg := chatMessage{Role: "assistant", Content: o.content.String(), ToolCalls: []struct{}{}}
		if p.reasoning > 0 {
			r := o.reasoning.String()
			msg.ReasoningContent = &r
		}
		v = chatCompletion{ID: p.id, Object: "chat.completion", Created: p.created, Model: o.model, Usage: u,
			Choices: []chatChoice{{Message: msg, FinishReason: p.finishReason}}}
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	if p.fault == faultGarbage {
		body = body[:len(body)/2]
	}
	o.w.Header().Set("Content-Type", "application/json")
	if _, err := o.w.Write(body); err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}
