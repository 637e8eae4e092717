package loadgen

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/report"
)

// updateGolden is the package's -update flag: go test -update rewrites
// the golden files under testdata/ from the current output.
var updateGolden = flag.Bool("update", false, "rewrite golden files under testdata/ from the current output")

func summaryGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "summary", name)
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// goldenRecords covers every shape a record takes: successes with and
// without TPOT, a failure before any token, a failure mid-stream with
// chunk-counted tokens, and a timeout.
func goldenRecords() []*Record {
	return []*Record{
		{Seq: 0, Outcome: "ok", TTFT: new(0.1), E2E: new(1.0), TPOT: new(0.05), ITL: []float64{0.04, 0.05, 0.06},
			ScheduleLag: 0.001, PromptTokens: new(100), OutputTokens: new(20)},
		{Seq: 1, Outcome: "ok", TTFT: new(0.2), E2E: new(2.0), TPOT: new(0.1), ITL: []float64{0.1, 0.1},
			PromptTokens: new(200), OutputTokens: new(19)},
		{Seq: 2, Outcome: "http_5xx", ScheduleLag: 0.002},
		{Seq: 3, Outcome: "stream_error", TTFT: new(0.3), E2E: new(0.5), ITL: []float64{0.2},
			ScheduleLag: 0.003, OutputTokens: new(2)},
		{Seq: 4, Outcome: "ok", TTFT: new(0.125), E2E: new(1.5), PromptTokens: new(50), OutputTokens: new(1)},
		{Seq: 5, Outcome: "timeout", ScheduleLag: 0.5},
	}
}

func goldenInfo() RunInfo {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return RunInfo{
		Name:            "golden",
		RunID:           "run-1",
		Scenario:        "energy_star",
		Backend:         "vllm",
		Model:           "m",
		Endpoint:        "http://user:secret@127.0.0.1:8000/v1",
		Start:           start,
		End:             start.Add(10 * time.Second),
		RequestRate:     2,
		Concurrency:     4,
		Arrival:         "poisson",
		Warmup:          3,
		Simulated:       true,
		CarbonIntensity: 475,
	}
}

func summaryOf(recs []*Record) *Summary {
	s := NewSummary()
	for _, r := range recs {
		s.Add(r)
	}
	return s
}

func TestSummaryGoldenCSV(t *testing.T) {
	row := summaryOf(goldenRecords()).Row(goldenInfo())
	path := filepath.Join(t.TempDir(), "summary.csv")
	if err := report.AppendCSV(path, row); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	summaryGolden(t, "summary.golden", got)

	var table bytes.Buffer
	if err := report.WriteTable(&table, row); err != nil {
		t.Fatal(err)
	}
	summaryGolden(t, "table.golden", table.Bytes())
}

// TestSummarySemantics pins the definitions behind the golden row, so
// that -update cannot bless a wrong value.
func TestSummarySemantics(t *testing.T) {
	cells := cellsByName(summaryOf(goldenRecords()).Row(goldenInfo()))
	want := map[string]string{
		"total_prompts":                       "6",
		"successful_prompts":                  "3",
		"failed_prompts":                      "3",
		"total_duration_seconds":              "10",
		"avg_latency_seconds":                 "1.5", // (1 + 2 + 1.5) / 3: successful requests only
		"total_prompt_tokens":                 "350",
		"total_completion_tokens":             "40", // successful requests only: 20 + 19 + 1
		"total_tokens":                        "390",
		"throughput_tokens_per_second":        "39",
		"output_throughput_tokens_per_second": "4",
		"failed_prompt_tokens":                "",  // no failed request reported prompt tokens
		"failed_output_tokens":                "2", // the stream_error's 2 tokens, kept apart
		"failures":                            "http_5xx=1 stream_error=1 timeout=1",
		"completion_rate":                     "0.3", // 3 successful requests / 10 s
		"send_rate":                           "",    // the records carry no send times
		"rate_warning":                        "",
		"ttft_mean_seconds":                   "0.1416666666666667", // (0.1 + 0.2 + 0.125) / 3: successful requests only
		"tpot_mean_seconds":                   "0.07500000000000001",
		"timestamp":                           "2025-06-01T12:00:10.000000+00:00",
		"endpoint":                            "http://127.0.0.1:8000/v1",
		"request_rate":                        "2",
		"concurrency":                         "4",
		"warmup_requests":                     "3",
		"arrival":                             "poisson",
		"simulated":                           "true",
		"carbon_intensity_g_per_kwh":          "475",
		"energy_source":                       "none",
		"gpu_energy_wh":                       "",
		"emissions_g_co2eq":                   "",
	}
	for name, w := range want {
		if cells[name] != w {
			t.Errorf("%s = %q, want %q", name, cells[name], w)
		}
	}
	// Quantile q is the sample at rank ⌊q·(n−1)⌋, to within 1 %.
	percentiles := map[string]float64{
		// Successful requests only: TTFT 0.1, 0.125, 0.2; ITL 0.04,
		// 0.05, 0.06, 0.1, 0.1; E2E 1, 1.5, 2. The schedule lag is every
		// send's: 0, 0, 0.001, 0.002, 0.003, 0.5.
		"ttft_p50_seconds":         0.125,
		"ttft_p90_seconds":         0.125,
		"ttft_p99_seconds":         0.125,
		"itl_p50_seconds":          0.06,
		"itl_p90_seconds":          0.1,
		"itl_p99_seconds":          0.1,
		"e2e_p50_seconds":          1.5,
		"e2e_p90_seconds":          1.5,
		"e2e_p99_seconds":          1.5,
		"schedule_lag_p99_seconds": 0.003,
	}
	for name, w := range percentiles {
		if !within(t, cells[name], w, 0.01) {
			t.Errorf("%s = %s, want %v within 1 %%", name, cells[name], w)
		}
	}
}

