package main

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/internal/promtest"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// dumpRunArgs is a --sim run with simulated energy whose latencies are
// spread out (jitter) and whose answers have 0 to 24 tokens, so some
// requests have no TTFT and none of the percentiles is degenerate.
func dumpRunArgs(runID, out string, extra ...string) []string {
	return append([]string{
		"--sim", "--sim-ttft", "8ms", "--sim-itl", "2ms", "--sim-jitter", "1ms",
		"--dataset", "synthetic", "--num-samples", "200", "--concurrency", "4",
		"--max-tokens", "24", "--min-tokens", "0", "--energy", "sim", "--idle-baseline", "1s",
		"--run-id", runID, "--out", out,
	}, extra...)
}

// localRun is what a run wrote locally.
type localRun struct {
	row  *report.Row
	recs []loadgen.Record
}

func readLocal(t *testing.T, out string) localRun {
	t.Helper()
	rows := readSummary(t, filepath.Join(out, "summary.csv"))
	if len(rows) != 1 {
		t.Fatalf("summary.csv: %d rows", len(rows))
	}
	return localRun{row: rows[0], recs: readRecords(t, runFile(t, out, "records.jsonl"))}
}

func dumpRow(t *testing.T, args ...string) (*report.Row, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump.csv")
	res := runCLI(t, append([]string{"dump", "--out", out, "--explain"}, args...)...)
	if res.code != 0 {
		t.Fatalf("dump exit %d\nstderr: %s", res.code, res.stderr)
	}
	rows := readSummary(t, out)
	if len(rows) != 1 {
		t.Fatalf("dump wrote %d rows\nstderr: %s", len(rows), res.stderr)
	}
	return rows[0], res.stderr
}

// bracket is [quantile(q-0.005)/1.1, quantile(q+0.005)*1.1] of xs: where
// a native histogram's estimate of the q-quantile must lie. Its buckets
// grow by a factor of 1.1 (docs/metrics.md, "Histograms"), so the
// estimate is within a factor 1.1 of a sample near rank q; the
// half-percent of rank slack covers the two estimators picking
// neighbouring samples.
func bracket(xs []float64, q float64) (lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 {
		q = math.Max(0, math.Min(1, q))
		return s[int(math.Round(q*float64(len(s)-1)))]
	}
	return at(q-0.005) / 1.1, at(q+0.005) * 1.1
}

// samplesOf is f's values over the successful records: the statistics a
// summary row and the histograms hold.
func samplesOf(recs []loadgen.Record, f func(r *loadgen.Record) []float64) []float64 {
	var xs []float64
	for i := range recs {
		if recs[i].OK() {
			xs = append(xs, f(&recs[i])...)
		}
	}
	return xs
}

func one(p *float64) []float64 {
	if p == nil {
		return nil
	}
	return []float64{*p}
}

// checkAgreement compares a dumped row with the local summaries (summed)
// and records of the runs it covers.
func checkAgreement(t *testing.T, got *report.Row, locals ...localRun) {
	t.Helper()
	checkAgreementWith(t, got, func(_ string, xs []float64, q float64) (float64, float64) { return bracket(xs, q) }, locals...)
}

// classicBracket is where a quantile estimated from classic buckets must
// lie: in the bucket that holds the records' value near rank q (linear
// interpolation within a bucket, so a bucket's width is the error bound).
func classicBracket(metric string, xs []float64, q float64) (lo, hi float64) {
	b := exporter.ClassicBuckets()[metric]
	l, h := bracket(xs, q)
	l, h = l*1.1, h/1.1 // the records' values themselves
	lo, hi = 0, math.Inf(1)
	for _, u := range b {
		if u < l {
			lo = u
		}
		if u >= h && math.IsInf(hi, 1) {
			hi = u
		}
	}
	return lo, hi
}

func checkAgreementClassic(t *testing.T, got *report.Row, locals ...localRun) {
	t.Helper()
	checkAgreementWith(t, got, classicBracket, locals...)
}

