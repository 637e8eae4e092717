package loadgen

import (
	"fmt"
	"math"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/report"
)

// sketchAccuracy is the relative accuracy of every quantile in a Summary:
// a reported percentile is within 0.1 % of the true one (0.2 ms at a
// 200 ms TTFT), well inside the
// 1 % that the CSV summary promises.
const sketchAccuracy = backends.GapAccuracy

// Summary aggregates a run's measured Records into its CSV summary row.
// Its memory does not grow with the number of requests: distributions
// live in DDSketches (whose size depends only on the range of values) and
// means and token counts are exact sums.
//
// Percentile q is the sample at rank ⌊q·(n−1)⌋ (numpy's "lower"
// method) to within 0.5 %, and never outside the exact minimum and
// maximum.
//
// Latency statistics and token totals are those of successful requests
// (outcome ok): a request that timed out or was canceled says nothing
// about how fast the server answers, and its tokens are not throughput.
// Failures are counted per outcome, and their tokens kept apart. The
// request histograms of the run's metrics observe the same values, so
// `loadgen dump` reproduces this row from Prometheus. The schedule lag is
// the client's: every send's counts, whatever became of the request.
//
// A Summary is not safe for concurrent use; the runner feeds its sinks
// from one goroutine. Create one with NewSummary.
type Summary struct {
	total, ok int
	outcomes  map[string]int // failed requests by outcome

	// Of successful requests.
	ttft, itl, tpot, e2e, e2eSched *ddsketch.DDSketchWithExactSummaryStatistics
	// Of every send.
	lag *ddsketch.DDSketchWithExactSummaryStatistics
	// Of every stamped text chunk, whatever became of its request
	// (report.json's client.lateness_s and server_timer_lateness_s):
	// the client's lateness and the simulator's timer lateness.
	lateness, timerLate *ddsketch.DDSketchWithExactSummaryStatistics
	// Stamps whose client lateness the clocks could not agree on.
	skewed int64
	// Their standard deviations, by the sketches' names in report.json.
	spread map[string]*moments

	// Successful requests' tokens. promptReports and outputReports count
	// the requests that reported a count, so that "none reported" stays
	// unknown rather than 0.
	promptTokens, outputTokens   int64
	promptReports, outputReports int
	// Failed requests' tokens, kept out of throughput and J per token.
	failedPromptTokens, failedOutputTokens   int64
	failedPromptReports, failedOutputReports int

	// The first and last measured send, for the achieved send rate.
	firstSend, lastSend time.Time

	// Successful requests by the finish reason the server gave (at most
	// MaxFinishReasons distinct ones, the rest under OtherFinishReason),
	// and those it gave none.
	finishReasons  map[string]int
	noFinishReason int

	// The requests' SLO outcomes (with an SLO).
	slo sloCount
}

// MaxFinishReasons bounds the distinct finish reasons a Summary counts
// apart: servers have a handful; a server that makes up a new one per
// request must not grow the summary (or report.json) without bound. The
// rest are counted under OtherFinishReason.
const MaxFinishReasons = 32

// OtherFinishReason counts the finish reasons beyond MaxFinishReasons.
const OtherFinishReason = "(other)"

// NewSummary returns an empty Summary.
func NewSummary() *Summary {
	return &Summary{
		outcomes: map[string]int{},
		ttft:     newSketch(),
		itl:      newSketch(),
		tpot:     newSketch(),
		e2e:      newSketch(),
		e2eSched: newSketch(),
		lag:      newSketch(),
		spread: map[string]*moments{"ttft": {}, "itl": {}, "tpot": {}, "e2e": {}, "e2e_from_sched": {}, "schedule_lag": {},
			latenessName: {}, timerLatenessName: {}},
		lateness:  newSketch(),
		timerLate: newSketch(),
	}
}

// The client-lateness distributions' names (report.json's client object,
// and their moments in Summary.spread).
const (
	latenessName      = "lateness"
	timerLatenessName = "server_timer_lateness"
)

