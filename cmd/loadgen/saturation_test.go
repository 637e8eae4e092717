package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen"
)

// TestSaturationFlags: the --saturation-* defaults are the library's, 0
// turns a signal off, and a negative threshold is a usage error.
func TestSaturationFlags(t *testing.T) {
	grammar, _, err := parseLoadgen(t, []string{"run"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := grammar.Run.Saturation.thresholds()
	want := loadgen.SaturationThresholds{LateShare: loadgen.SaturatedLateShare, CPU: loadgen.SaturatedCPU,
		SchedLatency: loadgen.SaturatedSchedLatency, RunqueueWait: loadgen.SaturatedRunqueueWait, Lateness: loadgen.SaturatedLateness}
	if err != nil || got != want {
		t.Errorf("defaults %+v, %v; want %+v", got, err, want)
	}

	grammar, _, err = parseLoadgen(t, []string{"run", "--saturation-cpu", "0.8", "--saturation-late", "0",
		"--saturation-sched-latency", "5ms", "--saturation-runqueue-wait", "0", "--saturation-lateness", "12ms"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = grammar.Run.Saturation.thresholds()
	want = loadgen.SaturationThresholds{LateShare: -1, CPU: 0.8, SchedLatency: 5 * time.Millisecond, RunqueueWait: -1, Lateness: 12 * time.Millisecond}
	if err != nil || got != want {
		t.Errorf("set %+v, %v; want %+v", got, err, want)
	}

	grammar, _, err = parseLoadgen(t, []string{"run", "--saturation-sched-latency=-1ms"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grammar.Run.Saturation.thresholds(); err == nil {
		t.Error("a negative threshold was accepted")
	}
}

// TestSaturationFlagsReachTheRun: a CPU threshold no run stays under
// makes the run client-saturated, and the warning names the signal, its
// value and the threshold given.
func TestSaturationFlagsReachTheRun(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "2", "--min-tokens", "0", "--rate", "100", "--num-samples", "10", "--energy", "none", "--out", out,
		"--saturation-cpu", "0.000001")
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.ClientSaturated == nil || !*row.ClientSaturated {
		t.Errorf("client_saturated %v with --saturation-cpu 0.000001\nstderr: %s", deref(row.ClientSaturated), res.stderr)
	}
	if !strings.Contains(res.stderr, "(threshold 0.0001%)") {
		t.Errorf("the warning does not name the threshold given:\n%s", res.stderr)
	}
}