func checkAgreementWith(t *testing.T, got *report.Row, within func(metric string, xs []float64, q float64) (float64, float64), locals ...localRun) {
	t.Helper()
	var total, ok, failed int
	var prompt, output int64
	var recs []loadgen.Record
	for _, l := range locals {
		total += l.row.TotalPrompts
		ok += l.row.SuccessfulPrompts
		failed += l.row.FailedPrompts
		prompt += *l.row.TotalPromptTokens
		output += *l.row.TotalCompletionTokens
		recs = append(recs, l.recs...)
	}
	if got.TotalPrompts != total || got.SuccessfulPrompts != ok || got.FailedPrompts != failed {
		t.Errorf("requests: dump %d/%d/%d, local %d/%d/%d (total/ok/failed)", got.TotalPrompts, got.SuccessfulPrompts, got.FailedPrompts, total, ok, failed)
	}
	if got.TotalPromptTokens == nil || *got.TotalPromptTokens != prompt || got.TotalCompletionTokens == nil || *got.TotalCompletionTokens != output {
		t.Errorf("tokens: dump prompt %v output %v, local %d %d", deref(got.TotalPromptTokens), deref(got.TotalCompletionTokens), prompt, output)
	}
	const ttft, itl, e2e = "tokenwatt_request_ttft_seconds", "tokenwatt_request_itl_seconds", "tokenwatt_request_duration_seconds"
	for _, c := range []struct {
		name, metric string
		got          *float64
		xs           []float64
		q            float64
	}{
		{"ttft p50", ttft, got.TTFTP50Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return one(r.TTFT) }), 0.5},
		{"ttft p99", ttft, got.TTFTP99Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return one(r.TTFT) }), 0.99},
		{"itl p50", itl, got.ITLP50Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return r.ITL }), 0.5},
		{"itl p99", itl, got.ITLP99Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return r.ITL }), 0.99},
		{"e2e p50", e2e, got.E2EP50Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return one(r.E2E) }), 0.5},
		{"e2e p99", e2e, got.E2EP99Seconds, samplesOf(recs, func(r *loadgen.Record) []float64 { return one(r.E2E) }), 0.99},
	} {
		if len(c.xs) == 0 {
			t.Fatalf("%s: no samples in the records", c.name)
		}
		lo, hi := within(c.metric, c.xs, c.q)
		if c.got == nil || *c.got < lo || *c.got > hi {
			t.Errorf("%s: dump %v, want within [%.6f, %.6f] (the histogram's bucket error around the records' value)", c.name, deref(c.got), lo, hi)
		} else {
			t.Logf("%s: dump %.6f in [%.6f, %.6f]", c.name, *c.got, lo, hi)
		}
	}
}

// checkEnergy compares a dumped row's energy with the local summary's.
func checkEnergy(t *testing.T, got *report.Row, local *report.Row) {
	t.Helper()
	if local.GPUEnergyWh == nil || *local.GPUEnergyWh <= 0 {
		t.Fatalf("local summary has no energy: %v", deref(local.GPUEnergyWh))
	}
	if got.GPUEnergyWh == nil || math.Abs(*got.GPUEnergyWh / *local.GPUEnergyWh - 1) > 0.01 {
		t.Errorf("gpu_energy_wh: dump %v, local %v: want within 1 %%", deref(got.GPUEnergyWh), *local.GPUEnergyWh)
	}
	if got.JoulesPerOutputToken == nil || math.Abs(*got.JoulesPerOutputToken / *local.JoulesPerOutputToken - 1) > 0.01 {
		t.Errorf("joules_per_output_token: dump %v, local %v", deref(got.JoulesPerOutputToken), deref(local.JoulesPerOutputToken))
	}
	t.Logf("energy: dump %.6f Wh, local %.6f Wh (%+.3f %%)", deref(got.GPUEnergyWh), *local.GPUEnergyWh, 100*(*got.GPUEnergyWh / *local.GPUEnergyWh - 1))
	if got.EnergySource != local.EnergySource || got.EnergyMethod != local.EnergyMethod {
		t.Errorf("energy source/method: dump %q/%q, local %q/%q", got.EnergySource, got.EnergyMethod, local.EnergySource, local.EnergyMethod)
	}
}