func cellsByName(row *report.Row) map[string]string {
	cells := row.Record()
	m := make(map[string]string, len(cells))
	for i, name := range report.Columns() {
		m[name] = cells[i]
	}
	return m
}

// within reports whether the float in cell is want to relative error rel.
func within(t *testing.T, cell string, want, rel float64) bool {
	t.Helper()
	got, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		t.Errorf("cell %q: %v", cell, err)
		return false
	}
	return math.Abs(got-want) <= rel*math.Abs(want)
}

func TestSummaryEmptyNotZero(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	failed := []*Record{{Outcome: "connect_error"}, {Outcome: "http_4xx", HTTPStatus: new(400)}}
	// always holds what a run knows even when nothing was measured.
	always := map[string]string{
		"total_prompts":      "0",
		"successful_prompts": "0",
		"failed_prompts":     "0",
		"schema_version":     "1",
		"request_rate":       "0",
		"concurrency":        "0",
		"warmup_requests":    "0",
		"simulated":          "false",
		"energy_source":      "none",
	}
	tests := []struct {
		name  string
		recs  []*Record
		info  RunInfo
		known map[string]string // cells that are not empty, beyond always
	}{
		{"no requests, no window", nil, RunInfo{}, nil},
		{"only failures before any token", failed, RunInfo{Start: start, End: start.Add(time.Second)}, map[string]string{
			"total_prompts":            "2",
			"failed_prompts":           "2",
			"total_duration_seconds":   "1",
			"timestamp":                "2025-06-01T12:00:01.000000+00:00",
			"schedule_lag_p99_seconds": "0",
			"completion_rate":          "0", // measured: nothing succeeded
			"failures":                 "connect_error=1 http_4xx=1",
		}},
		{"zero-length window", nil, RunInfo{Start: start, End: start}, map[string]string{
			"total_duration_seconds": "0",
			"timestamp":              "2025-06-01T12:00:00.000000+00:00",
		}},
		{"end before start", nil, RunInfo{Start: start, End: start.Add(-time.Second)}, map[string]string{
			"timestamp": "2025-06-01T11:59:59.000000+00:00",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cells := cellsByName(summaryOf(tt.recs).Row(tt.info))
			for _, name := range report.Columns() {
				want, ok := tt.known[name]
				if !ok {
					want = always[name]
				}
				if cells[name] != want {
					t.Errorf("%s = %q, want %q", name, cells[name], want)
				}
			}
		})
	}
}

func TestSummaryZeroDurationHasNoThroughput(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s := summaryOf([]*Record{{Outcome: "ok", PromptTokens: new(3), OutputTokens: new(4)}})
	row := s.Row(RunInfo{Start: start, End: start})
	if row.ThroughputTokensPerSecond != nil || row.OutputThroughputTokensPerSecond != nil {
		t.Errorf("throughput over a zero-length window = %v, %v; want unknown",
			row.ThroughputTokensPerSecond, row.OutputThroughputTokensPerSecond)
	}
	if row.TotalTokens == nil || *row.TotalTokens != 7 {
		t.Errorf("total tokens = %v, want 7", row.TotalTokens)
	}
}

