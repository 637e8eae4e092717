// Package compare is `loadgen compare`: two or more runs side by side,
// from their report.json and records.jsonl, with a statistical verdict on
// each figure that the requests allow one for.
//
// Method (docs/compare.md): each run's measured requests are resampled
// with replacement (a percentile bootstrap, Options.Resamples times,
// seeded); each tested figure is computed on every resample of the base
// run and of the new run, and the central Options.Confidence interval of
// new/base − 1 over the resamples is the confidence interval of the
// relative difference. A difference is significant when that interval
// excludes 0. Latencies and J per output token count the ok requests, as
// the summary does.
//
// The package reads the files; it does not link the load generator
// (ARCHITECTURE.md): the records' fields it reads are checked against
// loadgen.Record by a test.
package compare

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tokenwatt/tokenwatt/report"
)

// Schema names the layout of compare's JSON output.
const Schema = "tokenwatt.compare/v1"

// Defaults of Options.
const (
	DefaultConfidence = 0.95
	DefaultResamples  = 2000
)

// MinRequests is the fewest requests a figure's interval rests on in each
// run: with fewer the percentile bootstrap's coverage falls short of its
// level (and its verdict would be too quick). A quantile q needs, besides,
// 2/(1−q) values (two beyond it): p99 needs 200.
const MinRequests = 50

// Options choose the test.
type Options struct {
	Confidence float64 // of the intervals, in (0, 1); 0 is DefaultConfidence
	Resamples  int     // bootstrap resamples; 0 is DefaultResamples
	Seed       uint64  // of the resamples
	// AllowDifferent compares runs that differ in scenario, dataset,
	// token bounds or GPUs; otherwise Compare refuses them.
	AllowDifferent bool
	// FailOn are the regressions that fail the comparison.
	FailOn []Threshold
}

func (o *Options) defaults() {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.Resamples == 0 {
		o.Resamples = DefaultResamples
	}
}

// Direction says which way a figure is better.
type Direction int

// Lower (latency, energy per token), Higher (throughput, goodput), or
// Neither (power, energy, achieved rates: context, not merit).
const (
	Neither Direction = iota
	Lower
	Higher
)

// metric is one figure compare shows.
type metric struct {
	name  string // in --fail-on and the JSON: joules_per_output_token
	label string // in the table
	unit  string // of the displayed values
	scale float64
	// better says which way is better.
	better Direction
	// fromReport reads the figure from a report (nil: unknown).
	fromReport func(r *report.Report) *float64
	// stat, when set, makes the figure tested: the statistic over a
	// run's requests (rep gives the run window).
	stat func(reqs []request, rep *report.Report) *statistic
	// slo: only when both runs have the same SLO.
	slo bool
}