// checkSLO compares a dumped row's SLO goodput with the local summary's:
// the same counts, so the same figures.
func checkSLO(t *testing.T, got, local *report.Row) {
	t.Helper()
	if local.SLO == "" || local.SLOMetRequests == nil || *local.SLOMetRequests == 0 || *local.SLOMetRequests == local.TotalPrompts {
		t.Fatalf("local summary: slo %q, met %v of %d: want some requests met and some missed", local.SLO, deref(local.SLOMetRequests), local.TotalPrompts)
	}
	if got.SLO != local.SLO || deref(got.SLOMetRequests) != *local.SLOMetRequests || deref(got.SLOOutputTokens) != deref(local.SLOOutputTokens) {
		t.Errorf("slo: dump %q met %v tokens %v, local %q %v %v", got.SLO, deref(got.SLOMetRequests), deref(got.SLOOutputTokens),
			local.SLO, *local.SLOMetRequests, deref(local.SLOOutputTokens))
	}
	for _, c := range []struct {
		name       string
		got, local *float64
		tol        float64
	}{
		{"goodput_requests_per_second", got.GoodputRequestsPerSecond, local.GoodputRequestsPerSecond, 1e-3},
		{"goodput_output_tokens_per_second", got.GoodputOutputTokensPerSecond, local.GoodputOutputTokensPerSecond, 1e-3},
		{"joules_per_slo_output_token", got.JoulesPerSLOOutputToken, local.JoulesPerSLOOutputToken, 0.01},
	} {
		if c.got == nil || c.local == nil || math.Abs(*c.got / *c.local - 1) > c.tol {
			t.Errorf("%s: dump %v, local %v", c.name, deref(c.got), deref(c.local))
		}
	}
}

// TestDumpAgreesWithLocalSummary: a --sim run with simulated energy,
// scraped every second by a real Prometheus with native histograms; the
// row loadgen dump computes from Prometheus agrees with summary.csv.
func TestDumpAgreesWithLocalSummary(t *testing.T) {
	offlineHF(t)
	addr := closedAddr(t)
	prom := promtest.StartPrometheus(t, []string{addr}, time.Second)
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(1))

	out := t.TempDir()
	const runID = "dump-prom"
	res := runCLI(t, dumpRunArgs(runID, out, "--metrics-addr", addr, "--linger", "2500ms", "--slo", "ttft=8500us,e2e=40ms")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	local := readLocal(t, out)
	got, stderr := dumpRow(t, "--prometheus", prom.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	checkAgreement(t, got, local)
	checkEnergy(t, got, local.row)
	checkSLO(t, got, local.row)
	if got.RunID != runID || got.Scenario != local.row.Scenario || got.Model != local.row.Model || got.Backend != local.row.Backend || !got.Simulated {
		t.Errorf("labels: dump %q %q %q %q simulated %v, local %q %q %q %q", got.RunID, got.Scenario, got.Model, got.Backend, got.Simulated,
			local.row.RunID, local.row.Scenario, local.row.Model, local.row.Backend)
	}
	// Achieved rates: the same sends and window, so the same figures
	// (the window's edges are exported to the microsecond).
	for _, c := range []struct {
		name       string
		got, local *float64
	}{{"send_rate", got.SendRate, local.row.SendRate}, {"completion_rate", got.CompletionRate, local.row.CompletionRate}} {
		if c.got == nil || c.local == nil || math.Abs(*c.got / *c.local - 1) > 1e-3 {
			t.Errorf("%s: dump %v, local %v", c.name, deref(c.got), deref(c.local))
		}
	}
	if got.Failures != local.row.Failures || got.BenchmarkName != local.row.BenchmarkName {
		t.Errorf("failures %q benchmark %q; local %q %q", got.Failures, got.BenchmarkName, local.row.Failures, local.row.BenchmarkName)
	}
	if got.GPUUUIDs == "" || got.GPUUUIDs != local.row.GPUUUIDs {
		t.Errorf("gpu_uuids: dump %q, local %q", got.GPUUUIDs, local.row.GPUUUIDs)
	}
	if got.Endpoint != local.row.Endpoint || deref(got.Concurrency) != deref(local.row.Concurrency) {
		t.Errorf("settings: dump endpoint %q concurrency %v, local %q %v", got.Endpoint, deref(got.Concurrency), local.row.Endpoint, deref(local.row.Concurrency))
	}
	if math.Abs(*got.TotalDurationSeconds-*local.row.TotalDurationSeconds) > 0.001 {
		t.Errorf("duration: dump %v, local %v", *got.TotalDurationSeconds, *local.row.TotalDurationSeconds)
	}
	// The per-GPU counter, read at the window's edges between scrapes a
	// second apart, instead of the run's attributed energy. The run is
	// only about 1.5 s long, so each edge's scrape interval is a large
	// share of it: measured +1.2 % here (linear interpolation: -12 %);
	// the bound is 5 %.
	perGPU, _ := dumpRow(t, "--prometheus", prom.URL(), "--run-id", runID, "--energy-metric", "tokenwatt")
	diff := *perGPU.GPUEnergyWh / *local.row.GPUEnergyWh - 1
	t.Logf("per-GPU energy: dump %.6f Wh, local %.6f Wh (%+.2f %%), run %.2f s", deref(perGPU.GPUEnergyWh), *local.row.GPUEnergyWh,
		100*diff, *local.row.TotalDurationSeconds)
	if math.Abs(diff) > 0.05 {
		t.Errorf("per-GPU energy off by %+.2f %%", 100*diff)
	}
	for _, want := range []string{"tokenwatt_requests_total{run_id=\"dump-prom\"}[", "histogram_quantile(0.99,", "=> "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("--explain output lacks %q", want)
		}
	}
}

