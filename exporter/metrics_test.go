package exporter

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

func ptr[T any](v T) *T { return &v }

// completions is a fixed sequence covering every shape a record takes: a
// streamed success, a success whose tokens were counted from chunks, a
// server error with no timings, a timeout after the first token, and an
// open-loop request that was sent late.
func completions() []Observation {
	return []Observation{
		{Outcome: "ok", TTFT: ptr(0.12), E2E: ptr(0.5), TPOT: ptr(0.02), ITL: []float64{0.018, 0.02, 0.022},
			PromptTokens: ptr(100), OutputTokens: ptr(4), EnergyJ: ptr(42.5), SLOMet: ptr(true)},
		{Outcome: "ok", TTFT: ptr(0.05), E2E: ptr(0.09), TPOT: ptr(0.04), ITL: []float64{0.04},
			OutputTokens: ptr(2), SLOMet: ptr(true)},
		{Outcome: "http_5xx", SLOMet: ptr(false)},
		{Outcome: "timeout", TTFT: ptr(1.5), ITL: []float64{}, PromptTokens: ptr(20), SLOMet: ptr(false)},
		{Outcome: "ok", TTFT: ptr(0.3), E2E: ptr(2.5), TPOT: ptr(0.011), ITL: []float64{0.01, 0.012},
			PromptTokens: ptr(7), OutputTokens: ptr(3), ScheduleLag: 0.0042, SLOMet: ptr(false)},
	}
}

func newTestRun() *Run {
	m := NewRun(RunLabels{RunID: "run-1", Scenario: "energy_star", Model: "m", Backend: "vllm"},
		RunOptions{Version: "v0.1.0", Simulated: true, CarbonIntensity: 475, SLO: "ttft=200ms,e2e=1s",
			Outcomes: []string{"ok", "http_4xx", "http_5xx", "timeout", "canceled", "stream_error", "connect_error"}})
	m.TrackInFlight(func() float64 { return 2 })
	m.Start(time.Unix(1700000000, 0))
	for _, r := range completions() {
		m.Observe(&r)
	}
	m.End(time.Unix(1700000001, 500_000_000), time.Unix(1700000100, 0), time.Unix(1700000090, 0))
	return m
}

func TestExpositionGolden(t *testing.T) {
	m := newTestRun()
	const golden = "testdata/metrics.golden"
	if *update {
		var b strings.Builder
		(&Push{reg: m.Registry()}).write(&b)
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The counts the golden file must hold, stated here so that -update
	// cannot approve a wrong one.
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"ok requests", testutil.ToFloat64(m.requests.WithLabelValues("ok")), 3},
		{"http_5xx requests", testutil.ToFloat64(m.requests.WithLabelValues("http_5xx")), 1},
		{"timeout requests", testutil.ToFloat64(m.requests.WithLabelValues("timeout")), 1},
		{"canceled requests", testutil.ToFloat64(m.requests.WithLabelValues("canceled")), 0},
		{"prompt tokens", testutil.ToFloat64(m.promptTokens), 107}, // successful requests only
		{"output tokens", testutil.ToFloat64(m.outputTokens), 9},
		{"failed prompt tokens", testutil.ToFloat64(m.failedPromptTokens), 20}, // the timeout's
		{"failed output tokens", testutil.ToFloat64(m.failedOutputTokens), 0},
		{"records write errors", testutil.ToFloat64(m.recordsWriteErrors), 0},
		{"slo met", testutil.ToFloat64(m.sloRequests.WithLabelValues("met")), 2},
		{"slo missed", testutil.ToFloat64(m.sloRequests.WithLabelValues("missed")), 3}, // failures miss
		{"slo output tokens", testutil.ToFloat64(m.sloTokens), 6},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(m.Registry(), f, tokenwattNames(t, m)...); err != nil {
		t.Fatal(err)
	}
}

// tokenwattNames lists the registry's tokenwatt_* families (the Go and
// process collectors' values change from run to run).
func tokenwattNames(t *testing.T, m *Run) []string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), Namespace+"_") {
			names = append(names, mf.GetName())
		}
	}
	return names
}

func TestEveryDesignMetricIsExported(t *testing.T) {
	m := newTestRun()
	names := map[string]bool{}
	for _, n := range tokenwattNames(t, m) {
		names[n] = true
	}
	for _, want := range []string{
		"tokenwatt_requests_total", "tokenwatt_request_ttft_seconds", "tokenwatt_request_itl_seconds",
		"tokenwatt_request_tpot_seconds", "tokenwatt_request_duration_seconds", "tokenwatt_request_schedule_lag_seconds",
		"tokenwatt_prompt_tokens_total", "tokenwatt_output_tokens_total", "tokenwatt_requests_in_flight",
		"tokenwatt_run_info", "tokenwatt_run_start_timestamp_seconds", "tokenwatt_run_end_timestamp_seconds",
		"tokenwatt_carbon_intensity_grams_per_kwh", "tokenwatt_request_energy_joules",
	} {
		if !names[want] {
			t.Errorf("%s is not exported", want)
		}
	}
	if mfs, _ := m.Registry().Gather(); len(mfs) <= len(names) {
		t.Error("the Go and process collectors are missing")
	}
}

