package htmlreport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tokenwatt/tokenwatt/report"
)

func ptr[T any](v T) *T { return &v }

// writeLines writes v's JSON lines (a string as it is) to path.
func writeLines(t *testing.T, path string, v ...any) {
	t.Helper()
	var b bytes.Buffer
	for _, x := range v {
		if s, ok := x.(string); ok {
			b.WriteString(s)
			continue
		}
		j, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(j, '\n'))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rec(id string, send, done float64, outcome string) map[string]any {
	return map[string]any{"run_id": id, "outcome": outcome, "send_unix": send, "done_unix": done,
		"ttft_s": nil, "e2e_s": nil, "itl_s": nil, "output_tokens": nil, "energy_j": nil,
		"prefill_energy_j": nil, "decode_energy_j": nil, "simulated": false}
}

// runDir writes a run directory of n successful requests, one every
// second from t0, each 2 s long (TTFT 0.5 s, 10 tokens, 1 J prefill and
// 4 J decode), a failed one, and energy samples at 50 W a second apart,
// then another run's block at 1000 W over the same time.
func runDir(t *testing.T, id string, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const t0 = 1_800_000_000.0
	var lines []any
	for i := range n {
		r := rec(id, t0+float64(i), t0+float64(i)+2, "ok")
		r["ttft_s"], r["e2e_s"], r["itl_s"] = 0.5, 2.0, []float64{0.1, 0.2, 0.3}
		r["output_tokens"], r["energy_j"], r["prefill_energy_j"], r["decode_energy_j"] = 10, 5.0, 1.0, 4.0
		lines = append(lines, r)
	}
	f := rec(id, t0+0.5, t0+1, "http_5xx")
	f["http_status"] = 500
	lines = append(lines, f, `{"run_id": "cut sho`) // a killed run's last line
	writeLines(t, filepath.Join(dir, recordsFile), lines...)
	var e []any
	e = append(e, map[string]any{"_run_id": id, "_interval_s": 1.0})
	for i := -2; i <= n+3; i++ {
		e = append(e, map[string]any{"t_unix": t0 + float64(i), "gpu": 0, "energy_j": 50.0 * float64(i+2), "power_w": 50})
	}
	e = append(e, `{"t_unix": 1800000100, "gpu": 0, "ene`+"\n") // cut short by a kill
	e = append(e, map[string]any{"_run_id": "other", "_interval_s": 1.0})
	for i := range 5 {
		e = append(e, map[string]any{"t_unix": t0 + float64(i), "gpu": 0, "energy_j": 1000.0 * float64(i)})
	}
	writeLines(t, filepath.Join(dir, energyFile), e...)
	return dir
}

func TestLoadRunKeepsTheTotals(t *testing.T) {
	dir := runDir(t, "r1", 10)
	r, err := loadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.id != "r1" || r.records != 11 || r.ok != 10 || r.failed != 1 || r.rep != nil || r.skippedLines != 1 || r.energySkipped != 1 {
		t.Fatalf("id %q, records %d, ok %d, failed %d, report %v, lines skipped %d (records) and %d (energy)",
			r.id, r.records, r.ok, r.failed, r.rep, r.skippedLines, r.energySkipped)
	}
	if r.t0 != 1_800_000_000 || r.t1 != 1_800_000_000+11 {
		t.Errorf("window [%v, %v], want the first send to the last end", r.t0, r.t1)
	}
	if len(r.ttft.vals) != 10 || len(r.itl.vals) != 30 || len(r.e2e.vals) != 10 || len(r.jpt.vals) != 10 {
		t.Errorf("samples: ttft %d, itl %d, e2e %d, J/token %d", len(r.ttft.vals), len(r.itl.vals), len(r.e2e.vals), len(r.jpt.vals))
	}
	sum := func(v []float64, w float64) (s float64) {
		for _, x := range v {
			if !math.IsNaN(x) {
				s += x * w
			}
		}
		return s
	}
	// Each bin's mean in flight times its width adds up to every
	// request's time in flight: 10 × 2 s + 0.5 s.
	if got := sum(r.inFlight, r.binWidth()); math.Abs(got-20.5) > 1e-9 {
		t.Errorf("in flight: %v request-seconds, want 20.5", got)
	}
	if got := sum(r.prefillW, r.energyBinWidth()); math.Abs(got-10) > 1e-9 {
		t.Errorf("prefill: %v J, want 10", got)
	}
	if got := sum(r.decodeW, r.energyBinWidth()); math.Abs(got-40) > 1e-9 {
		t.Errorf("decode: %v J, want 40", got)
	}
	if r.energyBins != 11 {
		t.Errorf("%d energy bins, want 11 (none narrower than the 1 s sampling interval)", r.energyBins)
	}
	// This run's samples only: 50 W all along (the other run's 1000 W
	// block is not this run's).
	for i, p := range r.powerW {
		if math.Abs(p-50) > 1e-9 {
			t.Fatalf("power bin %d: %v W, want 50", i, p)
		}
	}
}

func TestPowerIsUnknownWhereNoSampleCovers(t *testing.T) {
	dir := runDir(t, "r1", 10)
	// Samples only over the run's second half.
	var e []any
	e = append(e, map[string]any{"_run_id": "r1", "_interval_s": 1.0})
	for i := 6; i <= 12; i++ {
		e = append(e, map[string]any{"t_unix": 1_800_000_000 + float64(i), "gpu": 0, "energy_j": 80.0 * float64(i)})
	}
	writeLines(t, filepath.Join(dir, energyFile), e...)
	r, err := loadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range r.powerW {
		if i < 6 && !math.IsNaN(p) || i >= 6 && math.Abs(p-80) > 1e-9 {
			t.Errorf("power bin %d: %v, want NaN before the first sample, 80 W after", i, p)
		}
	}
}

func TestSpreadConservesWhatFallsInTheWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 50).Draw(t, "bins")
		w := rapid.Float64Range(1e-3, 10).Draw(t, "width")
		a := rapid.Float64Range(-5, float64(n)*w+5).Draw(t, "a")
		b := a + rapid.Float64Range(0, float64(n)*w).Draw(t, "length")
		amount := rapid.Float64Range(0, 1000).Draw(t, "amount")
		bins := make([]float64, n)
		spread(bins, 0, w, a, b, amount)
		got := 0.0
		for _, v := range bins {
			if v < 0 {
				t.Fatalf("negative bin %v", v)
			}
			got += v
		}
		want := amount
		if b > a {
			want = amount * (math.Min(b, float64(n)*w) - math.Max(a, 0)) / (b - a)
			want = math.Max(want, 0)
		} else if a < 0 || a > float64(n)*w {
			want = 0
		}
		if math.Abs(got-want) > 1e-9*math.Max(1, amount) {
			t.Fatalf("spread %v over [%v, %v] in %d bins of %v: got %v, want %v", amount, a, b, n, w, got, want)
		}
	})
}