// TestDumpAgreesOnVictoriaMetrics: the same run pushed to a real
// VictoriaMetrics (--push-url; classic buckets only, no scrapes) gives
// the same row, percentiles from classic buckets, with a warning that
// says so.
func TestDumpAgreesOnVictoriaMetrics(t *testing.T) {
	offlineHF(t)
	vm := promtest.StartVictoriaMetrics(t)
	out := t.TempDir()
	const runID = "dump-vm"
	res := runCLI(t, dumpRunArgs(runID, out, "--metrics-addr=", "--push-url", vm.ImportURL(), "--push-interval", "1s")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	vm.Flush(t)
	promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`count(tokenwatt_run_end_timestamp_seconds{run_id=%q})`, runID), 15*time.Second, promtest.Equal(1))
	local := readLocal(t, out)
	got, stderr := dumpRow(t, "--prometheus", vm.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	checkAgreementClassic(t, got, local)
	checkEnergy(t, got, local.row)
	if !strings.Contains(stderr, "no native histograms") {
		t.Errorf("no warning about classic buckets:\n%s", stderr)
	}
	checkNamedBuckets(t, stderr, got)
}

// TestDumpAgreesOnVictoriaMetricsRemoteWrite: Prometheus scrapes the run
// with native histograms and remote-writes them to VictoriaMetrics, which
// stores them as vmrange buckets (1.143 and later); dump against
// VictoriaMetrics still finds every percentile, within one bucket of the
// records. Needs Prometheus 3.8+ and a VictoriaMetrics that says its
// version (.ci/run's scripts/servers builds both).
func TestDumpAgreesOnVictoriaMetricsRemoteWrite(t *testing.T) {
	offlineHF(t)
	if v := promtest.PrometheusVersion(t); !v.NativeHistogramsByConfig() {
		t.Skipf("Prometheus %d.%d: remote-written native histograms need 3.9 or later here (scripts/servers builds it)", v.Major, v.Minor)
	}
	vm := promtest.StartVictoriaMetrics(t)
	if v := vm.Version(t); !v.Known || !v.AtLeast(1, 143) {
		t.Skipf("VictoriaMetrics %+v: vmrange buckets for remote-written native histograms need 1.143 or later (scripts/servers builds it)", v)
	}
	addr := closedAddr(t)
	prom := promtest.StartPrometheusWith(t, promtest.Config{Targets: []string{addr}, Interval: time.Second, RemoteWrite: vm.URL() + "/api/v1/write"})
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(1))

	out := t.TempDir()
	const runID = "dump-vm-remote-write"
	res := runCLI(t, dumpRunArgs(runID, out, "--metrics-addr", addr, "--linger", "2500ms")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	promtest.WaitFor(t, prom.URL(), fmt.Sprintf(`count(tokenwatt_run_end_timestamp_seconds{run_id=%q})`, runID), 15*time.Second, promtest.Equal(1))
	vm.Flush(t)
	promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`count(tokenwatt_run_end_timestamp_seconds{run_id=%q})`, runID), 60*time.Second, promtest.Equal(1))
	promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`count(count by (vmrange) (tokenwatt_request_duration_seconds_bucket{run_id=%q}))`, runID), 30*time.Second,
		func(n float64) bool { return n > 0 })
	local := readLocal(t, out)
	got, stderr := dumpRow(t, "--prometheus", vm.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	if got.TotalPrompts != local.row.TotalPrompts || deref64(got.TotalCompletionTokens) != deref64(local.row.TotalCompletionTokens) {
		t.Errorf("counts: dump %d prompts, %d output tokens; local %d, %d", got.TotalPrompts, deref64(got.TotalCompletionTokens),
			local.row.TotalPrompts, deref64(local.row.TotalCompletionTokens))
	}
	checkAgreement(t, got, local)
	checkEnergy(t, got, local.row)
}