// Metrics are the figures compare shows, in order; the tested ones can be
// named in --fail-on.
var metrics = []metric{
	{name: "joules_per_output_token", label: "J/output token", unit: "J", scale: 1, better: Lower,
		fromReport: func(r *report.Report) *float64 {
			return energyField(r, func(e *report.ReportEnergy) *float64 { return e.JoulesPerOutputToken })
		},
		stat: func(q []request, _ *report.Report) *statistic {
			has := func(i int) bool { return q[i].ok() && q[i].EnergyJ != nil && q[i].OutputTokens != nil }
			return ratioStat(len(q), func(i int) (float64, bool) { return deref(q[i].EnergyJ), has(i) },
				func(i int) (float64, bool) { return float64(derefInt(q[i].OutputTokens)), has(i) }, 0)
		}},
	latency("ttft_p50", "TTFT p50", "ttft", 0.5),
	latency("ttft_p99", "TTFT p99", "ttft", 0.99),
	{name: "itl_p50", label: "ITL p50", unit: "ms", scale: 1000, better: Lower,
		fromReport: func(r *report.Report) *float64 { return percentile(r, "itl", "p50") }},
	{name: "tpot_mean", label: "TPOT mean", unit: "ms", scale: 1000, better: Lower,
		fromReport: func(r *report.Report) *float64 {
			if d := r.Latency["tpot"]; d != nil {
				return &d.Mean
			}
			return nil
		},
		stat: func(q []request, _ *report.Report) *statistic {
			return meanStat(len(q), okValue(q, func(r *request) *float64 { return r.TPOT }))
		}},
	latency("e2e_p50", "E2E p50", "e2e", 0.5),
	latency("e2e_p99", "E2E p99", "e2e", 0.99),
	{name: "output_tokens_per_second", label: "output throughput", unit: "tok/s", scale: 1, better: Higher,
		fromReport: func(r *report.Report) *float64 { return r.Tokens.OutputPerSecond }},
	{name: "send_rate", label: "sent", unit: "req/s", scale: 1,
		fromReport: func(r *report.Report) *float64 { return r.Rates.Send }},
	{name: "completion_rate", label: "completed", unit: "req/s", scale: 1,
		fromReport: func(r *report.Report) *float64 { return r.Rates.Completion }},
	{name: "avg_power_w", label: "power avg", unit: "W", scale: 1,
		fromReport: func(r *report.Report) *float64 {
			return energyField(r, func(e *report.ReportEnergy) *float64 { return e.AvgPowerW })
		}},
	{name: "gpu_energy_wh", label: "GPU energy", unit: "Wh", scale: 1,
		fromReport: func(r *report.Report) *float64 {
			return energyField(r, func(e *report.ReportEnergy) *float64 { return e.GPUEnergyWh })
		}},
	{name: "goodput_requests_per_second", label: "goodput", unit: "req/s", scale: 1, better: Higher, slo: true,
		fromReport: func(r *report.Report) *float64 {
			return sloField(r, func(s *report.ReportSLO) *float64 { return s.GoodputRequestsPerSecond })
		},
		stat: func(q []request, rep *report.Report) *statistic {
			return ratioStat(len(q), func(i int) (float64, bool) { return 1, met(&q[i]) }, nil, deref(rep.DurationS))
		}},
	{name: "goodput_output_tokens_per_second", label: "goodput", unit: "tok/s", scale: 1, better: Higher, slo: true,
		fromReport: func(r *report.Report) *float64 {
			return sloField(r, func(s *report.ReportSLO) *float64 { return s.GoodputOutputTokensPerSecond })
		},
		stat: func(q []request, rep *report.Report) *statistic {
			return ratioStat(len(q), func(i int) (float64, bool) {
				return float64(derefInt(q[i].OutputTokens)), met(&q[i]) && q[i].OutputTokens != nil
			}, nil, deref(rep.DurationS))
		}},
	{name: "joules_per_slo_output_token", label: "J/SLO-meeting output token", unit: "J", scale: 1, better: Lower, slo: true,
		fromReport: func(r *report.Report) *float64 {
			return sloField(r, func(s *report.ReportSLO) *float64 { return s.JoulesPerSLOOutputToken })
		},
		stat: func(q []request, _ *report.Report) *statistic {
			return ratioStat(len(q), func(i int) (float64, bool) { return deref(q[i].EnergyJ), q[i].ok() && q[i].EnergyJ != nil },
				func(i int) (float64, bool) {
					return float64(derefInt(q[i].OutputTokens)), met(&q[i]) && q[i].OutputTokens != nil
				}, 0)
		}},
}

// latency is a tested percentile of a report.json distribution.
func latency(name, label, dist string, q float64) metric {
	return metric{name: name, label: label, unit: "ms", scale: 1000, better: Lower,
		fromReport: func(r *report.Report) *float64 { return percentile(r, dist, report.PercentileKey(q*100)) },
		stat: func(reqs []request, _ *report.Report) *statistic {
			var field func(r *request) *float64
			switch dist {
			case "ttft":
				field = func(r *request) *float64 { return r.TTFT }
			case "e2e":
				field = func(r *request) *float64 { return r.E2E }
			}
			return quantileStat(len(reqs), q, okValue(reqs, field))
		}}
}

