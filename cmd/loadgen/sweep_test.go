package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/report"
	"github.com/tokenwatt/tokenwatt/sweep"
)

// TestSweepFrontier sweeps concurrency on the simulator's batch model,
// where each running sequence stretches every sequence's token gap by a
// quarter and adds 50 W to an idle 100 W: with 16 tokens after a 40 ms
// TTFT, E2E is 85 + 15·c ms and J/token (100/c + 50)·E2E/16, so
//
//	c=1: 100 ms, 0.94 J/token   (fastest)
//	c=4: 145 ms, 0.68 J/token   (cheapest)
//	c=16: 325 ms, 1.14 J/token  (beaten by c=4 on both)
//
// The frontier is c=1 and c=4; the differences are large, so a busy
// machine's timing cannot reorder them, and the frontier weighs the
// median E2E, which one stalled request of c=1's few cannot move. The
// first point measures the idle baseline, the others reuse it.
func TestSweepFrontier(t *testing.T) {
	out := t.TempDir()
	res := runCLI(t, "sweep", "--concurrencies", "1:16:x4", "--sweep-id", "sw", "--sim", "--sim-ttft", "40ms", "--sim-itl", "4ms",
		"--sim-slowdown", "0.25", "--dataset", "synthetic", "--max-tokens", "16", "--min-tokens", "16", "--duration", "1s",
		"--idle-baseline", "300ms", "--energy-interval", "50ms", "--frontier-latency", "e2e_p50", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	s, err := sweep.Read(filepath.Join(out, "sw", sweep.FileName))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"sw-c1", "sw-c4", "sw-c16"}
	if len(s.Points) != 3 || s.StopReason != sweep.StopCompleted || s.Load != sweep.LoadConcurrency || !s.Simulated || s.FrontierLatency != "e2e_p50" {
		t.Fatalf("sweep.json: %d points, stop %q %q, load %q, simulated %v, frontier latency %q", len(s.Points), s.StopReason, s.StopDetail, s.Load, s.Simulated, s.FrontierLatency)
	}
	for i, p := range s.Points {
		if p.RunID != ids[i] || p.Concurrency != []int{1, 4, 16}[i] || p.Rate != nil || p.LatencyS == nil || p.JoulesPerOutputToken == nil || p.Saturation != "" {
			t.Fatalf("point %d: %+v", i, p)
		}
		t.Logf("%s: e2e p50 %.1f ms, %.3f J/token, %s", p.RunID, *p.LatencyS*1000, *p.JoulesPerOutputToken, p.Rates.Warning)
	}
	if want := ids[:2]; !slices.Equal(s.Frontier, want) || !s.Points[0].Frontier || !s.Points[1].Frontier || s.Points[2].Frontier {
		t.Errorf("frontier %v, want %v", s.Frontier, want)
	}
	for _, want := range []string{"frontier: sw-c1, sw-c4", "stopped: completed", "idle baseline"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, res.stdout)
		}
	}

	// One idle baseline, at the first point; every point's energy
	// figures use it.
	if n := strings.Count(res.stderr, "measuring idle GPU power"); n != 1 {
		t.Errorf("idle baseline measured %d times, want once:\n%s", n, res.stderr)
	}
	if s.Idle == nil || s.Idle.RunID != "sw-c1" || s.Idle.PowerW < 90 || s.Idle.PowerW > 110 {
		t.Fatalf("sweep idle %+v, want ~100 W from sw-c1", s.Idle)
	}
	for i, id := range ids {
		rep, err := report.ReadReport(filepath.Join(out, "sw", id, report.ReportFileName))
		if err != nil {
			t.Fatal(err)
		}
		from := map[bool]string{true: "", false: "sw-c1"}[i == 0]
		if rep.Settings.IdleBaselineFrom != from || rep.Energy == nil || rep.Energy.IdlePowerW == nil || *rep.Energy.IdlePowerW != s.Idle.PowerW {
			var idle *float64
			if rep.Energy != nil {
				idle = rep.Energy.IdlePowerW
			}
			t.Errorf("%s: idle_baseline_from %q, idle %v W; want %q and %v W", id, rep.Settings.IdleBaselineFrom, deref(idle), from, s.Idle.PowerW)
		}
	}
	// Every point's row is in the summary file, beside the sweep's
	// directory.
	var got []string
	for _, row := range readSummary(t, filepath.Join(out, "summary.csv")) {
		got = append(got, row.RunID)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("summary.csv rows %v, want %v", got, ids)
	}
}