func TestSamplesAreBounded(t *testing.T) {
	s := newSample(1000)
	for i := range 100_000 {
		addFinite(s, float64(i))
	}
	addFinite(s, math.NaN())
	addFinite(s, math.Inf(1))
	if len(s.vals) != 1000 || s.n != 100_000 || !s.sampled() {
		t.Fatalf("%d values of %d", len(s.vals), s.n)
	}
	// A uniform sample of 0..99999 has its median near 50000.
	v := sorted(s, 1)
	if m := quantile(v, 0.5); m < 40_000 || m > 60_000 {
		t.Errorf("sample median %v, want about 50000 (the sample is not uniform)", m)
	}
	if pts := cdfPoints(v); len(pts) > 1001 || pts[len(pts)-1].Y != 100 {
		t.Errorf("CDF: %d points ending at %v %%", len(pts), pts[len(pts)-1].Y)
	}
}

func TestLongLinesAreSkipped(t *testing.T) {
	in := "a\n" + strings.Repeat("x", 200_000) + "\nb\n" + strings.Repeat("y", 150) + "\nlast"
	var got []string
	skipped, err := eachLine(strings.NewReader(in), 100_000, func(l []byte) { got = append(got, string(l[:min(len(l), 3)])) })
	if err != nil || skipped != 1 {
		t.Fatalf("skipped %d, err %v", skipped, err)
	}
	if strings.Join(got, ",") != "a,b,yyy,las" {
		t.Errorf("lines %q, want a, b, the 150-byte line and the last (the 200 kB one skipped)", got)
	}
}