// MetricNames are the figures --fail-on can name: the tested ones.
func MetricNames() []string {
	var names []string
	for _, m := range metrics {
		if m.stat != nil {
			names = append(names, m.name)
		}
	}
	return names
}

func okValue(q []request, field func(r *request) *float64) func(i int) (float64, bool) {
	return func(i int) (float64, bool) {
		v := field(&q[i])
		if !q[i].ok() || v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return 0, false
		}
		return *v, true
	}
}

func met(r *request) bool { return r.SLOMet != nil && *r.SLOMet }

func percentile(r *report.Report, dist, key string) *float64 {
	d := r.Latency[dist]
	if d == nil {
		return nil
	}
	if v, ok := d.Percentiles[key]; ok {
		return &v
	}
	return nil
}

func energyField(r *report.Report, f func(e *report.ReportEnergy) *float64) *float64 {
	if r.Energy == nil {
		return nil
	}
	return f(r.Energy)
}

func sloField(r *report.Report, f func(s *report.ReportSLO) *float64) *float64 {
	if r.SLO == nil {
		return nil
	}
	return f(r.SLO)
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// Result is a comparison of one base run with one or more new runs.
type Result struct {
	Schema string  `json:"schema"`
	Method Method  `json:"method"`
	Base   RunInfo `json:"base"`
	// Comparisons are one per new run, in the order given.
	Comparisons []*Comparison `json:"comparisons"`
}

// Method says how the intervals were computed.
type Method struct {
	Name        string  `json:"name"`
	Confidence  float64 `json:"confidence"`
	Resamples   int     `json:"resamples"`
	Seed        uint64  `json:"seed"`
	MinRequests int     `json:"min_requests"`
	Description string  `json:"description"`
}

// RunInfo identifies a run in the output.
type RunInfo struct {
	Path          string `json:"path"`
	RunID         string `json:"run_id"`
	BenchmarkName string `json:"benchmark_name"`
	Simulated     bool   `json:"simulated"`
	Requests      int    `json:"requests"` // measured, from report.json
	Records       int    `json:"records"`  // read from records.jsonl
	// Notes are doubts about the run's files: no records, lines skipped,
	// fewer records than requests.
	Notes []string `json:"notes"`
}

// Comparison is one new run against the base.
type Comparison struct {
	New RunInfo `json:"new"`
	// Differences are the settings in which the runs differ that make
	// them incomparable (refused without AllowDifferent); Notes the other
	// differences worth knowing.
	Differences []string `json:"differences"`
	Notes       []string `json:"notes"`
	Figures     []Figure `json:"figures"`
	// Regressions are the FailOn thresholds this run breached, as
	// sentences; Untested those it could not be tested against.
	Regressions []string `json:"regressions"`
	Untested    []string `json:"untested"`
}

// Figure is one figure of both runs and, where tested, its verdict.
type Figure struct {
	Name   string   `json:"name"`
	Label  string   `json:"label"`
	Unit   string   `json:"unit"` // of Base, New and Delta
	Better string   `json:"better"`
	Base   *float64 `json:"base"` // from report.json, in Unit
	New    *float64 `json:"new"`
	Delta  *float64 `json:"delta"`     // New − Base
	Change *float64 `json:"delta_pct"` // (New/Base − 1) × 100

	// Tested figures: the relative difference the requests give
	// ((new/base − 1) × 100, from all of each run's requests), its
	// confidence interval, and the verdict: "higher", "lower" or "no
	// significant difference"; Worse says whether the significant
	// difference is for the worse. Untested says why a tested figure
	// has no verdict (no records, too few requests).
	Estimate *float64  `json:"estimate_pct"`
	CI       *Interval `json:"ci_pct"`
	Verdict  string    `json:"verdict"`
	Worse    bool      `json:"worse"`
	Untested string    `json:"untested"`
}

// Verdicts.
const (
	VerdictHigher = "higher"
	VerdictLower  = "lower"
	VerdictNone   = "no significant difference"
)

// RefusedError is Compare's refusal of runs that differ in what makes
// them comparable.
type RefusedError struct {
	New         string
	Differences []string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is not comparable with the base run: %s (--allow-different compares them anyway)",
		e.New, strings.Join(e.Differences, "; "))
}