// TestSweepStopsAtSaturation: a simulator that decodes one sequence at a
// time (24 ms a request) serves 20 req/s, cannot serve 200: the sweep
// stops there, says why, and never runs 400.
func TestSweepStopsAtSaturation(t *testing.T) {
	out := t.TempDir()
	res := runCLI(t, "sweep", "--rates", "20,200,400", "--sweep-id", "sat", "--sim", "--sim-ttft", "10ms", "--sim-itl", "2ms",
		"--sim-max-num-seqs", "1", "--dataset", "synthetic", "--max-tokens", "8", "--min-tokens", "8", "--duration", "500ms",
		"--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	s, err := sweep.Read(filepath.Join(out, "sat", sweep.FileName))
	if err != nil {
		t.Fatal(err)
	}
	const why = "target 200 req/s not reached"
	if len(s.Points) != 2 || s.StopReason != sweep.StopSaturated || !strings.Contains(s.StopDetail, "point 2 (sat-r200): "+why) ||
		!strings.Contains(s.StopDetail, "the server is slower than the rate") {
		t.Fatalf("sweep.json: %d points, stopped %q: %q", len(s.Points), s.StopReason, s.StopDetail)
	}
	if p := s.Points[0]; p.Saturation != "" || p.Rate == nil || *p.Rate != 20 {
		t.Errorf("point 1: rate %v, saturation %q", p.Rate, p.Saturation)
	}
	if p := s.Points[1]; !strings.Contains(p.Saturation, why) || p.Rates.Warning != p.Saturation {
		t.Errorf("point 2: saturation %q, rate warning %q", p.Saturation, p.Rates.Warning)
	}
	if _, err := os.Stat(filepath.Join(out, "sat", "sat-r400")); !os.IsNotExist(err) {
		t.Errorf("the point after the saturated one ran: %v", err)
	}
	if !strings.Contains(res.stdout, "stopped: saturated: point 2 (sat-r200): "+why) || !strings.Contains(res.stderr, "point 2 (sat-r200) saturated the server") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
}

// TestSweepUsage: flags a sweep cannot take are refused before anything
// runs.
func TestSweepUsage(t *testing.T) {
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "taken", sweep.FileName), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"sweep", "--sim", "--duration", "1s", "--energy", "none", "--out", out}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give --rates or --concurrencies"},
		{[]string{"--rates", "1", "--concurrencies", "2"}, "give --rates or --concurrencies"},
		{[]string{"--rates", "1", "--rate", "2"}, "--rate: a sweep's rates are --rates"},
		{[]string{"--rates", "1", "--stages", "1s@2"}, "--stages, --ramp"},
		{[]string{"--rates", "1", "--run-id", "x"}, "--run-id"},
		{[]string{"--concurrencies", "1,2", "-c", "4"}, "-c: --concurrencies sets each point's"},
		{[]string{"--rates", "1:64"}, "--rates \"1:64\": a range is"},
		{[]string{"--rates", "1,2,1"}, "rate 1 req/s twice"},
		{[]string{"--rates", "1", "--frontier-latency", "e2e_p98"}, "--frontier-latency"},
		{[]string{"--rates", "1", "--sweep-id", "a/b"}, "--sweep-id"},
		{[]string{"--rates", "1", "--sweep-id", "taken"}, `sweep id "taken" already has results`},
		{[]string{"--rates", "1", "--scenario", "soak", "--duration", "0s"}, "each point of a sweep needs an end"},
	} {
		res := runCLI(t, append(slices.Clone(base), tc.args...)...)
		if res.code != exitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, res.code, res.stderr, exitUsage, tc.want)
		}
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("a refused sweep wrote into %s: %v", out, entries)
	}
}