// noFetch matches what could make a page fetch something when viewed.
var noFetch = regexp.MustCompile(`(?i)<script|<link|<iframe|<object|<embed|<img|<[a-z][^>]*\s(?:src|href|xlink:href)\s*=|url\(|@import`)

func TestRunPageIsSelfContainedAndEscaped(t *testing.T) {
	id := `<img src=x onerror=alert(1)>`
	dir := runDir(t, "run", 10)
	rep := &report.Report{Schema: report.ReportSchema, RunID: id, BenchmarkName: "b<script>", Simulated: true,
		Latency: map[string]*report.Distribution{}, Energy: &report.ReportEnergy{IdlePowerW: ptr(40.0)}}
	if err := report.WriteReport(filepath.Join(dir, report.ReportFileName), rep); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	kind, err := Write(&b, []string{dir}, Options{Generator: "loadgen test"})
	if err != nil || kind != KindRun {
		t.Fatalf("kind %q, err %v", kind, err)
	}
	page := b.String()
	if m := noFetch.FindString(page); m != "" {
		t.Errorf("the page has %q: it could fetch something when viewed", m)
	}
	for _, id := range []string{"ttft-cdf", "itl-cdf", "e2e-cdf", "ttft-hist", "itl-hist", "e2e-hist", "inflight", "power", "jpt"} {
		if !strings.Contains(page, `id="chart-`+id+`"`) {
			t.Errorf("no chart %s", id)
		}
	}
	if strings.Count(page, "<svg") != 9 || !strings.Contains(page, "SIMULATED") || !strings.Contains(page, "idle baseline") {
		t.Errorf("%d SVGs, SIMULATED %v, idle line %v", strings.Count(page, "<svg"),
			strings.Contains(page, "SIMULATED"), strings.Contains(page, "idle baseline"))
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the run id is not escaped")
	}
}

func TestRunWithoutEnergyOrStreaming(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plain")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var lines []any
	for i := range 5 {
		r := rec("plain", 100+float64(i), 101+float64(i), "ok")
		r["e2e_s"], r["output_tokens"] = 1.0, 7
		lines = append(lines, r)
	}
	writeLines(t, filepath.Join(dir, recordsFile), lines...)
	var b bytes.Buffer
	if _, err := Write(&b, []string{dir}, Options{}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, id := range []string{"e2e-cdf", "e2e-hist", "inflight"} {
		if !strings.Contains(page, `id="chart-`+id+`"`) {
			t.Errorf("no chart %s", id)
		}
	}
	for _, id := range []string{"ttft-cdf", "itl-hist", "power", "jpt"} {
		if strings.Contains(page, `id="chart-`+id+`"`) {
			t.Errorf("chart %s drawn from nothing", id)
		}
	}
	for _, s := range []string{"No TTFT or ITL was measured", "no energy source", "has no report.json"} {
		if !strings.Contains(page, s) {
			t.Errorf("the page does not say %q", s)
		}
	}
}

func TestComparePage(t *testing.T) {
	a, b := runDir(t, "base", 10), runDir(t, "new", 8)
	var out bytes.Buffer
	kind, err := Write(&out, []string{a, b}, Options{})
	if err != nil || kind != KindCompare {
		t.Fatalf("kind %q, err %v", kind, err)
	}
	page := out.String()
	if strings.Count(page, "<svg") != 4 || !strings.Contains(page, "base") || !strings.Contains(page, `<ul class="key">`) {
		t.Errorf("%d SVGs (want 4 overlaid CDFs), a key of the runs: %v", strings.Count(page, "<svg"), strings.Contains(page, `<ul class="key">`))
	}
	_, err = Write(&out, []string{a, t.TempDir()}, Options{})
	var ie *InputError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), "not a run directory") {
		t.Errorf("comparing with a directory that is no run: %v, want an InputError", err)
	}
}

