package loadgen

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// This file is multi-turn replay (docs/definitions.md, "Multi-turn
// conversations"): a conversation's user turns are sent in order, each
// with the history so far, each a measured request of its own.

// turnRef is the conversation turn a measured request is.
type turnRef struct {
	conversation int64 // 0-based order of the conversation's start in the run
	turn         int   // 1-based
	keepText     bool  // keep the answer: the next turn's history needs it
}

// roleAssistant is the chat role of an answer.
const roleAssistant = "assistant"

// conversation replays conversation conv (the run's conv-th, 0-based) of
// the dataset's prompt conv mod len(prompts). Its first turn is due at
// sched (zero: closed loop, due when sent); each later one is due a think
// time after the previous one ended. Each turn is request number
// Runner.turns of the run; the run stops counting (StopCount) once the
// last of num_samples is taken. The conversation ends after its last
// turn, at a failed turn (there is no answer to go on from), or when
// scheduling stops.
func (r *Runner) conversation(conv int64, sched time.Time) {
	sc := r.cfg.Scenario
	idx := int(conv % int64(len(r.cfg.Prompts)))
	p := &r.cfg.Prompts[idx]
	turns := p.Turns
	if len(turns) == 0 {
		msgs := p.Messages
		if len(msgs) == 0 {
			msgs = []backends.Message{{Role: "user", Content: p.Text}}
		}
		turns = []Turn{{Messages: msgs, MaxTokens: p.MaxTokens}}
	}
	serverHistory := sc.History != scenario.HistoryDataset
	think := newThinkTime(sc, conv)
	limit := int64(sc.NumSamples)
	var (
		history  []backends.Message
		answer   string
		prevDone time.Time
	)
	for k := range turns {
		t := &turns[k]
		if k > 0 {
			sched = prevDone.Add(think.next())
			if !r.sleepUntil(sched) {
				return
			}
		}
		if r.stopped() {
			return
		}
		seq := r.turns.Add(1) - 1
		switch {
		case limit > 0 && seq >= limit:
			return
		case limit > 0 && seq == limit-1:
			// The last request of the run: no conversation starts or
			// goes on after it (it still completes).
			r.stop(StopCount)
		}
		switch {
		case k == 0 || !serverHistory:
			history = append(history, t.Messages...)
		default:
			// The server's answer replaces the answers the dataset
			// recorded for the previous turn.
			history = append(history, backends.Message{Role: roleAssistant, Content: answer})
			for _, m := range t.Messages {
				if m.Role != roleAssistant {
					history = append(history, m)
				}
			}
		}
		req := Prompt{Text: flatten(history), Messages: history, MaxTokens: t.MaxTokens}
		ref := turnRef{conversation: conv, turn: k + 1, keepText: serverHistory && k+1 < len(turns)}
		var ok bool
		if ok, prevDone, answer = r.measurePrompt(r.shard.global(seq), sched, idx, &req, &ref, -1); !ok {
			return
		}
	}
}

// sleepUntil waits until at, or until scheduling stops (false).
func (r *Runner) sleepUntil(at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return !r.stopped()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.stopCtx.Done():
		return false
	}
}

// flatten is a history as text, for the APIs that take text (completions,
// PyTorch): its non-empty contents joined by a blank line, without a chat
// template, as loadgen/dataset flattens a single turn's messages.
func flatten(msgs []backends.Message) string {
	if len(msgs) == 1 {
		return msgs[0].Content
	}
	var b strings.Builder
	for _, m := range msgs {
		if strings.TrimSpace(m.Content) == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(m.Content)
	}
	return b.String()
}

// thinkTime draws a conversation's pauses between turns: the scenario's
// think_time exactly, or exponentially distributed with that mean, from
// a generator seeded by the scenario's seed and the conversation, so the
// same seed gives each conversation the same pauses.
type thinkTime struct {
	mean time.Duration
	rng  *rand.Rand // nil: constant
}

func newThinkTime(sc *scenario.Scenario, conv int64) *thinkTime {
	t := &thinkTime{mean: sc.ThinkTime}
	if sc.ThinkTimeDistribution == scenario.ThinkExponential && sc.ThinkTime > 0 {
		t.rng = rand.New(rand.NewPCG(uint64(seedOf(sc)), uint64(conv)))
	}
	return t
}

func (t *thinkTime) next() time.Duration {
	if t.rng == nil {
		return t.mean
	}
	return seconds(t.rng.ExpFloat64() * t.mean.Seconds())
}
