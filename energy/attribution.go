package energy

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Span is one request's life as attribution sees it: sent at Send, first
// text at First (zero if none came), ended at Done. Prefill is
// [Send, First], decode [First, Done]; a request with no first token is
// all prefill.
type Span struct {
	Send, First, Done time.Time
}

// Share is the energy attributed to one request, in joules.
type Share struct {
	Prefill, Decode float64
}

// Total is the request's energy.
func (s Share) Total() float64 { return s.Prefill + s.Decode }

// Attribution shares measured energy among requests (docs/energy.md,
// "Per-request attribution").
//
// Energy arrives as a cumulative total E(t) at sample times (AddSample,
// from the sampler's goroutine), read as linear between samples. Requests
// arrive when they complete (Add). The run window is [T0, T1]: T0 the
// earliest send, T1 the latest completion. Energy is final up to a time F
// once no request that could overlap [.., F] is still unknown: F is the
// earlier of the oldest in-flight request's intended send time and the
// latest completion seen. Each stretch [a, b] of the window up to F is
// shared out when it becomes final: the part of it that no request
// covers goes to idle; the rest goes to the requests that overlap it, in
// proportion to their overlap, split into prefill and decode by each
// request's own phases. So Σ requests + idle = E(T1) − E(T0) exactly (up
// to float rounding), and no share is ever negative while E never
// decreases (the sampler guarantees that).
//
// A request's share is final, and it is released, once F has passed its
// Done. Memory holds only the samples and requests not yet final.
type Attribution[ID any] struct {
	mu      sync.Mutex
	samples []energyPoint // E(t) samples not yet behind final; the first is at or before final

	pending []*pendingRequest[ID] // added, not yet released
	t0      time.Time             // earliest send seen (zero: none yet)
	t1      time.Time             // latest completion seen
	final   time.Time             // energy is attributed up to here (zero: nothing yet)

	prefillJ, decodeJ, idleJ float64
}

type energyPoint struct {
	t time.Time
	e float64
}

type pendingRequest[ID any] struct {
	span  Span
	share Share
	id    ID // the caller's handle, returned on release
}

// NewAttribution returns an empty attribution of requests identified by
// an ID of the caller's choosing (a record, a sequence number).
func NewAttribution[ID any]() *Attribution[ID] { return &Attribution[ID]{} }

// AddSample appends the cumulative energy (joules, never decreasing) at t.
// Samples must come in time order.
func (a *Attribution[ID]) AddSample(t time.Time, energyJ float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.samples); n > 0 && !t.After(a.samples[n-1].t) {
		return
	}
	a.samples = append(a.samples, energyPoint{t, energyJ})
}

// Add registers a completed request; id comes back from Release when its
// share is final.
func (a *Attribution[ID]) Add(span Span, id ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if span.Done.Before(span.Send) {
		span.Done = span.Send
	}
	if !span.First.IsZero() && (span.First.Before(span.Send) || span.First.After(span.Done)) {
		span.First = time.Time{}
	}
	if a.t0.IsZero() || span.Send.Before(a.t0) {
		a.t0 = span.Send
	}
	if span.Done.After(a.t1) {
		a.t1 = span.Done
	}
	a.pending = append(a.pending, &pendingRequest[ID]{span: span, id: id})
}

// Released is a request whose share is final.
type Released[ID any] struct {
	ID    ID
	Share Share
}

// Advance attributes energy up to min(oldestInFlight, latest completion,
// last sample) and returns the requests whose shares became final, in the
// order they were added. oldestInFlight is the earliest intended send
// time of a request sent but not yet Added (zero: none in flight).
func (a *Attribution[ID]) Advance(oldestInFlight time.Time) []Released[ID] {
	a.mu.Lock()
	defer a.mu.Unlock()
	bound := a.t1
	if !oldestInFlight.IsZero() && oldestInFlight.Before(bound) {
		bound = oldestInFlight
	}
	a.advanceTo(bound)
	return a.release()
}

// Finish attributes everything up to the last completion and releases
// every request. Call it once no request is in flight and a sample at or
// after the last completion has been added; requests that outlive the
// samples get what the samples cover.
func (a *Attribution[ID]) Finish() []Released[ID] {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.advanceTo(a.t1)
	out := a.release()
	for _, p := range a.pending {
		out = append(out, Released[ID]{ID: p.id, Share: p.share})
	}
	a.pending = nil
	return out
}

// Totals are the energy attributed so far, by phase.
func (a *Attribution[ID]) Totals() (prefill, decode, idle float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.prefillJ, a.decodeJ, a.idleJ
}

