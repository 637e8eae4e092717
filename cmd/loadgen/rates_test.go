package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAchievedRateBesideTheTarget: an open-loop run capped at one request
// in flight against a server that answers in about 60 ms cannot send 100
// req/s; the table, the summary and the log give the achieved send and
// completion rates and a warning naming the in-flight cap (the table used
// to say only "request rate 100").
func TestAchievedRateBesideTheTarget(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "50ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=20,n=20",
		"--rate", "100", "-c", "1", "--num-samples", "15", "--max-tokens", "8", "--min-tokens", "8",
		"--energy", "none", "--idle-baseline", "0", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.SendRate == nil || *row.SendRate >= 95 || row.CompletionRate == nil || *row.CompletionRate >= 95 {
		t.Errorf("send %v, completion %v req/s: want both measured and under the target", deref(row.SendRate), deref(row.CompletionRate))
	}
	if !strings.Contains(row.RateWarning, "target 100 req/s not reached") || !strings.Contains(row.RateWarning, "in-flight cap of 1 was full") ||
		!strings.Contains(row.RateWarning, "raise --concurrency") {
		t.Errorf("rate_warning %q", row.RateWarning)
	}
	for _, want := range []string{"rate target / sent / completed (req/s)", "WARNING", "in-flight cap of 1"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "target 100 req/s not reached") {
		t.Errorf("no warning in the log:\n%s", res.stderr)
	}
}
