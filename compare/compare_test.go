package compare

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestRequestFieldsAreRecords: every field compare reads from
// records.jsonl is a field of loadgen.Record, with the same JSON name and
// type.
func TestRequestFieldsAreRecords(t *testing.T) {
	rec := map[string]reflect.Type{}
	rt := reflect.TypeOf(loadgen.Record{})
	for i := range rt.NumField() {
		f := rt.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			rec[name] = f.Type
		}
	}
	qt := reflect.TypeOf(request{})
	for i := range qt.NumField() {
		f := qt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if typ, ok := rec[name]; !ok || typ != f.Type {
			t.Errorf("request.%s reads %q as %v; loadgen.Record has %v", f.Name, name, f.Type, typ)
		}
	}
}

// synthRun is a run of n requests drawn from one fixed distribution
// (lognormal TTFT and TPOT, uniform lengths, energy that grows with the
// request's time, a few timeouts, an SLO), its energy scaled by
// energyScale.
func synthRun(id string, rng *rand.Rand, n int, energyScale float64) *Run {
	rep := &report.Report{Schema: report.ReportSchema, RunID: id, DurationS: new(float64(n) / 10),
		Settings: report.Settings{Scenario: "s", Dataset: "synthetic", DatasetSHA256: "0123456789abcdef", MaxTokens: 64, GPUModels: []string{"G"}, GPUs: []string{"GPU-1"}},
		Latency:  map[string]*report.Distribution{},
		SLO:      &report.ReportSLO{Spec: "ttft=80ms,e2e=700ms"},
	}
	rep.Requests.Total = n
	reqs := make([]request, n)
	for i := range reqs {
		r := &reqs[i]
		r.RunID, r.Outcome = id, "ok"
		if rng.Float64() < 0.02 {
			r.Outcome = "timeout"
			r.SLOMet = new(false)
			continue
		}
		tokens := 1 + rng.IntN(64)
		ttft := 0.05 * math.Exp(0.4*rng.NormFloat64())
		tpot := 0.01 * math.Exp(0.2*rng.NormFloat64())
		e2e := ttft + tpot*float64(tokens-1)
		r.TTFT, r.E2E, r.OutputTokens = new(ttft), new(e2e), new(tokens)
		if tokens > 1 {
			r.TPOT = new(tpot)
		}
		r.EnergyJ = new(energyScale * (40*ttft + 30*(e2e-ttft)) * (1 + 0.1*rng.NormFloat64()))
		r.SLOMet = new(ttft <= 0.08 && e2e <= 0.7)
	}
	return &Run{Path: id, Report: rep, Requests: reqs}
}

// binomialUpper is the smallest k with P(X ≥ k) ≤ tail for X ~
// Binomial(n, p).
func binomialUpper(n int, p, tail float64) int {
	pmf := make([]float64, n+1)
	for k := 0; k <= n; k++ {
		lg, _ := math.Lgamma(float64(n + 1))
		a, _ := math.Lgamma(float64(k + 1))
		b, _ := math.Lgamma(float64(n - k + 1))
		pmf[k] = math.Exp(lg - a - b + float64(k)*math.Log(p) + float64(n-k)*math.Log(1-p))
	}
	sum := 0.0
	for k := n; k >= 0; k-- {
		sum += pmf[k]
		if sum > tail {
			return k + 1
		}
	}
	return 0
}

// TestFalsePositiveRate: on pairs of runs drawn from one distribution,
// every tested figure's verdict says "significant" at most as often as
// its level allows (1 − confidence), up to the binomial noise of 200
// trials (a count that a method at its level reaches with probability
// under 0.1 %: 22 of 200 at 95 %).
func TestFalsePositiveRate(t *testing.T) {
	// p99 needs 200 requests (MinRequests).
	const trials = 200
	n, resamples := 250, 500
	if raceEnabled {
		n, resamples = 220, 200 // measured over 600 trials: the same rates
	}
	rng := rand.New(rand.NewPCG(1, 2))
	fp := map[string]int{}
	for trial := range trials {
		base, nw := synthRun("a", rng, n, 1), synthRun("b", rng, n, 1)
		res, err := Compare(base, []*Run{nw}, Options{Resamples: resamples, Seed: uint64(trial)})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Comparisons[0].Figures {
			if f.Verdict == "" && f.Untested != "" {
				t.Fatalf("%s untested: %s", f.Name, f.Untested)
			}
			if f.Verdict == VerdictHigher || f.Verdict == VerdictLower {
				fp[f.Name]++
			}
		}
	}
	limit := binomialUpper(trials, 1-DefaultConfidence, 0.001)
	for _, name := range MetricNames() {
		t.Logf("%-34s %3d of %d significant (%.1f %%; limit %d)", name, fp[name], trials, 100*float64(fp[name])/trials, limit)
		if fp[name] >= limit {
			t.Errorf("%s: %d false positives in %d trials at %.0f %% confidence: more than its level allows", name, fp[name], trials, 100*DefaultConfidence)
		}
	}
}

