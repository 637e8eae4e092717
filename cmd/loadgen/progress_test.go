package main

import (
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/loadgen"
)

func TestProgressLine(t *testing.T) {
	// The runner never sends here: only its progress counters are read.
	b, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: "http://127.0.0.1:9", API: backends.APIChat})
	if err != nil {
		t.Fatal(err)
	}
	sc := &loadgen.Scenario{NumSamples: 100}
	rr, err := loadgen.NewRunner(loadgen.RunConfig{Scenario: sc, Backend: b, Prompts: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	rr.Progress.Done.Store(40)
	rr.Progress.Failed.Store(2)
	rr.Progress.InFlight.Store(3)
	s := &lockedSummary{s: loadgen.NewSummary()}
	ttft := 0.0123
	s.Observe(&loadgen.Record{Outcome: "ok", TTFT: &ttft})
	line := progressLine(rr, s, sc, true, 10*time.Second, nil)
	for _, want := range []string{"[SIMULATED]", "40/100 (40%)", "4.0 req/s", "ok 38", "failed 2", "in flight 3", "ttft p50 12.3ms", "eta 15s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	// A duration-bound run counts down the time left.
	sc2 := &loadgen.Scenario{Duration: time.Minute}
	if line := progressLine(rr, s, sc2, false, 20*time.Second, nil); !strings.Contains(line, "20s/1m0s") || !strings.Contains(line, "eta 40s") || strings.Contains(line, "SIMULATED") {
		t.Errorf("duration progress line %q", line)
	}
}

func TestProgressLineSaysClientSaturated(t *testing.T) {
	rr := &loadgen.Runner{}
	s := &lockedSummary{s: loadgen.NewSummary()}
	sc := &loadgen.Scenario{NumSamples: 100}
	sat := &loadgen.Saturation{Saturated: true, Reason: "40 of 1000 sends more than 5ms behind schedule"}
	if line := progressLine(rr, s, sc, false, time.Second, sat); !strings.HasSuffix(line, "  CLIENT SATURATED (40 of 1000 sends more than 5ms behind schedule)") {
		t.Errorf("line %q", line)
	}
	if line := progressLine(rr, s, sc, false, time.Second, &loadgen.Saturation{}); strings.Contains(line, "SATURATED") {
		t.Errorf("unsaturated window reported: %q", line)
	}
}

// TestSaturationIsReported: sends the pacer released late (fed to the
// runner's counters, as the pacer counts them) make the closing window
// saturated; stop says so, with the reason, for the summary's
// client_saturated column and the final warning, and the metric is set.
// Whether a real overload on this machine gets there is
// TestTimingClientSaturationIsReported's.
func TestSaturationIsReported(t *testing.T) {
	rr := &loadgen.Runner{}
	var stderr strings.Builder
	e := &env{ctx: t.Context(), stdout: io.Discard, stderr: &stderr, interrupted: func() bool { return false }}
	var mu sync.Mutex
	metricSaturated := false
	p := startProgress(e, rr, &lockedSummary{s: loadgen.NewSummary()}, &loadgen.Scenario{NumSamples: 100}, false,
		func(saturated bool, _ float64) {
			mu.Lock()
			defer mu.Unlock()
			metricSaturated = metricSaturated || saturated
		})
	rr.Progress.Paced.Store(1000)
	rr.Progress.Late.Store(40)
	saturated, summary := p.stop()
	if !saturated || !strings.Contains(summary, "40 of 1000 sends more than 5ms behind schedule") ||
		!strings.Contains(summary, "latencies may describe the load generator") {
		t.Errorf("stop() = %v, %q; want saturated, with the late sends as the reason", saturated, summary)
	}
	mu.Lock()
	defer mu.Unlock()
	if !metricSaturated {
		t.Error("the client-saturation metric was never set")
	}
}

// TestRunReportsClientSaturation: every run's summary has the
// client_saturated column filled in.
func TestRunReportsClientSaturation(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "2", "--min-tokens", "0", "--rate", "100", "--num-samples", "10", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.ClientSaturated == nil {
		t.Errorf("client_saturated empty\nstderr: %s", res.stderr)
	}
}

// TestTimingClientSaturationIsReported (TOKENWATT_TIMING=1): an open-loop
// rate far beyond what two cores can send (and the in-process simulator
// answer), for two seconds, saturates the client (its CPU, here: with a
// cap of 32 in flight the late sends wait for slots and count as the
// server's); the summary's client_saturated column and a warning say so.
// A gentle run says it was not. It needs the machine to itself: a busy
// neighbour keeps this process below the CPU threshold, and can make the
// gentle run's sends late. `go run ./bench -sections pacing` reports the
// same column at 100 to 50,000 req/s.
func TestTimingClientSaturationIsReported(t *testing.T) {
	timingOptIn(t)
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "0s", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=50",
		"--max-tokens", "1", "--min-tokens", "0", "--rate", "50000", "--duration", "2s", "--num-samples", "0", "--concurrency", "32",
		"--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.ClientSaturated == nil || !*row.ClientSaturated {
		t.Errorf("client_saturated %v at 50,000 req/s on this machine\nstderr: %s", deref(row.ClientSaturated), res.stderr)
	}
	if !strings.Contains(res.stderr, "loadgen: warning: the client was saturated in ") {
		t.Errorf("no saturation warning:\n%s", res.stderr)
	}

	out = t.TempDir()
	res = runCLI(t, "--sim", "--sim-ttft", "5ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "4", "--min-tokens", "0", "--rate", "10", "--num-samples", "20", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.ClientSaturated == nil || *row.ClientSaturated {
		t.Errorf("client_saturated %v at 10 req/s\nstderr: %s", deref(row.ClientSaturated), res.stderr)
	}
}