// sketches are the summary's distributions by their report.json names.
func (s *Summary) sketches() map[string]*ddsketch.DDSketchWithExactSummaryStatistics {
	return map[string]*ddsketch.DDSketchWithExactSummaryStatistics{
		"ttft": s.ttft, "itl": s.itl, "tpot": s.tpot, "e2e": s.e2e, "e2e_from_sched": s.e2eSched, "schedule_lag": s.lag,
	}
}

// moments are a running count, mean and sum of squared deviations
// (Welford), for a standard deviation that needs no samples kept.
type moments struct {
	n        float64
	mean, m2 float64
}

func (m *moments) add(x float64) {
	m.n++
	d := x - m.mean
	m.mean += d / m.n
	m.m2 += d * (x - m.mean)
}

// merge adds o's values (Chan et al.'s parallel update).
func (m *moments) merge(o *moments) {
	if o.n == 0 {
		return
	}
	n := m.n + o.n
	d := o.mean - m.mean
	m.mean += d * o.n / n
	m.m2 += o.m2 + d*d*m.n*o.n/n
	m.n = n
}

// std is the population standard deviation (numpy's default).
func (m *moments) std() float64 {
	if m.n == 0 {
		return 0
	}
	return math.Sqrt(m.m2 / m.n)
}

// observeWith adds *v to sk and its moments m.
func observeWith(sk *ddsketch.DDSketchWithExactSummaryStatistics, m *moments, v *float64) {
	if v == nil || !finite(*v) {
		return
	}
	observe(sk, v)
	m.add(*v)
}

// Distributions are the run's distributions as report.json has them:
// count, mean, population std, min, max and report.ReportPercentiles,
// by name (ttft, itl, tpot, e2e, e2e_from_sched: successful requests';
// schedule_lag: every send's); nil for one with no value.
func (s *Summary) Distributions() map[string]*report.Distribution {
	out := map[string]*report.Distribution{}
	for name, sk := range s.sketches() {
		out[name] = distribution(sk, s.spread[name])
	}
	return out
}

// ClientLateness is the distribution, in seconds, of every stamped text
// chunk's client lateness (backends.Response.Lateness: a simulator's
// stamp of when it wrote the chunk to its arrival), and of the
// simulator's timer lateness (Response.ServerLate), as report.json's
// client.lateness_s and server_timer_lateness_s; nil when no stamp came.
// skewed counts the stamps whose client lateness the clocks could not
// agree on (left out).
func (s *Summary) ClientLateness() (lateness, timer *report.Distribution, skewed int64) {
	return distribution(s.lateness, s.spread[latenessName]), distribution(s.timerLate, s.spread[timerLatenessName]), s.skewed
}

// distribution is sk with its moments m (nil: no std) as report.json has
// it; nil when sk is empty.
func distribution(sk *ddsketch.DDSketchWithExactSummaryStatistics, m *moments) *report.Distribution {
	if sk.IsEmpty() {
		return nil
	}
	lo, _ := sk.GetMinValue()
	hi, _ := sk.GetMaxValue()
	d := &report.Distribution{Count: int64(sk.GetCount()), Mean: sk.GetSum() / sk.GetCount(),
		Min: lo, Max: hi, Percentiles: map[string]float64{}}
	if m != nil {
		d.Std = m.std()
	}
	for _, p := range report.ReportPercentiles {
		if v := quantile(sk, p/100); v != nil {
			d.Percentiles[report.PercentileKey(p)] = *v
		}
	}
	return d
}