// TestPowerShiftDetected: 10 % more energy per request is a significant
// rise of J per output token (and J per SLO-meeting token) at the stated
// confidence, breaching --fail-on joules_per_output_token>+5%; a +2 %
// threshold on a figure that did not change is not breached; the same
// seed gives the same intervals.
func TestPowerShiftDetected(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base, hot := synthRun("base", rng, 400, 1), synthRun("hot", rng, 400, 1.1)
	fail, err := ParseFailOn("joules_per_output_token>+5%,ttft_p50>+2%")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Compare(base, []*Run{hot}, Options{FailOn: fail, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Comparisons[0]
	byName := map[string]Figure{}
	for _, f := range c.Figures {
		byName[f.Name] = f
	}
	if f := byName["joules_per_output_token"]; f.CI == nil || f.CI.Lo <= 0 || f.Verdict != VerdictHigher || !f.Worse || math.Abs(*f.Estimate-10) > 3 {
		t.Errorf("J/output token: estimate %v, CI %+v, verdict %q worse %v; want about +10 %%, significant, worse", deref(f.Estimate), f.CI, f.Verdict, f.Worse)
	}
	// Fewer tokens, and which requests met the SLO varies too: wider.
	if f := byName["joules_per_slo_output_token"]; f.CI == nil || math.Abs(*f.Estimate-10) > 5 || f.CI.Hi < 10 {
		t.Errorf("J/SLO-meeting output token: estimate %v, CI %+v", deref(f.Estimate), f.CI)
	}
	if len(c.Regressions) != 1 || !strings.HasPrefix(c.Regressions[0], "joules_per_output_token>+5.0%: +") || !res.Failed() {
		t.Errorf("regressions %q (failed %v); want joules_per_output_token's only", c.Regressions, res.Failed())
	}
	if f := byName["ttft_p50"]; f.Verdict != VerdictNone {
		t.Errorf("ttft_p50 changed significantly: %+v", f)
	}
	again, _ := Compare(base, []*Run{hot}, Options{FailOn: fail, Seed: 7})
	if !reflect.DeepEqual(again, res) {
		t.Error("the same seed gave other intervals")
	}
	other, _ := Compare(base, []*Run{hot}, Options{FailOn: fail, Seed: 8})
	if reflect.DeepEqual(other.Comparisons[0].Figures[0].CI, res.Comparisons[0].Figures[0].CI) {
		t.Error("another seed gave the same intervals")
	}
	if res.Method.Confidence != 0.95 || res.Method.Resamples != 2000 || !strings.Contains(res.Method.Description, "central 95 %") {
		t.Errorf("method %+v", res.Method)
	}
}

// TestSmallRunsAreUntested: a figure needs MinRequests requests in each
// run, a p99 200; a --fail-on condition on an untested figure is
// reported as untested, not as passed.
func TestSmallRunsAreUntested(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	base, nw := synthRun("a", rng, 120, 1), synthRun("b", rng, 20, 1)
	fail, _ := ParseFailOn("ttft_p99>+10%")
	res, err := Compare(base, []*Run{nw, base}, Options{FailOn: fail})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Comparisons[0].Figures {
		if f.Verdict != "" || (f.Untested == "") != (f.Name == "itl_p50" || !slices.Contains(MetricNames(), f.Name)) {
			t.Errorf("small new run: %s verdict %q untested %q", f.Name, f.Verdict, f.Untested)
		}
	}
	self := res.Comparisons[1]
	for _, f := range self.Figures {
		switch {
		case f.Name == "ttft_p99" || f.Name == "e2e_p99":
			if !strings.Contains(f.Untested, "200 needed") {
				t.Errorf("%s with 120 requests: untested %q", f.Name, f.Untested)
			}
		case f.Untested == "" && f.CI != nil && f.Verdict != VerdictNone:
			t.Errorf("a run against itself: %s %q", f.Name, f.Verdict)
		}
	}
	if len(self.Untested) != 1 || !strings.Contains(self.Untested[0], "ttft_p99>+10.0%: no interval") || !res.Untested() || res.Failed() {
		t.Errorf("untested %q failed %v", self.Untested, res.Failed())
	}
	// Without records there is no interval at all.
	bare := *base
	bare.Requests, bare.RecordsNote = nil, "no records"
	res, _ = Compare(&bare, []*Run{nw}, Options{})
	if f := res.Comparisons[0].Figures[0]; f.Untested != "no records" || f.CI != nil {
		t.Errorf("no records: %+v", f)
	}
}

func TestDifferencesRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := synthRun("base", rng, 60, 1)
	for _, tc := range []struct {
		change func(s *report.Report)
		want   string
	}{
		{func(r *report.Report) { r.Settings.Scenario = "other" }, `scenario: "s" vs "other"`},
		{func(r *report.Report) { r.Settings.DatasetSHA256 = "fedcba" }, `dataset: "synthetic" (sha256 0123456789ab…) vs "synthetic" (sha256 fedcba…)`},
		{func(r *report.Report) { r.Settings.MaxTokens = 128 }, "max_tokens: 64 vs 128"},
		{func(r *report.Report) { r.Settings.MinTokens = 8 }, "min_tokens: 0 vs 8"},
		{func(r *report.Report) { r.Settings.IgnoreEOS = true }, "ignore_eos: false vs true"},
		{func(r *report.Report) { r.Settings.GPUs = []string{"GPU-1", "GPU-2"} }, "GPUs: 1 vs 2"},
		{func(r *report.Report) { r.Settings.GPUModels = []string{"H"} }, "GPU models: G vs H"},
	} {
		nw := synthRun("new", rng, 60, 1)
		tc.change(nw.Report)
		_, err := Compare(base, []*Run{nw}, Options{})
		var refused *RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--allow-different") {
			t.Errorf("%s: %v", tc.want, err)
			continue
		}
		res, err := Compare(base, []*Run{nw}, Options{AllowDifferent: true})
		if err != nil || !slices.Contains(res.Comparisons[0].Differences, tc.want) {
			t.Errorf("--allow-different: %v, %v", res, err)
		}
	}
	nw := synthRun("new", rng, 60, 1)
	nw.Report.Settings.Rate, nw.Report.Settings.Model = 5, "m2"
	nw.Report.SLO.Spec = "e2e=1s"
	res, err := Compare(base, []*Run{nw}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Comparisons[0]
	for _, want := range []string{`model: "" vs "m2"`, "rate: 0 vs 5", "SLOs differ (ttft=80ms,e2e=700ms vs e2e=1s): goodput not compared"} {
		if !slices.Contains(c.Notes, want) {
			t.Errorf("notes %q lack %q", c.Notes, want)
		}
	}
	if slices.ContainsFunc(c.Figures, func(f Figure) bool { return strings.HasPrefix(f.Name, "goodput") }) {
		t.Error("goodput compared under different SLOs")
	}
}

func TestParseFailOn(t *testing.T) {
	got, err := ParseFailOn(" joules_per_output_token>+5% , ttft_p99>10%,goodput_requests_per_second<-2.5%")
	want := []Threshold{{"joules_per_output_token", 5, true}, {"ttft_p99", 10, true}, {"goodput_requests_per_second", -2.5, false}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseFailOn = %+v, %v", got, err)
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "no condition given"},
		{"ttft_p99", "want METRIC>+N% or METRIC<-N%"},
		{"itl_p50>+5%", `"itl_p50" is not a tested figure`},
		{"ttft_p99>+5", "the threshold is a percentage"},
		{"ttft_p99>-5%", "for a decrease write ttft_p99<-5.0%"},
		{"goodput_requests_per_second<5%", "< takes a decrease"},
	} {
		if _, err := ParseFailOn(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseFailOn(%q) = %v, want %q", tc.in, err, tc.msg)
		}
	}
}

