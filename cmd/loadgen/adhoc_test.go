package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAdHocFlagsWinOverTheDefaultScenario: flags given without -s are not
// undone by energy_star's settings the user never chose. --max-tokens
// below its min_tokens lowers min_tokens (it used to fail), --rate without
// -c runs with no in-flight cap (energy_star's concurrency 1 capped a
// 40 req/s run at 4 req/s), --duration alone ends the run (the 1,000
// samples no longer apply), and benchmark_name says what ran.
func TestAdHocFlagsWinOverTheDefaultScenario(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=20,n=50",
		"--max-tokens", "8", "--rate", "40", "--duration", "1500ms", "--energy", "none", "--idle-baseline", "0", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{"min_tokens lowered from energy_star's 50 to --max-tokens 8", "--rate 40: no in-flight cap",
		"--duration 1.5s ends the run: energy_star's num_samples 1000 dropped"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.Concurrency == nil || *row.Concurrency != 0 {
		t.Errorf("concurrency %v, want 0 (no cap)", deref(row.Concurrency))
	}
	if row.Scenario != "energy_star" || !strings.HasPrefix(row.BenchmarkName, "energy_star+") ||
		!strings.Contains(row.BenchmarkName, "rate=40") || !strings.Contains(row.BenchmarkName, "concurrency=0") ||
		!strings.Contains(row.BenchmarkName, "max_tokens=8") || !strings.Contains(row.BenchmarkName, "duration=1.5s") {
		t.Errorf("benchmark_name %q scenario %q", row.BenchmarkName, row.Scenario)
	}
	// 1.5 s at 40 req/s is about 60 requests, not 1,000.
	if row.TotalPrompts < 20 || row.TotalPrompts > 100 {
		t.Errorf("%d requests in 1.5 s at 40 req/s", row.TotalPrompts)
	}
}

// TestMainCommandKeepsTheMethod: the scenario's settings stay when no flag
// contradicts them; only the changed count is named.
func TestMainCommandKeepsTheMethod(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--scenario", "energy_star", "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s",
		"--num-samples", "3", "--energy", "none", "--idle-baseline", "0", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.BenchmarkName != "energy_star+num_samples=3" || deref(row.Concurrency) != 1 {
		t.Errorf("benchmark_name %q, concurrency %v", row.BenchmarkName, deref(row.Concurrency))
	}
	if strings.Contains(res.stderr, "lowered") || strings.Contains(res.stderr, "dropped") {
		t.Errorf("notes without a contradiction:\n%s", res.stderr)
	}
}