// checkNamedBuckets checks that dump's warning names, for each percentile
// it read from classic buckets, the bucket the row's value lies in.
func checkNamedBuckets(t *testing.T, stderr string, got *report.Row) {
	t.Helper()
	for _, c := range []struct {
		name string
		x    *float64
	}{
		{"TTFT p50", got.TTFTP50Seconds}, {"TTFT p99", got.TTFTP99Seconds},
		{"ITL p90", got.ITLP90Seconds}, {"E2E p50", got.E2EP50Seconds}, {"E2E p99", got.E2EP99Seconds},
	} {
		m := regexp.MustCompile(regexp.QuoteMeta(c.name) + ` in \(([0-9.e+-]+), ([0-9.e+-]+)\] s`).FindStringSubmatch(stderr)
		if m == nil {
			t.Errorf("no bucket named for %s:\n%s", c.name, stderr)
			continue
		}
		lo, _ := strconv.ParseFloat(m[1], 64)
		hi, _ := strconv.ParseFloat(m[2], 64)
		if c.x == nil || *c.x < lo || *c.x > hi {
			t.Errorf("%s: dump %v, but its named bucket is (%v, %v]", c.name, deref(c.x), lo, hi)
		}
	}
}

func deref64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// TestDumpSumsInstances: three loadgen processes (here: three in-process
// runs, each with its own /metrics) share one run id and one simulator;
// the dumped row's counts are the sums of their three local summaries.
func TestDumpSumsInstances(t *testing.T) {
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL, cfg.Jitter = 8*time.Millisecond, 2*time.Millisecond, time.Millisecond
	simURL := startSim(t, cfg)
	addrs := []string{closedAddr(t), closedAddr(t), closedAddr(t)}
	prom := promtest.StartPrometheus(t, addrs, time.Second)
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(3))

	const runID = "dump-three"
	outs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	results := make(chan cliResult, 3)
	for i := range addrs {
		go func() {
			results <- runCLI(t, "--endpoint", simURL, "--energy", "scrape:"+simURL+"/metrics",
				"--dataset", "synthetic", "--num-samples", fmt.Sprint(60+20*i), "--concurrency", "3",
				"--max-tokens", "24", "--min-tokens", "0", "--run-id", runID, "--out", outs[i],
				"--metrics-addr", addrs[i], "--linger", "2500ms")
		}()
	}
	for range addrs {
		if res := <-results; res.code != 0 {
			t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
		}
	}
	var locals []localRun
	for _, out := range outs {
		locals = append(locals, readLocal(t, out))
	}
	got, stderr := dumpRow(t, "--prometheus", prom.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	checkAgreement(t, got, locals...)
	if deref(got.Concurrency) != 9 {
		t.Errorf("concurrency: %v, want the three loadgens' 3 + 3 + 3", deref(got.Concurrency))
	}
	// The three shared one simulated GPU: it counts once, over the window
	// that spans them all.
	if got.GPUs == nil || *got.GPUs != 1 || got.GPUEnergyWh == nil {
		t.Errorf("energy: %v GPU(s), %v Wh; want the one shared GPU measured", deref(got.GPUs), deref(got.GPUEnergyWh))
	}
}