// Compare compares base with each of news. It refuses (RefusedError)
// runs that differ in scenario, dataset, token bounds or GPUs unless
// o.AllowDifferent.
func Compare(base *Run, news []*Run, o Options) (*Result, error) {
	o.defaults()
	if !(o.Confidence > 0 && o.Confidence < 1) {
		return nil, fmt.Errorf("confidence %v: must be between 0 and 1, e.g. 0.95", o.Confidence)
	}
	if o.Resamples < 100 {
		return nil, fmt.Errorf("resamples %d: at least 100 (default %d)", o.Resamples, DefaultResamples)
	}
	res := &Result{Schema: Schema, Method: method(o), Base: info(base)}
	for _, n := range news {
		diffs, notes := differences(base.Report, n.Report)
		if len(diffs) > 0 && !o.AllowDifferent {
			return nil, &RefusedError{New: n.Path, Differences: diffs}
		}
		res.Comparisons = append(res.Comparisons, &Comparison{New: info(n), Differences: nonNil(diffs), Notes: nonNil(notes)})
	}
	// The base run's resamples serve every comparison.
	baseBoot := newBootCache(base, o, 0)
	for i, n := range news {
		c := res.Comparisons[i]
		sameSLO := base.Report.SLO != nil && n.Report.SLO != nil && base.Report.SLO.Spec == n.Report.SLO.Spec
		if base.Report.SLO != nil && n.Report.SLO != nil && !sameSLO {
			c.Notes = append(c.Notes, fmt.Sprintf("SLOs differ (%s vs %s): goodput not compared", base.Report.SLO.Spec, n.Report.SLO.Spec))
		}
		newBoot := newBootCache(n, o, uint64(i+1))
		for _, m := range metrics {
			if m.slo && !sameSLO {
				continue
			}
			c.Figures = append(c.Figures, figure(&m, baseBoot, newBoot, o))
		}
		c.Regressions, c.Untested = failOn(c.Figures, o.FailOn)
	}
	return res, nil
}

// Failed reports whether any comparison breached a FailOn threshold.
func (r *Result) Failed() bool {
	for _, c := range r.Comparisons {
		if len(c.Regressions) > 0 {
			return true
		}
	}
	return false
}

// Untested reports whether any FailOn threshold could not be tested.
func (r *Result) Untested() bool {
	for _, c := range r.Comparisons {
		if len(c.Untested) > 0 {
			return true
		}
	}
	return false
}

func method(o Options) Method {
	return Method{Name: "percentile bootstrap", Confidence: o.Confidence, Resamples: o.Resamples, Seed: o.Seed, MinRequests: MinRequests,
		Description: fmt.Sprintf("each run's measured requests resampled with replacement %d times (seed %d); a figure is computed on every "+
			"resample of both runs, and the central %s %% of new/base − 1 over the resamples is its confidence interval; significant "+
			"when the interval excludes 0. Latencies and J/output token count ok requests; J/output token is Σ energy_j / Σ output_tokens "+
			"of the resampled requests (attributed energy: the table's figure also counts idle time); goodput is the resampled requests "+
			"that met the SLO over the run window. An interval needs %d requests with the figure in each run (a quantile q also 2/(1−q)).",
			o.Resamples, o.Seed, formatPct(o.Confidence*100), MinRequests),
	}
}

