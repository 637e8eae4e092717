package loadgen

import (
	"fmt"
	"math"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/stat"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/report"
)

// sketchAccuracy is the relative accuracy of every quantile in a Summary:
// a reported percentile is within 0.1 % of the true one (0.2 ms at a
// 200 ms TTFT), well inside the
// 1 % that the CSV summary promises.
const sketchAccuracy = 0.001

// Summary aggregates a run's measured Records into its CSV summary row.
// Its memory does not grow with the number of requests: distributions
// live in DDSketches (whose size depends only on the range of values) and
// means and token counts are exact sums.
//
// Percentile q is the sample at rank ⌊q·(n−1)⌋ (numpy's "lower"
// method) to within 0.5 %, and never outside the exact minimum and
// maximum.
//
// Every Record that carries a value contributes it, whatever its outcome:
// a failed request's TTFT or ITL was still measured. The request
// histograms must observe the same values for `loadgen dump` to reproduce
// this row from Prometheus. Only avg_latency_seconds is restricted to successful
// requests, as in the Python POC. Token totals count every request that
// reports them, failed ones included, because those tokens were generated
// (the POC counted successful requests only).
//
// A Summary is not safe for concurrent use; the runner feeds its sinks
// from one goroutine. Create one with NewSummary.
type Summary struct {
	total, ok int

	ttft, itl, tpot, e2e, lag *ddsketch.DDSketchWithExactSummaryStatistics

	// okE2E feeds the POC's avg_latency_seconds: E2E of successful
	// requests only.
	okE2E *stat.SummaryStatistics

	promptTokens, outputTokens int64
	// promptReports and outputReports count the requests that reported a
	// token count, so that "none reported" stays unknown rather than 0.
	promptReports, outputReports int
}

// NewSummary returns an empty Summary.
func NewSummary() *Summary {
	return &Summary{
		ttft:  newSketch(),
		itl:   newSketch(),
		tpot:  newSketch(),
		e2e:   newSketch(),
		lag:   newSketch(),
		okE2E: stat.NewSummaryStatistics(),
	}
}

func newSketch() *ddsketch.DDSketchWithExactSummaryStatistics {
	s, err := ddsketch.NewDefaultDDSketchWithExactSummaryStatistics(sketchAccuracy)
	if err != nil {
		// Only an accuracy outside (0, 1) fails, and sketchAccuracy is a
		// constant inside it.
		panic(fmt.Sprintf("ddsketch with accuracy %v: %v", sketchAccuracy, err))
	}
	return s
}

// Add counts one measured request: ok or failed by its outcome, and every
// value it carries. Nil values contribute nothing.
func (s *Summary) Add(r *Record) {
	s.total++
	if r.OK() {
		s.ok++
		if r.E2E != nil && finite(*r.E2E) {
			s.okE2E.Add(*r.E2E, 1)
		}
	}
	observe(s.ttft, r.TTFT)
	observe(s.tpot, r.TPOT)
	observe(s.e2e, r.E2E)
	observe(s.lag, &r.ScheduleLag)
	for i := range r.ITL {
		observe(s.itl, &r.ITL[i])
	}
	if r.PromptTokens != nil {
		s.promptTokens += int64(*r.PromptTokens)
		s.promptReports++
	}
	if r.OutputTokens != nil {
		s.outputTokens += int64(*r.OutputTokens)
		s.outputReports++
	}
}