// TestDumpVLLMSource: a simulator measured only through its own vllm:*
// metrics and simulated GPU energy, as Prometheus scraped them; the row's
// counts equal the simulator's own counters.
func TestDumpVLLMSource(t *testing.T) {
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 5*time.Millisecond, 2*time.Millisecond
	simURL := startSim(t, cfg)
	u, _ := url.Parse(simURL)
	dcgm := fakeDCGMExporter(t)
	prom := promtest.StartPrometheus(t, []string{u.Host, dcgm}, time.Second)
	promtest.WaitFor(t, prom.URL(), `count(vllm:generation_tokens_total) + count(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)`, 20*time.Second, promtest.Equal(3))
	start := time.Now()

	res := runCLI(t, "--endpoint", simURL, "--energy", "none", "--dataset", "synthetic", "--num-samples", "150",
		"--concurrency", "4", "--max-tokens", "24", "--min-tokens", "0", "--out", t.TempDir(), "--metrics-addr=")
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	// The window ends the moment the run did, between two scrapes: the
	// requests that finished after the last scrape before end count at
	// the first scrape after it, which dump reads (an exact window used
	// to drop them: 8 of 200).
	end := time.Now()
	own := scrapeCounters(t, simURL+"/metrics")
	promtest.WaitFor(t, prom.URL(), `max(timestamp(vllm:request_success_total))`, 20*time.Second,
		func(ts float64) bool { return ts >= float64(end.UnixMilli())/1e3 })
	if v, ok := promtest.QueryAt(t, prom.URL(), `sum(vllm:request_success_total)`, end); ok {
		t.Logf("requests Prometheus had scraped by the window's end: %v of %v", v, own["vllm:request_success_total"])
	}

	got, stderr := dumpRow(t, "--prometheus", prom.URL(), "--source", "vllm", "--model", cfg.Model,
		"--start", fmt.Sprint(start.Unix()-1), "--end", end.Format(time.RFC3339Nano))
	t.Logf("dump stderr:\n%s", stderr)
	if got.TotalPrompts != 150 || float64(got.TotalPrompts) != own["vllm:request_success_total"] || got.FailedPrompts != 0 {
		t.Errorf("requests: dump %d (failed %d), simulator %v", got.TotalPrompts, got.FailedPrompts, own["vllm:request_success_total"])
	}
	if got.TotalCompletionTokens == nil || float64(*got.TotalCompletionTokens) != own["vllm:generation_tokens_total"] {
		t.Errorf("output tokens: dump %v, simulator %v", deref(got.TotalCompletionTokens), own["vllm:generation_tokens_total"])
	}
	if got.TotalPromptTokens == nil || float64(*got.TotalPromptTokens) != own["vllm:prompt_tokens_total"] {
		t.Errorf("prompt tokens: dump %v, simulator %v", deref(got.TotalPromptTokens), own["vllm:prompt_tokens_total"])
	}
	if got.Model != cfg.Model || got.Backend != "vllm" || got.TTFTP50Seconds == nil || got.E2EP99Seconds == nil {
		t.Errorf("row: model %q backend %q ttft p50 %v e2e p99 %v", got.Model, got.Backend, deref(got.TTFTP50Seconds), deref(got.E2EP99Seconds))
	}
	// Throughput is over the time requests were finishing: a window five
	// minutes wider gives the same figure, not one diluted by the idle
	// time.
	wide, _ := dumpRow(t, "--prometheus", prom.URL(), "--source", "vllm", "--model", cfg.Model,
		"--start", fmt.Sprint(start.Unix()-300), "--end", end.Format(time.RFC3339Nano))
	if got.OutputThroughputTokensPerSecond == nil || wide.OutputThroughputTokensPerSecond == nil ||
		math.Abs(*wide.OutputThroughputTokensPerSecond / *got.OutputThroughputTokensPerSecond - 1) > 0.01 {
		t.Errorf("output throughput: %v tok/s over the run's window, %v over one 5 min wider; want the same",
			deref(got.OutputThroughputTokensPerSecond), deref(wide.OutputThroughputTokensPerSecond))
	}
	// Each percentile from vLLM's classic buckets names its bucket, and
	// the columns no vLLM metric can fill are named with the reason.
	for _, want := range []string{"classic buckets", "TTFT p50 in (", "ITL p90 in (", "E2E p99 in (",
		"scenario, endpoint, request_rate", "how the load was sent", "schedule_lag_p99_seconds"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("dump's warnings lack %q:\n%s", want, stderr)
		}
	}

	// auto picks dcgm-exporter's counter where there is one: both GPUs
	// unless narrowed.
	if got.EnergySource != "dcgm-exporter" || deref(got.GPUs) != 2 {
		t.Errorf("energy: from %q on %v GPU(s); want dcgm-exporter's two", got.EnergySource, deref(got.GPUs))
	}

	// dcgm-exporter's counter (mJ) on host h1 only, over [start, end]:
	// 200 W times the window. Both edges lie between scrapes (a sample
	// before start came before the run; wait for one after end).
	promtest.WaitFor(t, prom.URL(), `max(timestamp(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{Hostname="h1"}))`, 20*time.Second,
		func(ts float64) bool { return ts > float64(end.UnixNano())/1e9 })
	h1, h1err := dumpRow(t, "--prometheus", prom.URL(), "--source", "vllm", "--energy-metric", "dcgm", "--gpu-selector", `Hostname="h1"`,
		"--start", start.Format(time.RFC3339Nano), "--end", end.Format(time.RFC3339Nano))
	want := 200 * end.Sub(start).Seconds() / 3600
	if deref(h1.GPUs) != 1 || h1.GPUEnergyWh == nil || math.Abs(*h1.GPUEnergyWh/want-1) > 0.005 || deref(h1.PeakPowerW) != 200.0 {
		t.Errorf("dcgm on h1: %v GPU(s), %v Wh (want %.6f), peak %v W (want 200)\n%s", deref(h1.GPUs), deref(h1.GPUEnergyWh), want, deref(h1.PeakPowerW), h1err)
	}

	// The simulated GPU's tokenwatt counter, as the sim stack has it.
	tw, _ := dumpRow(t, "--prometheus", prom.URL(), "--source", "vllm", "--energy-metric", "tokenwatt",
		"--start", fmt.Sprint(start.Unix()-1), "--end", end.Format(time.RFC3339Nano))
	if tw.GPUEnergyWh == nil || *tw.GPUEnergyWh <= 0 || deref(tw.GPUs) != 1 {
		t.Errorf("tokenwatt energy: %v Wh on %v GPU(s); want the simulated GPU's", deref(tw.GPUEnergyWh), deref(tw.GPUs))
	}
}