// sweepDir writes a directory of runs whose report.json carry the
// figures given: e2e p99 (s) and J per output token.
func sweepDir(t *testing.T, pts [][2]float64) string {
	t.Helper()
	dir := t.TempDir()
	for i, p := range pts {
		id := fmt.Sprintf("point-%d", i)
		d := filepath.Join(dir, id)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeLines(t, filepath.Join(d, recordsFile), rec(id, 1, 2, "ok"))
		rep := &report.Report{Schema: report.ReportSchema, RunID: id, Started: ptr(time.Unix(1, 0)),
			Rates:  report.Rates{Target: ptr(float64(i + 1)), Send: ptr(float64(i + 1))},
			Tokens: report.Tokens{OutputPerSecond: ptr(100 * float64(i+1))},
			Latency: map[string]*report.Distribution{"e2e": {Count: 10, Mean: p[0] / 2,
				Percentiles: map[string]float64{"p50": p[0] / 2, "p99": p[0]}}},
			Energy: &report.ReportEnergy{JoulesPerOutputToken: ptr(p[1])}}
		if err := report.WriteReport(filepath.Join(d, report.ReportFileName), rep); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSweepMarksTheFrontier(t *testing.T) {
	// point-2 is beaten by point-1 on both; point-3 ties point-1's
	// latency at a higher J/token.
	dir := sweepDir(t, [][2]float64{{1, 3}, {2, 2}, {3, 2.5}, {2, 2.2}, {4, 1}})
	var b bytes.Buffer
	kind, err := Write(&b, []string{dir}, Options{})
	if err != nil || kind != KindSweep {
		t.Fatalf("kind %q, err %v", kind, err)
	}
	page := b.String()
	for i, want := range []bool{true, true, false, false, true} {
		row := regexp.MustCompile(fmt.Sprintf(`<td>point-%d</td>(<td>[^<]*</td>)*`, i)).FindString(page)
		if got := strings.HasSuffix(row, "<td>★</td>"); got != want {
			t.Errorf("point-%d on the frontier: %v, want %v (%s)", i, got, want, row)
		}
	}
	if strings.Count(page, "<svg") != 2 || !strings.Contains(page, "e2e_p99") {
		t.Errorf("%d SVGs, want 2 against e2e_p99", strings.Count(page, "<svg"))
	}

	// sweep.json chooses the points, their order and the latency.
	writeLines(t, filepath.Join(dir, sweepFile), map[string]any{"schema": sweepSchema, "sweep_id": "sw1",
		"frontier_latency": "e2e_p50", "stop_reason": "saturated",
		"points": []map[string]any{{"run_id": "point-4", "dir": "point-4"}, {"run_id": "point-0", "dir": "point-0"}}})
	b.Reset()
	if _, err := Write(&b, []string{dir}, Options{}); err != nil {
		t.Fatal(err)
	}
	page = b.String()
	if !strings.Contains(page, "Sweep sw1") || !strings.Contains(page, "e2e_p50") || strings.Contains(page, "point-2") ||
		strings.Index(page, "<td>point-4</td>") > strings.Index(page, "<td>point-0</td>") || !strings.Contains(page, "stopped: saturated") {
		t.Errorf("the page does not follow sweep.json:\n%s", page[:min(len(page), 3000)])
	}
	b.Reset()
	if _, err := Write(&b, []string{dir}, Options{Latency: "e2e_p42"}); !errors.As(err, new(*InputError)) {
		t.Errorf("latency e2e_p42: %v, want an InputError", err)
	}
	if _, err := Write(&b, []string{t.TempDir()}, Options{}); !errors.As(err, new(*InputError)) {
		t.Errorf("an empty directory: %v, want an InputError", err)
	}
}