// TestStatistics: the quantile is numpy's "lower" one, a resample's
// weights count, and the bootstrap does not depend on how many
// goroutines draw it.
func TestStatistics(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 9, 7, 8, 6, 10}
	v := func(i int) (float64, bool) { return xs[i], i != 9 } // 10 has no value
	for _, tc := range []struct {
		q    float64
		want float64
	}{{0, 1}, {0.5, 5}, {0.99, 8}, {1, 9}} {
		if got := quantileStat(len(xs), tc.q, v).eval(nil); got != tc.want {
			t.Errorf("q %v = %v, want %v", tc.q, got, tc.want)
		}
	}
	counts := []int32{0, 3, 0, 0, 0, 0, 0, 0, 0, 1} // 1 three times, and the value-less 10
	if got := quantileStat(len(xs), 0.5, v).eval(counts); got != 1 {
		t.Errorf("weighted median = %v, want 1", got)
	}
	if got := meanStat(len(xs), v).eval(counts); got != 1 {
		t.Errorf("weighted mean = %v, want 1", got)
	}
	stats := []*statistic{meanStat(len(xs), v), quantileStat(len(xs), 0.9, v)}
	one := func(procs int) [][]float64 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		return bootstrap(len(xs), stats, 300, 42)
	}
	if a, b := one(1), one(4); !reflect.DeepEqual(a, b) {
		t.Error("the resamples depend on GOMAXPROCS")
	}
	if ci, ok := percentileInterval([]float64{math.NaN(), 1, 2, 3, 4, 5}, 0.5); !ok || ci.Lo != 2 || ci.Hi != 4 {
		t.Errorf("interval %+v %v", ci, ok)
	}
}
