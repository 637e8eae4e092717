package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/promtest"
)

// TestVictoriaMetricsReceivesPushedMetrics runs loadgen with --push-url at
// a real VictoriaMetrics' import endpoint and no /metrics server, and
// checks that what VictoriaMetrics stored adds up exactly to records.jsonl.
// The push is text exposition, so histograms arrive as classic series.
func TestVictoriaMetricsReceivesPushedMetrics(t *testing.T) {
	offlineHF(t)
	vm := promtest.StartVictoriaMetrics(t)
	out := t.TempDir()
	const runID = "vm-push-test"
	res := runCLI(t, simMetricsArgs(runID, out, "--metrics-addr=", "--push-url", vm.ImportURL(), "--push-interval", "1s")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	tot := totalsOf(t, runFile(t, out, "records.jsonl"))
	if tot.requests != 300 || len(tot.ttfts) == 0 {
		t.Fatalf("records.jsonl: %d records, %d with a TTFT; want 300, some", tot.requests, len(tot.ttfts))
	}

	// loadgen pushed its final values before it returned.
	vm.Flush(t)
	sel := fmt.Sprintf(`{run_id=%q}`, runID)
	for _, c := range []struct {
		promql string
		want   int
	}{
		{`sum(tokenwatt_requests_total` + sel + `)`, tot.requests},
		{`sum(tokenwatt_output_tokens_total` + sel + `)`, tot.outputTokens},
		{`sum(tokenwatt_request_ttft_seconds_count` + sel + `)`, len(tot.ttfts)},
		{`sum(tokenwatt_request_ttft_seconds_bucket{le="+Inf",run_id="` + runID + `"})`, len(tot.ttfts)},
		{`count(tokenwatt_run_end_timestamp_seconds` + sel + `)`, 1},
		{`tokenwatt_run_info{run_id="` + runID + `",simulated="true"}`, 1},
	} {
		promtest.WaitFor(t, vm.URL(), c.promql, 5*time.Second, promtest.Equal(float64(c.want)))
	}
}
