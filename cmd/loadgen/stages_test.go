package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestStagesFromTheCommandLine: --stages on the default scenario (whose
// num_samples and closed-loop concurrency it drops, saying so) runs its
// stages in order: the records carry them, the row has no one rate and
// names them in benchmark_name, report.json counts each.
func TestStagesFromTheCommandLine(t *testing.T) {
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "2ms", "--sim-itl", "1ms", "--dataset", "synthetic",
		"--max-tokens", "4", "--min-tokens", "0", "--stages", "250ms@32,250ms@c2", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, note := range []string{"--stages ends the run: energy_star's num_samples 1000 dropped",
		"--stages: no in-flight cap on open-loop stages (energy_star's concurrency 1 is for its closed loop; give -c to cap)",
		"2 stages over 500ms (250ms@32,250ms@c2)", "stopped: stages"} {
		if !strings.Contains(res.stderr, note) {
			t.Errorf("stderr lacks %q:\n%s", note, res.stderr)
		}
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	n := [2]int{}
	for _, r := range recs {
		if r.Stage == nil || *r.Stage < 0 || *r.Stage > 1 {
			t.Fatalf("record %d has stage %v", r.Seq, deref(r.Stage))
		}
		n[*r.Stage]++
	}
	if n[0] != 8 || n[1] == 0 {
		t.Errorf("stages sent %v requests, want 8 then some", n)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.RequestRate != nil || row.Concurrency != nil || row.BenchmarkName != "energy_star+dataset=synthetic,num_samples=0,concurrency=0,stages=250ms@32,250ms@c2,max_tokens=4,min_tokens=0" {
		t.Errorf("row: rate %v, concurrency %v, benchmark %q", deref(row.RequestRate), deref(row.Concurrency), row.BenchmarkName)
	}
	b, err := os.ReadFile(runFile(t, out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Stages) != 2 || rep.Stages[0].Requests != 8 || rep.Stages[1].Requests != n[1] || rep.Settings.Stages != "250ms@32,250ms@c2" || rep.StopReason != loadgen.StopStages {
		t.Errorf("report.json stages %+v, settings.stages %q, stop %q", rep.Stages, rep.Settings.Stages, rep.StopReason)
	}
}

// TestRampFromTheCommandLine: --ramp replaces the soak scenario's rate and
// keeps its in-flight cap.
func TestRampFromTheCommandLine(t *testing.T) {
	out := t.TempDir()
	res := runCLI(t, "--scenario", "soak", "--sim", "--sim-ttft", "1ms", "--sim-itl", "1ms",
		"--max-tokens", "2", "--ramp", "10:70:500ms", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "--ramp replaces soak's rate 5") || !strings.Contains(res.stderr, "ramp from 10 to 70 req/s over 500ms (cap 256 in flight)") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	// Λ(0.5 s) = (10 + 70) / 2 · 0.5 = 20 constant arrivals.
	if recs := readRecords(t, runFile(t, out, "records.jsonl")); len(recs) != 20 {
		t.Errorf("%d records, want 20", len(recs))
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.BenchmarkName != "soak+ramp=10:70:500ms,max_tokens=2" {
		t.Errorf("benchmark %q", row.BenchmarkName)
	}
}

func TestStagesBadInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "stages.yaml")
	if err := os.WriteFile(file, []byte("name: s\nstages:\n  - {duration: 1m, rate: 5}\n  - {duration: 1m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--stages", "60s@fast"}, `--stages: stage 1 "60s@fast": rate "fast" is not a number`},
		{[]string{"--stages", "60s@5", "--ramp", "1:2:1m"}, "--stages and --ramp: give one"},
		{[]string{"--stages", "60s@5", "--rate", "3"}, "--rate and --stages: give one"},
		{[]string{"--ramp", "1:2"}, `--ramp: "1:2": want FROM:TO:DURATION`},
		{[]string{"--stages", "60s@5,0s@c2"}, "stages[1].duration: must be more than 0, got 0s"},
		{[]string{"--stages", "60s@c0"}, "stages[0].concurrency: a closed-loop stage (no rate) needs 1 or more"},
		{[]string{"--ramp", "0:0:1m"}, "ramp.to: from 0 to 0: one end must be at least 1e-06"},
		{[]string{"--scenario", file}, "stages.yaml:4: stages[1].concurrency: a closed-loop stage (no rate) needs 1 or more requests in flight, got 0"},
	} {
		res := runCLI(t, append(tc.args, "--sim", "--out", t.TempDir())...)
		if res.code != exitUsage || !strings.Contains(lastLine(res.stderr), tc.want) {
			t.Errorf("%v: exit %d, error %q, want %d and %q", tc.args, res.code, lastLine(res.stderr), exitUsage, tc.want)
		}
	}
}

// TestReconcileLoad: --rate replaces a scenario's stages; --stages drops
// a scenario's duration, and a closed-loop scenario's concurrency as cap
// unless -c is given.
func TestReconcileLoad(t *testing.T) {
	rate, conc := 4.0, 16
	stages := "1m@5"
	staged := &scenario.Scenario{Name: "cycle", Concurrency: 32, Stages: []scenario.Stage{{Duration: time.Minute, Rate: 2}}}
	closed := &scenario.Scenario{Name: "tp", Concurrency: 64, Duration: time.Minute}
	for _, tc := range []struct {
		cmd        runCmd
		base       *scenario.Scenario
		wantNote   string
		wantConc   int
		wantStaged bool
		wantDur    time.Duration
	}{
		{runCmd{Rate: &rate}, staged, "--rate 4 replaces cycle's stages", 32, false, 0},
		{runCmd{Stages: &stages}, closed, "--stages: no in-flight cap on open-loop stages (tp's concurrency 64", 0, true, 0},
		{runCmd{Stages: &stages, Concurrency: &conc}, closed, "--stages ends the run: tp's duration 1m0s dropped", 16, true, 0},
	} {
		c := tc.cmd
		if err := c.parseLoad(); err != nil {
			t.Fatal(err)
		}
		base := *tc.base
		sc := base
		c.applyFlags(&sc)
		notes := strings.Join(c.reconcile(&base, &sc), "\n")
		if !strings.Contains(notes, tc.wantNote) || sc.Concurrency != tc.wantConc || sc.Staged() != tc.wantStaged || sc.Duration != tc.wantDur {
			t.Errorf("%s: notes %q, concurrency %d, staged %v, duration %v", base.Name, notes, sc.Concurrency, sc.Staged(), sc.Duration)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: %v", base.Name, err)
		}
	}
}
