package run

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// stageSink counts each stage's requests from their records' stage, for
// report.json's stages. It is fed by the runner's collector and read once
// the runner has returned.
type stageSink struct{ stages []stageCounts }

type stageCounts struct {
	requests, ok, ttftN, e2eN, outputReports int
	ttftSum, e2eSum, energyJ, okEnergyJ      float64
	outputTokens, okTokensWithEnergy         int64
}

func newStageSink(sc *scenario.Scenario) *stageSink {
	n := len(sc.Stages)
	if sc.Ramp != nil {
		n = 1
	}
	return &stageSink{stages: make([]stageCounts, n)}
}

// Observe implements loadgen.Sink.
func (s *stageSink) Observe(r *loadgen.Record) {
	if r.Stage == nil || *r.Stage < 0 || *r.Stage >= len(s.stages) {
		return
	}
	c := &s.stages[*r.Stage]
	c.requests++
	if r.EnergyJ != nil {
		c.energyJ += *r.EnergyJ
	}
	if !r.OK() {
		return
	}
	c.ok++
	if r.TTFT != nil {
		c.ttftSum += *r.TTFT
		c.ttftN++
	}
	if r.E2E != nil {
		c.e2eSum += *r.E2E
		c.e2eN++
	}
	if r.OutputTokens != nil {
		c.outputTokens += int64(*r.OutputTokens)
		c.outputReports++
		if r.EnergyJ != nil {
			c.okEnergyJ += *r.EnergyJ
			c.okTokensWithEnergy += int64(*r.OutputTokens)
		}
	}
}

// stagePlan is a stage of sc as report.json describes it: the stages, or
// the ramp as one stage.
type stagePlan struct {
	spec         string
	rate, rateTo *float64
	concurrency  int
	dur          time.Duration
}

func stagePlans(sc *scenario.Scenario) []stagePlan {
	if r := sc.Ramp; r != nil {
		return []stagePlan{{spec: r.String(), rate: new(r.From), rateTo: new(r.To), concurrency: sc.Concurrency, dur: r.Duration}}
	}
	out := make([]stagePlan, len(sc.Stages))
	for i, st := range sc.Stages {
		p := stagePlan{spec: st.String(), concurrency: st.Concurrency, dur: st.Duration}
		if st.Rate > 0 {
			p.rate = new(st.Rate)
			if p.concurrency == 0 {
				p.concurrency = sc.Concurrency
			}
		}
		out[i] = p
	}
	return out
}

// expected is what an open-loop stage's rate asks for in its first ran
// seconds: the rate's integral.
func (p *stagePlan) expected(ran float64) float64 {
	from, to := *p.rate, *p.rate
	if p.rateTo != nil {
		to = *p.rateTo
	}
	return from*ran + (to-from)*ran*ran/(2*p.dur.Seconds())
}

// countSD is the standard deviation of the count of arrivals the
// scenario's process gives around its expected value by chance: none for
// constant arrivals, √n for poisson, √(n/k) for gamma of shape k (a
// renewal process's count has variance n·CV² of its gaps). A shard's,
// every N-th arrival, is a renewal process whose gaps are sums of N: √N
// times less.
func countSD(sc *scenario.Scenario, n float64) float64 {
	switch sc.Arrival {
	case scenario.ArrivalPoisson:
		return math.Sqrt(n)
	case scenario.ArrivalGamma:
		if sc.Burstiness > 0 {
			return math.Sqrt(n / sc.Burstiness)
		}
	}
	return 0
}

// stageStats is report.json's stages: each stage's plan, span and counts.
func (r *Run) stageStats(spans []loadgen.StageSpan) []report.StageStats {
	if r.stages == nil {
		return nil
	}
	plans := stagePlans(r.share)
	out := make([]report.StageStats, len(plans))
	for i := range plans {
		p := &plans[i]
		c := &r.stages.stages[i]
		s := report.StageStats{Index: i, Spec: p.spec, Rate: p.rate, RateTo: p.rateTo, Concurrency: p.concurrency,
			DurationS: p.dur.Seconds(), Requests: c.requests, OK: c.ok, Failed: c.requests - c.ok}
		if i < len(spans) {
			started := spans[i].Start.UTC()
			s.Started = &started
			s.RanS = spans[i].End.Sub(spans[i].Start).Seconds()
		}
		if s.RanS > 0 {
			s.SendRate = new(float64(c.requests) / s.RanS)
		}
		if p.rate != nil && s.Started != nil {
			s.ExpectedRequests = new(p.expected(s.RanS))
		}
		if c.ttftN > 0 {
			s.TTFTMeanS = new(c.ttftSum / float64(c.ttftN))
		}
		if c.e2eN > 0 {
			s.E2EMeanS = new(c.e2eSum / float64(c.e2eN))
		}
		if c.outputReports > 0 {
			s.OutputTokens = new(c.outputTokens)
		}
		if r.meter != nil {
			s.EnergyJ = new(c.energyJ)
			if c.okTokensWithEnergy > 0 {
				s.JoulesPerOutputToken = new(c.okEnergyJ / float64(c.okTokensWithEnergy))
			}
		}
		if s.ExpectedRequests != nil {
			s.Warning = report.StageShortfall(&s, countSD(r.sc, *s.ExpectedRequests)/math.Sqrt(float64(max(1, r.cfg.Shard.Count))))
		}
		out[i] = s
	}
	return out
}

// stagesWarning is the row's rate_warning for a run with stages: the
// open-loop stages that fell short of their rate, and what the pacer saw
// over the run.
func stagesWarning(stages []report.StageStats, p report.Pacing) string {
	var short []string
	for _, s := range stages {
		if s.Warning != "" {
			short = append(short, s.Warning)
		}
	}
	if len(short) == 0 {
		return ""
	}
	w := "stages below 95 % of their rate: " + strings.Join(short, "; ")
	if p.CapWaits > 0 && p.Paced > 0 {
		w += fmt.Sprintf("; %.0f %% of open-loop sends waited for an in-flight slot: raise --concurrency (or the server is slower than the rate)", 100*float64(p.CapWaits)/float64(p.Paced))
	}
	if p.ClientSaturated {
		w += "; the client was saturated (client_saturated): it could not send on time"
	}
	return w
}

// target is the runner's target as the metrics export it.
func (r *Run) target() exporter.Target {
	t := r.runner.Target()
	return exporter.Target{Stage: t.Stage, Rate: t.Rate, Concurrency: t.Concurrency}
}

// Target is what the schedule asks for now (stage, rate, concurrency),
// for progress lines.
func (r *Run) Target() loadgen.Target {
	if r.runner == nil {
		return loadgen.Target{Stage: -1}
	}
	return r.runner.Target()
}

// Started is when the measured requests started (zero before then), for
// progress lines: the idle baseline and the warm-up are not the run's
// time.
func (r *Run) Started() time.Time {
	if r.runner == nil {
		return time.Time{}
	}
	return r.runner.Started()
}
