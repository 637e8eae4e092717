package main

import (
	"strings"
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
	line := progressLine(rr, s, sc, true, 10*time.Second)
	for _, want := range []string{"[SIMULATED]", "40/100 (40%)", "4.0 req/s", "ok 38", "failed 2", "in flight 3", "ttft p50 12.3ms", "eta 15s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	// A duration-bound run counts down the time left.
	sc2 := &loadgen.Scenario{Duration: time.Minute}
	if line := progressLine(rr, s, sc2, false, 20*time.Second); !strings.Contains(line, "20s/1m0s") || !strings.Contains(line, "eta 40s") || strings.Contains(line, "SIMULATED") {
		t.Errorf("duration progress line %q", line)
	}
}