// Window is the run window [T0, T1] seen so far.
func (a *Attribution[ID]) Window() (t0, t1 time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.t0, a.t1
}

// release returns the pending requests whose Done is behind final.
func (a *Attribution[ID]) release() []Released[ID] {
	var out []Released[ID]
	kept := a.pending[:0]
	for _, p := range a.pending {
		if !a.final.IsZero() && !p.span.Done.After(a.final) {
			out = append(out, Released[ID]{ID: p.id, Share: p.share})
			continue
		}
		kept = append(kept, p)
	}
	clear(a.pending[len(kept):])
	a.pending = kept
	return out
}

// advanceTo attributes the window's energy from final up to bound, as far
// as the samples reach.
func (a *Attribution[ID]) advanceTo(bound time.Time) {
	if a.t0.IsZero() || len(a.samples) < 2 {
		return
	}
	if last := a.samples[len(a.samples)-1].t; last.Before(bound) {
		bound = last
	}
	start := a.final
	if start.IsZero() || start.Before(a.t0) {
		start = a.t0
	}
	if first := a.samples[0].t; start.Before(first) {
		// No sample reaches back to T0: the energy before the first
		// sample is unknown and stays out of every share and of E.
		start = first
	}
	if !start.Before(bound) {
		return
	}
	// Walk the sample intervals that overlap [start, bound].
	for i := 1; i < len(a.samples); i++ {
		p, q := a.samples[i-1], a.samples[i]
		lo, hi := maxTime(p.t, start), minTime(q.t, bound)
		if !lo.Before(hi) {
			continue
		}
		a.share(lo, hi, interpolate(p, q, lo), interpolate(p, q, hi))
	}
	a.final = bound
	// Drop samples wholly behind final, keeping the one at or before it.
	k := 0
	for k+1 < len(a.samples) && !a.samples[k+1].t.After(a.final) {
		k++
	}
	a.samples = slices.Delete(a.samples, 0, k)
}

// share divides the energy eb−ea of [lo, hi] between the requests that
// overlap it and idle.
func (a *Attribution[ID]) share(lo, hi time.Time, ea, eb float64) {
	de := eb - ea
	if de <= 0 {
		return
	}
	length := hi.Sub(lo).Seconds()
	type piece struct {
		p               *pendingRequest[ID]
		prefill, decode float64 // overlap in seconds
	}
	var pieces []piece
	var covers [][2]time.Time
	total := 0.0
	for _, p := range a.pending {
		s := p.span
		from, to := maxTime(s.Send, lo), minTime(s.Done, hi)
		if !from.Before(to) {
			continue
		}
		pc := piece{p: p}
		if s.First.IsZero() {
			pc.prefill = to.Sub(from).Seconds()
		} else {
			pc.prefill = overlap(from, to, s.Send, s.First)
			pc.decode = overlap(from, to, s.First, s.Done)
		}
		total += pc.prefill + pc.decode
		pieces = append(pieces, pc)
		covers = append(covers, [2]time.Time{from, to})
	}
	if total <= 0 {
		a.idleJ += de
		return
	}
	covered := unionLength(covers)
	busy := de * math.Min(1, covered/length)
	a.idleJ += de - busy
	for _, pc := range pieces {
		pre := busy * pc.prefill / total
		dec := busy * pc.decode / total
		pc.p.share.Prefill += pre
		pc.p.share.Decode += dec
		a.prefillJ += pre
		a.decodeJ += dec
	}
}

func overlap(a0, a1, b0, b1 time.Time) float64 {
	lo, hi := maxTime(a0, b0), minTime(a1, b1)
	if !lo.Before(hi) {
		return 0
	}
	return hi.Sub(lo).Seconds()
}

// unionLength is the total length, in seconds, of the union of spans.
func unionLength(spans [][2]time.Time) float64 {
	slices.SortFunc(spans, func(x, y [2]time.Time) int { return x[0].Compare(y[0]) })
	total := 0.0
	var cur [2]time.Time
	for i, s := range spans {
		switch {
		case i == 0:
			cur = s
		case !s[0].After(cur[1]):
			cur[1] = maxTime(cur[1], s[1])
		default:
			total += cur[1].Sub(cur[0]).Seconds()
			cur = s
		}
	}
	if len(spans) > 0 {
		total += cur[1].Sub(cur[0]).Seconds()
	}
	return total
}

// interpolate reads E at t between samples p and q, linearly.
func interpolate(p, q energyPoint, t time.Time) float64 {
	span := q.t.Sub(p.t)
	if span <= 0 {
		return q.e
	}
	f := float64(t.Sub(p.t)) / float64(span)
	return p.e + (q.e-p.e)*f
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