func TestSummaryTokensWithoutPromptCounts(t *testing.T) {
	// A server that sends no usage: output tokens are counted chunks,
	// prompt tokens are unknown, and so is their sum.
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s := summaryOf([]*Record{{Outcome: "ok", OutputTokens: new(8)}, {Outcome: "ok", OutputTokens: new(2)}})
	cells := cellsByName(s.Row(RunInfo{Start: start, End: start.Add(2 * time.Second)}))
	want := map[string]string{
		"total_prompt_tokens":                 "",
		"total_completion_tokens":             "10",
		"total_tokens":                        "",
		"throughput_tokens_per_second":        "",
		"output_throughput_tokens_per_second": "5",
	}
	for name, w := range want {
		if cells[name] != w {
			t.Errorf("%s = %q, want %q", name, cells[name], w)
		}
	}
}

func TestSummaryRequestsAndTTFTQuantile(t *testing.T) {
	s := NewSummary()
	if _, ok := s.TTFTQuantile(0.5); ok {
		t.Error("TTFTQuantile on an empty summary reports a value")
	}
	for _, r := range goldenRecords() {
		s.Add(r)
	}
	if total, ok, failed := s.Requests(); total != 6 || ok != 3 || failed != 3 {
		t.Errorf("Requests() = %d, %d, %d; want 6, 3, 3", total, ok, failed)
	}
	if got, ok := s.TTFTQuantile(1); !ok || math.Abs(got-0.2) > 0.002 {
		t.Errorf("TTFTQuantile(1) = %v, %v; want 0.2 (the successful requests' maximum) within 1 %%, true", got, ok)
	}
	if _, ok := s.TTFTQuantile(1.5); ok {
		t.Error("TTFTQuantile(1.5) reports a value")
	}
}

// TestSummaryAchievedRates: the send rate is sends / (last send - first
// send), the completion rate successful requests / the run window.
func TestSummaryAchievedRates(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var recs []*Record
	for i := range 5 {
		// Sends at 0, 0.5, ..., 2 s; the last one fails.
		r := &Record{Outcome: "ok", send: t0.Add(time.Duration(i) * 500 * time.Millisecond), OutputTokens: new(10)}
		if i == 4 {
			r.Outcome = "timeout"
		}
		recs = append(recs, r)
	}
	row := summaryOf(recs).Row(RunInfo{Start: t0, End: t0.Add(4 * time.Second), RequestRate: 2})
	if row.SendRate == nil || *row.SendRate != 2.5 {
		t.Errorf("send rate %v, want 5 sends / 2 s = 2.5", deref(row.SendRate))
	}
	if row.CompletionRate == nil || *row.CompletionRate != 1 {
		t.Errorf("completion rate %v, want 4 ok / 4 s = 1", deref(row.CompletionRate))
	}
	if deref64(row.TotalCompletionTokens) != 40 || deref64(row.FailedOutputTokens) != 10 || row.Failures != "timeout=1" {
		t.Errorf("tokens %v ok, %v failed; failures %q", deref64(row.TotalCompletionTokens), deref64(row.FailedOutputTokens), row.Failures)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func deref64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestSummaryPercentileAccuracy(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, n)
	s := NewSummary()
	var sum float64
	for i := range values {
		// Log-normal around 50 ms, spanning microseconds to seconds like
		// real latencies.
		v := math.Exp(rng.NormFloat64()*1.5 - 3)
		values[i] = v
		sum += v
		s.Add(&Record{Outcome: "ok", TTFT: new(v), E2E: new(v), TPOT: new(v), ITL: []float64{v}, ScheduleLag: v})
	}
	slices.Sort(values)
	// The sketch's rank for quantile q is q×(n−1), rounded down.
	exact := func(q float64) float64 { return values[int(q*float64(len(values)-1))] }
	cells := cellsByName(s.Row(RunInfo{}))
	for _, metric := range []string{"ttft", "itl", "e2e"} {
		for _, q := range []struct {
			suffix string
			q      float64
		}{{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}} {
			name := metric + "_" + q.suffix + "_seconds"
			if !within(t, cells[name], exact(q.q), 0.01) {
				t.Errorf("%s = %s, exact %v: more than 1 %% off", name, cells[name], exact(q.q))
			}
		}
	}
	if !within(t, cells["schedule_lag_p99_seconds"], exact(0.99), 0.01) {
		t.Errorf("schedule_lag_p99_seconds = %s: more than 1 %% off", cells["schedule_lag_p99_seconds"])
	}
	for _, name := range []string{"ttft_mean_seconds", "tpot_mean_seconds", "avg_latency_seconds"} {
		if !within(t, cells[name], sum/n, 1e-12) {
			t.Errorf("%s = %s, exact mean %v", name, cells[name], sum/n)
		}
	}
}

func TestSummaryMergeEqualsAddingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	// Multiples of 1/1024 sum exactly in any order, so merged means equal
	// sequential ones bit for bit.
	dyadic := func() *float64 { return new(float64(rng.IntN(4096)) / 1024) }
	outcomes := []string{"ok", "ok", "ok", "http_5xx", "stream_error", "timeout"}
	var recs []*Record
	for i := range 300 {
		r := &Record{Seq: int64(i), Outcome: outcomes[rng.IntN(len(outcomes))], ScheduleLag: *dyadic()}
		if rng.IntN(4) > 0 {
			r.TTFT, r.E2E, r.TPOT = dyadic(), dyadic(), dyadic()
			r.ITL = []float64{*dyadic(), *dyadic()}
			r.PromptTokens, r.OutputTokens = new(rng.IntN(500)), new(rng.IntN(500))
		}
		recs = append(recs, r)
	}
	info := goldenInfo()
	want := summaryOf(recs).Row(info).Record()

	merged := summaryOf(recs[:100])
	for _, part := range [][]*Record{recs[100:250], nil, recs[250:]} {
		o := summaryOf(part)
		if err := merged.Merge(o); err != nil {
			t.Fatal(err)
		}
	}
	if got := merged.Row(info).Record(); !slices.Equal(got, want) {
		t.Errorf("merged row\n%q\nwant (all added to one summary)\n%q", got, want)
	}
}