// fakeDCGMExporter serves what NVIDIA's dcgm-exporter would for two GPUs
// drawing a steady 200 W (host h1) and 100 W (host h2): the energy
// counter in mJ and the power gauge, labelled as dcgm-exporter labels
// them. It stands in for the exporter, which needs a GPU.
func fakeDCGMExporter(t *testing.T) string {
	t.Helper()
	t0 := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each counter carries the instant it was read, so Prometheus
		// (honor_timestamps) stores it at that instant, however late the
		// scrape runs on a busy machine: a counter read at time t holds
		// exactly 200 W (100 W) times t.
		now := time.Now()
		sec, ms := now.Sub(t0).Seconds(), now.UnixMilli()
		fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n")
		fmt.Fprintf(w, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"h1\",modelName=\"NVIDIA H100\"} %.0f %d\n", 5e6+200e3*sec, ms)
		fmt.Fprintf(w, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"0\",UUID=\"GPU-b\",Hostname=\"h2\",modelName=\"NVIDIA H100\"} %.0f %d\n", 9e6+100e3*sec, ms)
		fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n")
		fmt.Fprintf(w, "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-a\",Hostname=\"h1\",modelName=\"NVIDIA H100\"} 200\n")
		fmt.Fprintf(w, "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",UUID=\"GPU-b\",Hostname=\"h2\",modelName=\"NVIDIA H100\"} 100\n")
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// scrapeCounters reads the unlabelled totals of the vllm:* counters a
// /metrics page shows (summing a counter's label sets).
func scrapeCounters(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			if c := m.GetCounter(); c != nil {
				out[name] += c.GetValue()
			}
		}
	}
	return out
}

