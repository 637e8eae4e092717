package run

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/loadgen"
)

// outcomes are every value of the outcome label, for the run's metrics.
var outcomes = []string{
	string(backends.OutcomeOK), string(backends.OutcomeHTTP4xx), string(backends.OutcomeHTTP5xx),
	string(backends.OutcomeTimeout), string(backends.OutcomeCanceled), string(backends.OutcomeStreamError),
	string(backends.OutcomeConnectError),
}

// metricsSink feeds the run's metrics from completed records.
type metricsSink struct{ m *exporter.Run }

// Observe implements loadgen.Sink.
func (s metricsSink) Observe(r *loadgen.Record) {
	s.m.Observe(&exporter.Observation{
		Outcome: r.Outcome, TTFT: r.TTFT, TPOT: r.TPOT, E2E: r.E2E, ITL: r.ITL, MoreITL: r.MoreITL, ScheduleLag: r.ScheduleLag,
		PromptTokens: r.PromptTokens, OutputTokens: r.OutputTokens, EnergyJ: r.EnergyJ, SLOMet: r.SLOMet,
	})
}

// openFilesSink counts the requests that failed because this process ran
// out of file descriptors (EMFILE: "too many open files", in the dial
// error the client records).
type openFilesSink struct{ n atomic.Int64 }

// Observe implements loadgen.Sink.
func (s *openFilesSink) Observe(r *loadgen.Record) {
	if r.Error != nil && strings.Contains(*r.Error, "too many open files") {
		s.n.Add(1)
	}
}

// phases are the attributed energy counter's phase labels, in the order
// energy.Meter's Totals returns them.
var phases = [3]string{"prefill", "decode", "idle"}

// attributor is the runner's loadgen.Attributor over an energy.Meter: it
// fills each released record's energy and adds the newly attributed
// energy to the run's phase counter.
type attributor struct {
	meter     *energy.Meter[*loadgen.Record]
	metrics   *exporter.Run
	phaseSeen [3]float64 // prefill, decode, idle already added to the counter
}

// Add implements loadgen.Attributor.
func (a *attributor) Add(rec *loadgen.Record) {
	send, first, done := rec.Times()
	a.meter.Add(energy.Span{Send: send, First: first, Done: done}, rec)
}

// Advance implements loadgen.Attributor.
func (a *attributor) Advance(oldestInFlight time.Time) []*loadgen.Record {
	return a.released(a.meter.Advance(oldestInFlight))
}

// Finish implements loadgen.Attributor.
func (a *attributor) Finish() []*loadgen.Record { return a.released(a.meter.Finish()) }

func (a *attributor) released(rs []energy.Released[*loadgen.Record]) []*loadgen.Record {
	out := make([]*loadgen.Record, 0, len(rs))
	for _, r := range rs {
		r.ID.SetEnergy(r.Share.Prefill, r.Share.Decode)
		out = append(out, r.ID)
	}
	pre, dec, idle := a.meter.Totals()
	for i, v := range [3]float64{pre, dec, idle} {
		if d := v - a.phaseSeen[i]; d > 0 {
			a.metrics.AddAttributedEnergy(phases[i], d)
			a.phaseSeen[i] = v
		}
	}
	return out
}