// TestSummaryDistributions: report.json's distributions have exact count,
// mean, population std, min and max, and the percentiles within the
// sketch's accuracy; a merge gives the same as one summary of everything.
func TestSummaryDistributions(t *testing.T) {
	var recs []*Record
	var a, b []*Record
	for i := range 100 {
		x := float64(i+1) / 1000 // 1 ms .. 100 ms
		r := &Record{Outcome: "ok", TTFT: new(x), E2E: new(10 * x), ScheduleLag: 0}
		recs = append(recs, r)
		if i%3 == 0 {
			a = append(a, r)
		} else {
			b = append(b, r)
		}
	}
	recs = append(recs, &Record{Outcome: "timeout", TTFT: new(5.0)}) // not in the statistics
	for _, s := range []*Summary{summaryOf(recs), func() *Summary {
		sa, sb := summaryOf(a), summaryOf(b)
		if err := sa.Merge(sb); err != nil {
			t.Fatal(err)
		}
		sa.Add(recs[len(recs)-1])
		return sa
	}()} {
		ds := s.Distributions()
		ttft := ds["ttft"]
		if ttft == nil || ttft.Count != 100 || math.Abs(ttft.Mean-0.0505) > 1e-12 || ttft.Min != 0.001 || ttft.Max != 0.1 {
			t.Fatalf("ttft %+v", ttft)
		}
		// Population std of 1..100 ms: sqrt((100²-1)/12) ms.
		if want := math.Sqrt((100*100-1)/12.0) / 1000; math.Abs(ttft.Std-want) > 1e-9 {
			t.Errorf("ttft std %v, want %v", ttft.Std, want)
		}
		for key, want := range map[string]float64{"p50": 0.050, "p90": 0.090, "p95": 0.095, "p99": 0.099, "p99.9": 0.100} {
			if got, ok := ttft.Percentiles[key]; !ok || math.Abs(got-want) > 0.0011 {
				t.Errorf("ttft %s = %v, want %v", key, got, want)
			}
		}
		if ds["tpot"] != nil || ds["schedule_lag"] == nil || ds["schedule_lag"].Count != 101 {
			t.Errorf("tpot %+v (want none), schedule_lag %+v (want every send's 101)", ds["tpot"], ds["schedule_lag"])
		}
	}
}

// Token sums saturate instead of wrapping: two records with the largest
// int counts gave total_tokens -6 and a negative throughput (issue 16,
// defect 12). Measured records are bounded (backends.MaxUsageTokens);
// records from elsewhere must still not turn the sums negative.
func TestSummaryTokenSumsDoNotWrap(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	huge := func() *Record {
		return &Record{Outcome: "ok", PromptTokens: new(math.MaxInt64), OutputTokens: new(math.MaxInt64)}
	}
	failed := func() *Record {
		return &Record{Outcome: "timeout", PromptTokens: new(math.MaxInt64), OutputTokens: new(math.MaxInt64)}
	}
	s := summaryOf([]*Record{huge(), huge(), huge(), failed(), failed()})
	if err := s.Merge(summaryOf([]*Record{huge(), failed()})); err != nil {
		t.Fatal(err)
	}
	row := s.Row(RunInfo{Start: start, End: start.Add(2 * time.Second)})
	for name, p := range map[string]*int64{"prompt": row.TotalPromptTokens, "output": row.TotalCompletionTokens,
		"total": row.TotalTokens, "failed prompt": row.FailedPromptTokens, "failed output": row.FailedOutputTokens} {
		if p == nil || *p != math.MaxInt64 {
			t.Errorf("%s tokens = %v, want %d (saturated)", name, deref64(p), int64(math.MaxInt64))
		}
	}
	for name, p := range map[string]*float64{"throughput": row.ThroughputTokensPerSecond, "output throughput": row.OutputThroughputTokensPerSecond} {
		if p == nil || *p <= 0 {
			t.Errorf("%s = %v, want positive", name, deref(p))
		}
	}
}