// flakyProxy forwards Prometheus' scrapes to a loadgen's /metrics, or
// answers 503 while failing is set: a scrape gap.
func flakyProxy(t *testing.T, target string, failing *atomic.Bool) string {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "scrape gap", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestDumpGapsAndClassicHistograms: a Prometheus without native
// histograms scrapes a run through a proxy that fails for 3.5 s in the
// middle. The row is still written, its counts exact; one warning names
// the gap and another says the percentiles come from classic buckets.
// Then the bad inputs: an unknown run id (listing the runs there are) and
// an unreachable Prometheus.
func TestDumpGapsAndClassicHistograms(t *testing.T) {
	offlineHF(t)
	addr := closedAddr(t)
	var failing atomic.Bool
	prom := promtest.StartPrometheusWith(t, promtest.Config{Targets: []string{flakyProxy(t, addr, &failing)}, Interval: time.Second, ClassicHistogramsOnly: true})
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(1))

	const runID = "dump-gap"
	out := t.TempDir()
	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(t, "--sim", "--sim-ttft", "5ms", "--sim-itl", "2ms", "--dataset", "synthetic",
			"--num-samples", "160", "--rate", "20", "--max-tokens", "16", "--min-tokens", "0", "--energy", "sim",
			"--run-id", runID, "--out", out, "--metrics-addr", addr, "--linger", "2500ms")
	}()
	select {
	case res := <-done:
		t.Fatalf("run ended early: exit %d\nstderr: %s", res.code, res.stderr)
	case <-time.After(2 * time.Second):
	}
	promtest.WaitFor(t, prom.URL(), `sum(tokenwatt_requests_total{run_id="dump-gap"}) > 0`, 20*time.Second, func(float64) bool { return true })
	time.Sleep(time.Second)
	failing.Store(true)
	time.Sleep(3500 * time.Millisecond)
	failing.Store(false)
	if res := <-done; res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	local := readLocal(t, out)
	got, stderr := dumpRow(t, "--prometheus", prom.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	if got.TotalPrompts != local.row.TotalPrompts || deref(got.TotalCompletionTokens) != deref(local.row.TotalCompletionTokens) {
		t.Errorf("counts: dump %d requests %v tokens, local %d %v", got.TotalPrompts, deref(got.TotalCompletionTokens), local.row.TotalPrompts, deref(local.row.TotalCompletionTokens))
	}
	checkAgreementClassic(t, got, local)
	if !strings.Contains(stderr, "warning: run dump-gap: scrape gap in {") || !strings.Contains(stderr, "without a sample") {
		t.Errorf("no scrape-gap warning:\n%s", stderr)
	}
	if !strings.Contains(stderr, "no native histograms stored for tokenwatt_request_ttft_seconds") {
		t.Errorf("no classic-bucket warning:\n%s", stderr)
	}

	// --all to stdout: the header and this run's row.
	res := runCLI(t, "dump", "--prometheus", prom.URL(), "--all", "--since", "1h")
	if lines := strings.Split(strings.TrimSpace(res.stdout), "\n"); res.code != 0 || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "benchmark_name,backend,model,") || !strings.Contains(lines[1], ","+runID+",") {
		t.Errorf("--all: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	res = runCLI(t, "dump", "--prometheus", prom.URL(), "--run-id", "no-such-run")
	if res.code != 2 || !strings.Contains(res.stderr, `run id "no-such-run" not in the last 1w`) || !strings.Contains(res.stderr, "most recent: dump-gap (started ") {
		t.Errorf("unknown run id: exit %d, stderr %q", res.code, res.stderr)
	}
	dead := closedAddr(t)
	res = runCLI(t, "dump", "--prometheus", "http://"+dead, "--run-id", runID)
	if res.code != 2 || lastLine(res.stderr) != fmt.Sprintf("loadgen: cannot reach Prometheus at http://%s: dial tcp %s: connect: connection refused", dead, dead) {
		t.Errorf("unreachable: exit %d, stderr %q", res.code, res.stderr)
	}
	res = runCLI(t, "dump", "--prometheus", prom.URL())
	if res.code != 2 || !strings.Contains(res.stderr, "give --run-id ID") {
		t.Errorf("no run chosen: exit %d, stderr %q", res.code, res.stderr)
	}
}