// observe adds *v to sk unless v is nil or not a finite number.
func observe(sk *ddsketch.DDSketchWithExactSummaryStatistics, v *float64) {
	if v == nil || !finite(*v) {
		return
	}
	// With NaN and infinities excluded, Add fails only beyond ±1.8e308,
	// which no measured duration reaches; such a sample is dropped.
	_ = sk.Add(*v)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Merge adds everything o has counted to s, as if s had been given o's
// Records too. o is unchanged. On error s is unchanged as well.
func (s *Summary) Merge(o *Summary) error {
	pairs := []struct {
		name     string
		dst, src *ddsketch.DDSketchWithExactSummaryStatistics
	}{
		{"ttft", s.ttft, o.ttft},
		{"itl", s.itl, o.itl},
		{"tpot", s.tpot, o.tpot},
		{"e2e", s.e2e, o.e2e},
		{"schedule lag", s.lag, o.lag},
	}
	// Check every pair before changing any, so a failure leaves s whole.
	for _, p := range pairs {
		if !p.dst.IndexMapping.Equals(p.src.IndexMapping) {
			return fmt.Errorf("merge summaries: %s sketches have different index mappings", p.name)
		}
	}
	for _, p := range pairs {
		if err := p.dst.MergeWith(p.src); err != nil {
			return fmt.Errorf("merge summaries: %s sketch: %w", p.name, err)
		}
	}
	s.total += o.total
	s.ok += o.ok
	s.okE2E.MergeWith(o.okE2E)
	s.promptTokens += o.promptTokens
	s.outputTokens += o.outputTokens
	s.promptReports += o.promptReports
	s.outputReports += o.outputReports
	return nil
}

// Requests returns how many measured requests were added, how many
// succeeded and how many did not.
func (s *Summary) Requests() (total, ok, failed int) {
	return s.total, s.ok, s.total - s.ok
}

// TTFTQuantile returns the q-quantile (0 ≤ q ≤ 1) of TTFT in seconds so
// far, and false when no request has reported a TTFT yet.
func (s *Summary) TTFTQuantile(q float64) (float64, bool) {
	p := quantile(s.ttft, q)
	if p == nil {
		return 0, false
	}
	return *p, true
}

// RunInfo describes a run: what the Records themselves do not say.
type RunInfo struct {
	Name     string // benchmark_name
	RunID    string
	Scenario string
	Backend  string
	Model    string
	Endpoint string // any user:password in it is left out of the row
	// Start and End are the run window (docs/definitions.md, "Run
	// window"): the first measured send and the last completion. Zero
	// times are unknown.
	Start, End  time.Time
	RequestRate float64 // configured req/s; 0 is closed loop
	Concurrency int
	Arrival     string
	Warmup      int  // warm-up requests, sent first and excluded
	Simulated   bool // the target was tokenwatt's simulator (--sim, or detected)
	// CarbonIntensity is in g CO2eq/kWh; 0 leaves the column unknown.
	CarbonIntensity float64
}

// Row returns the run's CSV summary. Values that nothing measured (no
// TTFT reported, a zero-length window, no token counts) are unknown, never
// 0. The energy columns are left unknown with energy_source "none": a
// caller that measured energy fills them and sets the source.
func (s *Summary) Row(info RunInfo) *report.Row {
	total, ok, failed := s.Requests()
	row := &report.Row{
		BenchmarkName:     info.Name,
		Backend:           info.Backend,
		Model:             info.Model,
		TotalPrompts:      total,
		SuccessfulPrompts: ok,
		FailedPrompts:     failed,
		RunID:             info.RunID,
		Scenario:          info.Scenario,
		Endpoint:          backends.WithoutUserinfo(info.Endpoint),
		RequestRate:       new(info.RequestRate),
		Concurrency:       new(info.Concurrency),
		Arrival:           info.Arrival,
		WarmupRequests:    new(info.Warmup),
		Simulated:         info.Simulated,
		EnergySource:      "none",

		AvgLatencySeconds:     mean(s.okE2E.Sum(), s.okE2E.Count()),
		TTFTMeanSeconds:       mean(s.ttft.GetSum(), s.ttft.GetCount()),
		TTFTP50Seconds:        quantile(s.ttft, 0.50),
		TTFTP90Seconds:        quantile(s.ttft, 0.90),
		TTFTP99Seconds:        quantile(s.ttft, 0.99),
		ITLP50Seconds:         quantile(s.itl, 0.50),
		ITLP90Seconds:         quantile(s.itl, 0.90),
		ITLP99Seconds:         quantile(s.itl, 0.99),
		TPOTMeanSeconds:       mean(s.tpot.GetSum(), s.tpot.GetCount()),
		E2EP50Seconds:         quantile(s.e2e, 0.50),
		E2EP90Seconds:         quantile(s.e2e, 0.90),
		E2EP99Seconds:         quantile(s.e2e, 0.99),
		ScheduleLagP99Seconds: quantile(s.lag, 0.99),
	}
	if info.CarbonIntensity > 0 {
		row.CarbonIntensityGPerKWh = new(info.CarbonIntensity)
	}
	if !info.End.IsZero() {
		row.Timestamp = info.End.UTC()
	}

	if s.promptReports > 0 {
		row.TotalPromptTokens = new(s.promptTokens)
	}
	if s.outputReports > 0 {
		row.TotalCompletionTokens = new(s.outputTokens)
	}
	if row.TotalPromptTokens != nil && row.TotalCompletionTokens != nil {
		row.TotalTokens = new(s.promptTokens + s.outputTokens)
	}

	if info.Start.IsZero() || info.End.IsZero() || info.End.Before(info.Start) {
		return row
	}
	d := info.End.Sub(info.Start).Seconds()
	row.TotalDurationSeconds = new(d)
	if d > 0 {
		row.ThroughputTokensPerSecond = perSecond(row.TotalTokens, d)
		row.OutputThroughputTokensPerSecond = perSecond(row.TotalCompletionTokens, d)
	}
	return row
}

func perSecond(tokens *int64, seconds float64) *float64 {
	if tokens == nil {
		return nil
	}
	return new(float64(*tokens) / seconds)
}

func mean(sum, count float64) *float64 {
	if count == 0 {
		return nil
	}
	return new(sum / count)
}

func quantile(sk *ddsketch.DDSketchWithExactSummaryStatistics, q float64) *float64 {
	if sk.IsEmpty() {
		return nil
	}
	v, err := sk.GetValueAtQuantile(q)
	if err != nil {
		return nil
	}
	return &v
}