func info(r *Run) RunInfo {
	in := RunInfo{Path: r.Path, RunID: r.Report.RunID, BenchmarkName: r.Report.BenchmarkName, Simulated: r.Report.Simulated,
		Requests: r.Report.Requests.Total, Records: len(r.Requests), Notes: []string{}}
	if r.RecordsNote != "" {
		in.Notes = append(in.Notes, r.RecordsNote)
	}
	if r.Skipped > 0 {
		in.Notes = append(in.Notes, fmt.Sprintf("%d line(s) of %s skipped (not a record of this run)", r.Skipped, r.RecordsPath))
	}
	if r.Requests != nil && len(r.Requests) != r.Report.Requests.Total {
		in.Notes = append(in.Notes, fmt.Sprintf("%s has %d records, report.json counts %d requests", r.RecordsPath, len(r.Requests), r.Report.Requests.Total))
	}
	return in
}

// bootCache holds one run's statistics and their resamples, computed
// when first asked for.
type bootCache struct {
	run  *Run
	o    Options
	seed uint64
	// by metric name
	stats map[string]*statistic
	boots map[string][]float64
}

func newBootCache(r *Run, o Options, index uint64) *bootCache {
	return &bootCache{run: r, o: o, seed: o.Seed*1_000_003 + index, stats: map[string]*statistic{}, boots: map[string][]float64{}}
}

// resamples computes every tested statistic's resamples at once (one
// pass draws each resample for all of them).
func (b *bootCache) resamples() {
	if len(b.boots) > 0 || b.run.Requests == nil {
		return
	}
	var names []string
	var stats []*statistic
	for _, m := range metrics {
		if m.stat == nil {
			continue
		}
		s := m.stat(b.run.Requests, b.run.Report)
		b.stats[m.name] = s
		names = append(names, m.name)
		stats = append(stats, s)
	}
	out := bootstrap(len(b.run.Requests), stats, b.o.Resamples, b.seed)
	for i, n := range names {
		b.boots[n] = out[i]
	}
}

// tooFew says why s cannot get an interval, "" when it can.
func tooFew(s *statistic) string {
	need := MinRequests
	if s.order != nil {
		need = max(need, int(math.Ceil(2/(1-s.q)-1e-9)))
	}
	if s.size < need {
		return fmt.Sprintf("%d requests with it, %d needed", s.size, need)
	}
	return ""
}

func figure(m *metric, base, nw *bootCache, o Options) Figure {
	f := Figure{Name: m.name, Label: m.label, Unit: m.unit, Better: [...]string{"", "lower", "higher"}[m.better]}
	scaled := func(p *float64) *float64 {
		if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
			return nil
		}
		return ptr(*p * m.scale)
	}
	f.Base, f.New = scaled(m.fromReport(base.run.Report)), scaled(m.fromReport(nw.run.Report))
	if f.Base != nil && f.New != nil {
		f.Delta = ptr(*f.New - *f.Base)
		if *f.Base != 0 {
			f.Change = ptr((*f.New / *f.Base - 1) * 100)
		}
	}
	if m.stat == nil {
		return f
	}
	switch {
	case base.run.Requests == nil || nw.run.Requests == nil:
		f.Untested = "no records"
		return f
	case (m.name == "goodput_requests_per_second" || m.name == "goodput_output_tokens_per_second") &&
		(deref(base.run.Report.DurationS) <= 0 || deref(nw.run.Report.DurationS) <= 0):
		f.Untested = "no run window"
		return f
	}
	base.resamples()
	nw.resamples()
	bs, ns := base.stats[m.name], nw.stats[m.name]
	if why := tooFew(bs); why != "" {
		f.Untested = "base: " + why
		return f
	}
	if why := tooFew(ns); why != "" {
		f.Untested = "new: " + why
		return f
	}
	b0, n0 := bs.eval(nil), ns.eval(nil)
	if b0 == 0 || math.IsNaN(b0) || math.IsNaN(n0) {
		f.Untested = "zero or unknown in the base run"
		return f
	}
	f.Estimate = ptr((n0/b0 - 1) * 100)
	bb, nb := base.boots[m.name], nw.boots[m.name]
	rel := make([]float64, len(bb))
	for i := range rel {
		rel[i] = (nb[i]/bb[i] - 1) * 100
		if math.IsInf(rel[i], 0) {
			rel[i] = math.NaN()
		}
	}
	ci, ok := percentileInterval(rel, o.Confidence)
	if !ok {
		f.Untested = "too few usable resamples"
		return f
	}
	f.CI = &ci
	switch {
	case ci.Lo > 0:
		f.Verdict, f.Worse = VerdictHigher, m.better == Lower
	case ci.Hi < 0:
		f.Verdict, f.Worse = VerdictLower, m.better == Higher
	default:
		f.Verdict = VerdictNone
	}
	return f
}

