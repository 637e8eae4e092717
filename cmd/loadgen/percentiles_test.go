package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestPercentilesChooseTheTable: --percentiles picks the latency
// percentiles the table shows; a value outside (0, 100) is bad input.
func TestPercentilesChooseTheTable(t *testing.T) {
	offlineHF(t)
	res := runCLI(t, "--sim", "--sim-ttft", "2ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=20,n=20",
		"--num-samples", "20", "--max-tokens", "8", "--min-tokens", "2", "--energy", "none", "--idle-baseline", "0",
		"--percentiles", "50,95,99.9", "--out", t.TempDir())
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, want := range []string{`TTFT mean / p50 / p95 / p99\.9 +[0-9.]+ / [0-9.]+ / [0-9.]+ / [0-9.]+ ms`,
		`ITL p50 / p95 / p99\.9 +[0-9.]+ / [0-9.]+ / [0-9.]+ ms`, `E2E p50 / p95 / p99\.9 +[0-9.]+ / [0-9.]+ / [0-9.]+ ms`} {
		if !regexp.MustCompile(want).MatchString(res.stdout) {
			t.Errorf("table lacks %s:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "p90") {
		t.Errorf("p90 shown though not asked for:\n%s", res.stdout)
	}
	bad := runCLI(t, "--sim", "--percentiles", "50,100", "--out", t.TempDir())
	if bad.code != 2 || !strings.Contains(bad.stderr, "--percentiles 100") {
		t.Errorf("--percentiles 50,100: exit %d, stderr %s", bad.code, bad.stderr)
	}
}