// Quantile is the q-quantile (0 ≤ q ≤ 1) of the named distribution (as
// Distributions names them), and false when it has no value.
func (s *Summary) Quantile(name string, q float64) (float64, bool) {
	sk := s.sketches()[name]
	if sk == nil {
		return 0, false
	}
	p := quantile(sk, q)
	if p == nil {
		return 0, false
	}
	return *p, true
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

// Add counts one measured request: its send, its outcome, and, when it
// succeeded, every value it carries (nil values contribute nothing).
func (s *Summary) Add(r *Record) {
	s.total++
	s.slo.add(r)
	observeWith(s.lag, s.spread["schedule_lag"], &r.ScheduleLag)
	s.addLateness(r)
	if send, _, _ := r.Times(); !send.IsZero() {
		if s.firstSend.IsZero() || send.Before(s.firstSend) {
			s.firstSend = send
		}
		if send.After(s.lastSend) {
			s.lastSend = send
		}
	}
	if !r.OK() {
		s.outcomes[r.Outcome]++
		if r.PromptTokens != nil {
			addTokens(&s.failedPromptTokens, int64(*r.PromptTokens))
			s.failedPromptReports++
		}
		if r.OutputTokens != nil {
			addTokens(&s.failedOutputTokens, int64(*r.OutputTokens))
			s.failedOutputReports++
		}
		return
	}
	s.ok++
	if r.FinishReason != nil {
		s.countFinish(*r.FinishReason, 1)
	} else {
		s.noFinishReason++
	}
	observeWith(s.ttft, s.spread["ttft"], r.TTFT)
	observeWith(s.tpot, s.spread["tpot"], r.TPOT)
	observeWith(s.e2e, s.spread["e2e"], r.E2E)
	observeWith(s.e2eSched, s.spread["e2e_from_sched"], r.E2EFromSched)
	itl := s.spread["itl"]
	for i := range r.ITL {
		observeWith(s.itl, itl, &r.ITL[i])
	}
	s.addMoreITL(r.moreITL)
	if r.PromptTokens != nil {
		addTokens(&s.promptTokens, int64(*r.PromptTokens))
		s.promptReports++
	}
	if r.OutputTokens != nil {
		addTokens(&s.outputTokens, int64(*r.OutputTokens))
		s.outputReports++
	}
}

// addLateness counts a record's stamped chunks, whatever its outcome:
// the client's lateness is the client's, not the server's.
func (s *Summary) addLateness(r *Record) {
	late, timer := s.spread[latenessName], s.spread[timerLatenessName]
	for _, d := range r.lateness {
		v := d.Seconds()
		observeWith(s.lateness, late, &v)
	}
	for _, d := range r.serverLate {
		v := d.Seconds()
		observeWith(s.timerLate, timer, &v)
	}
	s.skewed += int64(r.skewed)
}

// countFinish counts n successful requests that finished for reason.
func (s *Summary) countFinish(reason string, n int) {
	if s.finishReasons == nil {
		s.finishReasons = map[string]int{}
	}
	if _, known := s.finishReasons[reason]; !known && len(s.finishReasons) >= MaxFinishReasons {
		reason = OtherFinishReason
	}
	s.finishReasons[reason] += n
}

// FinishReasons are the successful requests' counts by the finish reason
// the server gave, and how many it gave none.
func (s *Summary) FinishReasons() (counts map[string]int, none int) {
	counts = make(map[string]int, len(s.finishReasons))
	for k, n := range s.finishReasons {
		counts[k] = n
	}
	return counts, s.noFinishReason
}

// addTokens adds n tokens to *sum, saturating at the int64 range instead
// of wrapping. Measured counts are bounded per request
// (backends.MaxUsageTokens), so only records that were not measured
// (edited, or from elsewhere) can get there; the sum must still never
// turn negative.
func addTokens(sum *int64, n int64) {
	switch {
	case n > 0 && *sum > math.MaxInt64-n:
		*sum = math.MaxInt64
	case n < 0 && *sum < math.MinInt64-n:
		*sum = math.MinInt64
	default:
		*sum += n
	}
}

// addMoreITL adds the gaps a record left out of its itl_s (nil: none) to
// the ITL distribution, as if each had been observed: its sketch has the
// summary's accuracy, so every gap lands in the bin it would have had,
// and its count, sum, extremes and moments are exact.
func (s *Summary) addMoreITL(g *backends.GapSketch) {
	if g.Count() == 0 {
		return
	}
	if err := s.itl.MergeWith(g.Sketch()); err != nil {
		// Only a different accuracy fails (backends.GapAccuracy is
		// sketchAccuracy); then each bin counts at its value.
		g.ForEach(func(v float64, n int) { _ = s.itl.AddWithCount(v, float64(n)) })
	}
	n, mean, m2 := g.Moments()
	m := s.spread["itl"]
	if m == nil {
		m = &moments{}
		s.spread["itl"] = m
	}
	m.merge(&moments{n: n, mean: mean, m2: m2})
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
		{"e2e from schedule", s.e2eSched, o.e2eSched},
		{"schedule lag", s.lag, o.lag},
		{"client lateness", s.lateness, o.lateness},
		{"server timer lateness", s.timerLate, o.timerLate},
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
	for name, m := range o.spread {
		if s.spread[name] == nil {
			s.spread[name] = &moments{}
		}
		s.spread[name].merge(m)
	}
	s.total += o.total
	s.ok += o.ok
	s.skewed += o.skewed
	for k, n := range o.outcomes {
		s.outcomes[k] += n
	}
	for k, n := range o.finishReasons {
		s.countFinish(k, n)
	}
	s.noFinishReason += o.noFinishReason
	s.slo.merge(&o.slo)
	addTokens(&s.promptTokens, o.promptTokens)
	addTokens(&s.outputTokens, o.outputTokens)
	s.promptReports += o.promptReports
	s.outputReports += o.outputReports
	addTokens(&s.failedPromptTokens, o.failedPromptTokens)
	addTokens(&s.failedOutputTokens, o.failedOutputTokens)
	s.failedPromptReports += o.failedPromptReports
	s.failedOutputReports += o.failedOutputReports
	if !o.firstSend.IsZero() && (s.firstSend.IsZero() || o.firstSend.Before(s.firstSend)) {
		s.firstSend = o.firstSend
	}
	if o.lastSend.After(s.lastSend) {
		s.lastSend = o.lastSend
	}
	return nil
}

// Failures are the failed requests' counts by outcome.
func (s *Summary) Failures() map[string]int {
	m := make(map[string]int, len(s.outcomes))
	for k, n := range s.outcomes {
		m[k] = n
	}
	return m
}

// Requests returns how many measured requests were added, how many
// succeeded and how many did not.
func (s *Summary) Requests() (total, ok, failed int) {
	return s.total, s.ok, s.total - s.ok
}

// TTFTQuantile returns the q-quantile (0 ≤ q ≤ 1) of successful
// requests' TTFT in seconds so far, and false when none has reported a
// TTFT yet.
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
	// SLO is the run's SLO as scenario.SLO writes it; "" leaves the SLO
	// columns unknown.
	SLO string
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

		Failures:              report.FormatFailures(s.outcomes),
		AvgLatencySeconds:     mean(s.e2e.GetSum(), s.e2e.GetCount()),
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
		total := s.promptTokens
		addTokens(&total, s.outputTokens)
		row.TotalTokens = new(total)
	}
	if s.failedPromptReports > 0 {
		row.FailedPromptTokens = new(s.failedPromptTokens)
	}
	if s.failedOutputReports > 0 {
		row.FailedOutputTokens = new(s.failedOutputTokens)
	}
	// Achieved send rate: sends / (last send - first send), as
	// docs/definitions.md defines it.
	if span := s.lastSend.Sub(s.firstSend).Seconds(); s.total > 1 && span > 0 {
		row.SendRate = new(float64(s.total) / span)
	}

	if info.Start.IsZero() || info.End.IsZero() || info.End.Before(info.Start) {
		s.slo.apply(row, info.SLO, 0)
		return row
	}
	d := info.End.Sub(info.Start).Seconds()
	s.slo.apply(row, info.SLO, d)
	row.TotalDurationSeconds = new(d)
	if d > 0 {
		row.ThroughputTokensPerSecond = perSecond(row.TotalTokens, d)
		row.OutputThroughputTokensPerSecond = perSecond(row.TotalCompletionTokens, d)
		row.CompletionRate = new(float64(s.ok) / d)
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