// TestSummaryFinishReasons: ok requests are counted by finish reason and
// without one; failed ones are not; distinct reasons are bounded; Merge
// adds the counts.
func TestSummaryFinishReasons(t *testing.T) {
	s, o := NewSummary(), NewSummary()
	for i := range 40 {
		s.Add(&Record{Outcome: "ok", FinishReason: new("r" + strconv.Itoa(100 + i)[1:])})
	}
	s.Add(&Record{Outcome: "ok", FinishReason: new("r00")})
	s.Add(&Record{Outcome: "ok"})
	s.Add(&Record{Outcome: "timeout", FinishReason: new("abort")})
	o.Add(&Record{Outcome: "ok", FinishReason: new("r01")})
	o.Add(&Record{Outcome: "ok", FinishReason: new("new")})
	o.Add(&Record{Outcome: "ok"})
	counts, none := s.FinishReasons()
	if len(counts) != MaxFinishReasons+1 || counts["r00"] != 2 || counts["r31"] != 1 || counts[OtherFinishReason] != 40-MaxFinishReasons || counts["abort"] != 0 || none != 1 {
		t.Errorf("counts %v, none %d", counts, none)
	}
	if err := s.Merge(o); err != nil {
		t.Fatal(err)
	}
	counts, none = s.FinishReasons()
	if counts["r01"] != 2 || counts[OtherFinishReason] != 40-MaxFinishReasons+1 || none != 2 {
		t.Errorf("merged: counts %v, none %d", counts, none)
	}
}

// A record lists at most backends.MaxITL gaps (itl_s) and says how many
// it left out (itl_truncated); the summary still counts every gap as if
// each had been observed: the same count, extremes, percentiles (to the
// bit: the left-out gaps are binned at the summary's own accuracy), and
// sum, mean and standard deviation to rounding (issue 16, defect 8).
func TestSummaryCountsTruncatedITLs(t *testing.T) {
	const n = backends.MaxITL + 2500
	rng := rand.New(rand.NewPCG(1, 2))
	gaps := make([]time.Duration, n)
	for i := range gaps {
		// 1-40 ms, the later ones slower, so that the left-out gaps
		// shape the upper percentiles.
		gaps[i] = time.Duration(1e6 + rng.Float64()*float64(19e6) + float64(i)*2e3)
	}
	send := time.Now()
	resp := backends.Response{Send: send, First: send.Add(100 * time.Millisecond), Outcome: backends.OutcomeOK,
		TextChunks: n + 1, OutputTokens: n + 1, PromptTokens: 1, TokensSource: backends.TokensFromUsage}
	resp.Last = resp.First
	all := &Record{Outcome: "ok"}
	for _, g := range gaps {
		resp.AddGap(g)
		resp.Last = resp.Last.Add(g)
		all.ITL = append(all.ITL, g.Seconds())
	}
	resp.Done = resp.Last
	rec := newRecord(send, &resp)
	if len(rec.ITL) != backends.MaxITL || rec.ITLTruncated != n-backends.MaxITL {
		t.Fatalf("record lists %d gaps and left out %d; want %d and %d", len(rec.ITL), rec.ITLTruncated, backends.MaxITL, n-backends.MaxITL)
	}
	line, err := json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(line, []byte(`"itl_truncated":2500`)) {
		t.Errorf("record line lacks itl_truncated: %.300s", line)
	}

	got, want := summaryOf([]*Record{&rec}).Distributions()["itl"], summaryOf([]*Record{all}).Distributions()["itl"]
	if got == nil || got.Count != n || got.Min != want.Min || got.Max != want.Max {
		t.Fatalf("itl %+v, want %+v", got, want)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }
	if !near(got.Mean, want.Mean) || !near(got.Std, want.Std) {
		t.Errorf("itl mean %v std %v, want %v %v", got.Mean, got.Std, want.Mean, want.Std)
	}
	for key, w := range want.Percentiles {
		if got.Percentiles[key] != w {
			t.Errorf("itl %s = %v, want %v", key, got.Percentiles[key], w)
		}
	}
}