func TestHistogramsAreNativeToo(t *testing.T) {
	m := newTestRun()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "tokenwatt_request_") || mf.GetType().String() != "HISTOGRAM" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		if len(h.GetBucket()) == 0 {
			t.Errorf("%s has no classic buckets", mf.GetName())
		}
		// Schema 3 is growth factor 2^(2^-3) ≈ 1.09, the finest schema
		// not coarser than the configured 1.1.
		if h.Schema == nil || h.GetSchema() != 3 || h.GetZeroThreshold() <= 0 && len(h.GetPositiveSpan()) == 0 {
			t.Errorf("%s: native schema %v, spans %v; want schema 3", mf.GetName(), h.Schema, h.GetPositiveSpan())
		}
		checked++
	}
	if checked != 6 {
		t.Fatalf("checked %d request histograms, want 6", checked)
	}
}

func TestRunningRunHasNoEnd(t *testing.T) {
	m := NewRun(RunLabels{RunID: "r"}, RunOptions{})
	m.Start(time.Unix(1, 0))
	for _, n := range tokenwattNames(t, m) {
		if n == "tokenwatt_run_end_timestamp_seconds" {
			t.Fatal("a run still running exports an end time")
		}
	}
	m.End(time.Time{}, time.Unix(5, 0), time.Time{})
	m.End(time.Time{}, time.Unix(6, 0), time.Unix(4, 0)) // twice is harmless
	if got := testutil.ToFloat64(m.runEnd); got != 6 {
		t.Fatalf("end %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.runStart); got != 1 {
		t.Fatalf("start %v, want 1 (kept when End has no start)", got)
	}
}

// TestTargetGauges: the schedule's target is read at each scrape; the
// stage gauge exists for a run with stages, whose run_info carries them
// and leaves rate and concurrency empty.
func TestTargetGauges(t *testing.T) {
	target := Target{Stage: 1, Rate: 12.5, Concurrency: 64}
	m := NewRun(RunLabels{RunID: "r"}, RunOptions{RequestRate: 3, Concurrency: 2, Stages: "1m@5,2m@12.5/c64,1m@c8"})
	m.TrackTarget(true, func() Target { return target })
	want := func(metrics string) {
		t.Helper()
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(metrics), "tokenwatt_stage", "tokenwatt_target_rate", "tokenwatt_target_concurrency"); err != nil {
			t.Error(err)
		}
	}
	const head = `# HELP tokenwatt_stage Index (0-based) of the stage being scheduled, as in records' stage; -1 before the first stage (warm-up, idle baseline) and after the last.
# TYPE tokenwatt_stage gauge
# HELP tokenwatt_target_concurrency The requests in flight the closed loop keeps now, or the open loop's in-flight cap (0: none); 0 before the measured requests and after scheduling ends.
# TYPE tokenwatt_target_concurrency gauge
# HELP tokenwatt_target_rate The open-loop request rate the schedule asks for now, requests per second (a ramp's current value); 0 in closed loop, before the measured requests and after scheduling ends.
# TYPE tokenwatt_target_rate gauge
`
	lbl := `{backend="",model="",run_id="r",scenario=""}`
	want(head + "tokenwatt_stage" + lbl + " 1\ntokenwatt_target_concurrency" + lbl + " 64\ntokenwatt_target_rate" + lbl + " 12.5\n")
	target = Target{Stage: 2, Concurrency: 8}
	want(head + "tokenwatt_stage" + lbl + " 2\ntokenwatt_target_concurrency" + lbl + " 8\ntokenwatt_target_rate" + lbl + " 0\n")

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "tokenwatt_run_info" {
			continue
		}
		found = true
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["stages"] != "1m@5,2m@12.5/c64,1m@c8" || labels["rate"] != "" || labels["concurrency"] != "" {
			t.Errorf("run_info of a staged run: %v", labels)
		}
		if _, ok := labels["ramp"]; ok {
			t.Errorf("run_info has a ramp label without a ramp: %v", labels)
		}
	}
	if !found {
		t.Fatal("no tokenwatt_run_info")
	}

	plain := NewRun(RunLabels{RunID: "p"}, RunOptions{})
	plain.TrackTarget(false, func() Target { return Target{Stage: -1, Rate: 4} })
	for _, n := range tokenwattNames(t, plain) {
		if n == "tokenwatt_stage" {
			t.Error("a run without stages exports tokenwatt_stage")
		}
	}
}

// TestRunInfoShard: a shard's run_info says which it is; an unsharded
// run's has no shard label.
func TestRunInfoShard(t *testing.T) {
	for _, shard := range []string{"1/4", ""} {
		m := NewRun(RunLabels{RunID: "r"}, RunOptions{Shard: shard, RequestRate: 2.5})
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "tokenwatt_run_info" {
				continue
			}
			labels := map[string]string{}
			for _, l := range mf.GetMetric()[0].GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if got, ok := labels["shard"]; got != shard || ok != (shard != "") || labels["rate"] != "2.5" {
				t.Errorf("shard %q: run_info labels %v", shard, labels)
			}
		}
	}
}