func ptr(v float64) *float64 { return &v }

// nonNil is s, or an empty list: JSON [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// differences lists the settings in which new differs from base: those
// that make the runs incomparable (scenario, dataset, token bounds, GPUs),
// and the others worth a note.
func differences(base, nw *report.Report) (refused, notes []string) {
	b, n := &base.Settings, &nw.Settings
	diff := func(list *[]string, key string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			*list = append(*list, fmt.Sprintf("%s: %v vs %v", key, x, y))
		}
	}
	diff(&refused, "scenario", quoted(b.Scenario), quoted(n.Scenario))
	if b.DatasetSHA256 != n.DatasetSHA256 {
		refused = append(refused, fmt.Sprintf("dataset: %s (sha256 %.12s…) vs %s (sha256 %.12s…)", quoted(b.Dataset), b.DatasetSHA256,
			quoted(n.Dataset), n.DatasetSHA256))
	}
	diff(&refused, "max_tokens", b.MaxTokens, n.MaxTokens)
	diff(&refused, "min_tokens", b.MinTokens, n.MinTokens)
	diff(&refused, "ignore_eos", b.IgnoreEOS, n.IgnoreEOS)
	bg, ng := gpuCount(base), gpuCount(nw)
	if bg >= 0 && ng >= 0 {
		diff(&refused, "GPUs", bg, ng)
	}
	bm, nm := slices.Sorted(slices.Values(b.GPUModels)), slices.Sorted(slices.Values(n.GPUModels))
	if len(bm) > 0 && len(nm) > 0 && !slices.Equal(bm, nm) {
		refused = append(refused, fmt.Sprintf("GPU models: %s vs %s", strings.Join(bm, ", "), strings.Join(nm, ", ")))
	}

	diff(&notes, "model", quoted(b.Model), quoted(n.Model))
	diff(&notes, "backend", b.Backend, n.Backend)
	diff(&notes, "api", b.API, n.API)
	diff(&notes, "stream", b.Stream, n.Stream)
	diff(&notes, "rate", b.Rate, n.Rate)
	diff(&notes, "arrival", b.Arrival, n.Arrival)
	diff(&notes, "concurrency", b.Concurrency, n.Concurrency)
	diff(&notes, "num_samples", b.NumSamples, n.NumSamples)
	diff(&notes, "duration_s", b.DurationS, n.DurationS)
	diff(&notes, "temperature", floatOrNone(b.Temperature), floatOrNone(n.Temperature))
	diff(&notes, "energy_source", b.EnergySource, n.EnergySource)
	diff(&notes, "simulated", base.Simulated, nw.Simulated)
	if slices.Equal(bm, nm) && bg == ng && !slices.Equal(b.GPUs, n.GPUs) {
		notes = append(notes, "other GPUs of the same models")
	}
	return refused, notes
}

// gpuCount is the number of measured GPUs, -1 when unknown (no energy).
func gpuCount(r *report.Report) int {
	switch {
	case r.Energy != nil && r.Energy.GPUs != nil:
		return *r.Energy.GPUs
	case len(r.Settings.GPUs) > 0:
		return len(r.Settings.GPUs)
	}
	return -1
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }

func floatOrNone(p *float64) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
