package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/internal/promtest"
)

// TestFaultsReconcile is a short soak through every fault at once, ended
// by SIGTERM: the simulator answers 500 and 429, drops streams, stalls
// past the timeout and sends garbage SSE; mid-run it goes away (requests
// fail to connect, the energy source's scrapes fail) and comes back on
// the same address (its energy counter restarts from zero, a reset). The
// run keeps going; after SIGTERM every request is accounted for exactly
// once, and records.jsonl, the metrics (pushed to a real VictoriaMetrics
// at exit) and summary.csv agree, in total and by outcome.
//
// TOKENWATT_FAULT_SOAK=30m makes it a soak: the server restarts every two
// minutes for that long (run it with -timeout 40m).
func TestFaultsReconcile(t *testing.T) {
	// Build before offlineHF moves HOME and the caches: go build would
	// otherwise start from an empty module and build cache.
	bin := buildLoadgen(t)
	offlineHF(t)
	vm := promtest.StartVictoriaMetrics(t)
	addr := closedAddr(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 3*time.Millisecond, time.Millisecond
	// 5 % each: over the 200-odd requests the short run sends, the chance
	// that one fault never happens is below 1e-4.
	cfg.Fail500, cfg.Fail429, cfg.Disconnect, cfg.Stall, cfg.Garbage = 0.05, 0.05, 0.05, 0.05, 0.05
	srv, err := sim.Start(context.Background(), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Close() }()

	out := t.TempDir()
	const runID = "faults"
	cmd := exec.Command(bin, "--scenario", "soak", "--endpoint", "http://"+addr,
		"--energy", "scrape:http://"+addr+"/metrics", "--energy-interval", "100ms", "--idle-baseline", "0s",
		"--dataset", "synthetic:mean=20,n=50", "--rate", "40", "--duration", "0s", "--num-samples", "0",
		"--max-tokens", "16", "--min-tokens", "0", "--timeout", "400ms", "--max-consecutive-failures", "0",
		"--metrics-addr=", "--push-url", vm.ImportURL(), "--push-interval", "1s",
		"--run-id", runID, "--out", out, "--grace", "2s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	records := filepath.Join(out, runID, "records.jsonl")
	waitLines := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); countLines(records) < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("fewer than %d records after 30s; stderr:\n%s", n, stderr.String())
			}
		}
	}
	waitLines(80)
	// The server goes away for 1.5 s, then restarts on the same address;
	// with TOKENWATT_FAULT_SOAK=30m, every two minutes for that long.
	soak, _ := time.ParseDuration(os.Getenv("TOKENWATT_FAULT_SOAK"))
	for end := time.Now().Add(soak); ; {
		srv.Close()
		time.Sleep(1500 * time.Millisecond)
		if srv, err = sim.Start(context.Background(), addr, cfg); err != nil {
			t.Fatalf("restart the simulator: %v", err)
		}
		if time.Now().Add(2 * time.Minute).After(end) {
			break
		}
		time.Sleep(2 * time.Minute)
	}
	waitLines(countLines(records) + 120)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitInterrupted(t, cmd, &stderr)

	// Records: each request once, by outcome.
	recs := readRecords(t, records)
	byOutcome := map[string]int{}
	seen := map[int64]bool{}
	tokens, failedTokens := 0, 0
	for _, r := range recs {
		if seen[r.Seq] {
			t.Fatalf("request %d recorded twice", r.Seq)
		}
		seen[r.Seq] = true
		byOutcome[r.Outcome]++
		if r.OutputTokens != nil {
			if r.OK() {
				tokens += *r.OutputTokens
			} else {
				failedTokens += *r.OutputTokens
			}
		}
	}
	for i := range int64(len(recs)) {
		if !seen[i] {
			t.Errorf("request %d of %d has no record", i, len(recs))
		}
	}
	t.Logf("%d records by outcome: %v", len(recs), byOutcome)
	for _, o := range []string{"ok", "http_5xx", "http_4xx", "stream_error", "timeout", "connect_error"} {
		if byOutcome[o] == 0 {
			t.Errorf("no %s request: the faults did not all happen (%v)", o, byOutcome)
		}
	}

	// Summary.
	rows := readSummary(t, filepath.Join(out, "summary.csv"))
	if len(rows) != 1 || rows[0].TotalPrompts != len(recs) || rows[0].SuccessfulPrompts != byOutcome["ok"] ||
		rows[0].FailedPrompts != len(recs)-byOutcome["ok"] {
		t.Fatalf("summary disagrees with %d records (%v): %+v", len(recs), byOutcome, rows)
	}
	if rows[0].GPUEnergyWh == nil || *rows[0].GPUEnergyWh <= 0 {
		t.Errorf("energy lost across the energy source's outage and reset: %v Wh", deref(rows[0].GPUEnergyWh))
	}

	// Metrics, as pushed at exit.
	vm.Flush(t)
	sel := fmt.Sprintf(`run_id=%q`, runID)
	promtest.WaitFor(t, vm.URL(), `sum(tokenwatt_requests_total{`+sel+`})`, 15*time.Second, promtest.Equal(float64(len(recs))))
	for o, n := range byOutcome {
		promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`sum(tokenwatt_requests_total{%s,outcome=%q})`, sel, o), 5*time.Second, promtest.Equal(float64(n)))
	}
	// Successful requests' tokens, and failed ones' apart.
	promtest.WaitFor(t, vm.URL(), `sum(tokenwatt_output_tokens_total{`+sel+`})`, 5*time.Second, promtest.Equal(float64(tokens)))
	promtest.WaitFor(t, vm.URL(), `sum(tokenwatt_failed_output_tokens_total{`+sel+`})`, 5*time.Second, promtest.Equal(float64(failedTokens)))
	if got := max(deref64(rows[0].FailedOutputTokens), 0); rows[0].Failures == "" || got != int64(failedTokens) {
		t.Errorf("summary failures %q, failed output tokens %v; want the records' %v, %d", rows[0].Failures, deref64(rows[0].FailedOutputTokens), byOutcome, failedTokens)
	}
}
