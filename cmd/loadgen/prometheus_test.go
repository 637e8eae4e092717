package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/promtest"
)

// recordTotals are what records.jsonl says the metrics must add up to.
type recordTotals struct {
	requests     int
	outputTokens int
	ttfts        []float64 // records with ttft_s null have none
}

func totalsOf(t *testing.T, path string) recordTotals {
	t.Helper()
	var tot recordTotals
	for _, r := range readRecords(t, path) {
		tot.requests++
		if r.OutputTokens != nil {
			tot.outputTokens += *r.OutputTokens
		}
		if r.TTFT != nil {
			tot.ttfts = append(tot.ttfts, *r.TTFT)
		}
	}
	return tot
}

// simMetricsArgs is a short --sim run (a second or two on 2 cores) whose
// answers have 0 to 16 tokens, so some requests have no TTFT.
func simMetricsArgs(runID, out string, extra ...string) []string {
	return append([]string{
		"--sim", "--sim-ttft", "1ms", "--sim-itl", "1ms",
		"--dataset", "synthetic", "--num-samples", "300", "--concurrency", "8",
		"--max-tokens", "16", "--min-tokens", "0",
		"--run-id", runID, "--out", out,
	}, extra...)
}

// TestPrometheusScrapesRunMetrics runs loadgen with --metrics-addr and
// --linger under a real Prometheus scraping it every second, and checks
// that what Prometheus stored adds up exactly to records.jsonl.
func TestPrometheusScrapesRunMetrics(t *testing.T) {
	offlineHF(t)
	addr := closedAddr(t)
	prom := promtest.StartPrometheus(t, []string{addr}, time.Second)
	// Prometheus' first scrape comes seconds after it is ready; start the
	// run only once it is scraping the (still closed) address, so the
	// linger below is long enough for several scrapes after the run.
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(1))

	out := t.TempDir()
	const runID = "prom-scrape-test"
	done := make(chan cliResult, 1)
	go func() { done <- runCLI(t, simMetricsArgs(runID, out, "--metrics-addr", addr, "--linger", "4s")...) }()

	// tokenwatt_run_end_timestamp_seconds appears once the run has ended,
	// records.jsonl is complete and every metric holds its final value.
	sel := fmt.Sprintf(`{run_id=%q}`, runID)
	promtest.WaitFor(t, prom.URL(), `count(tokenwatt_run_end_timestamp_seconds`+sel+`)`, 15*time.Second, promtest.Equal(1))
	// Queries below run at this moment: after the run, before loadgen
	// exits and Prometheus marks its series stale.
	at := time.Now()

	res := <-done
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if want := "loadgen: serving metrics at http://" + addr + "/metrics"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
	tot := totalsOf(t, runFile(t, out, "records.jsonl"))
	if tot.requests != 300 || len(tot.ttfts) == 0 {
		t.Fatalf("records.jsonl: %d records, %d with a TTFT; want 300, some", tot.requests, len(tot.ttfts))
	}

	for _, c := range []struct {
		promql string
		want   int
	}{
		{`sum(tokenwatt_requests_total` + sel + `)`, tot.requests},
		{`sum(tokenwatt_requests_total{outcome="ok",run_id="` + runID + `"})`, tot.requests},
		{`sum(tokenwatt_output_tokens_total` + sel + `)`, tot.outputTokens},
		{`histogram_count(sum(tokenwatt_request_ttft_seconds` + sel + `))`, len(tot.ttfts)},
		{`tokenwatt_run_info{run_id="` + runID + `",simulated="true"}`, 1},
	} {
		if got, found := promtest.QueryAt(t, prom.URL(), c.promql, at); !found || got != float64(c.want) {
			t.Errorf("%s = %v (found %v), want %d from records.jsonl", c.promql, got, found, c.want)
		}
	}
	// Prometheus 2.42 stores a histogram with native buckets as native
	// only (see promtest.Prometheus); if a later one keeps the classic
	// series too, they must agree.
	if got, found := promtest.QueryAt(t, prom.URL(), `sum(tokenwatt_request_ttft_seconds_count`+sel+`)`, at); found && got != float64(len(tot.ttfts)) {
		t.Errorf("classic TTFT _count = %v, want %d", got, len(tot.ttfts))
	}

	// The native histogram's p99 lies within a bucket (factor 1.1) of the
	// records' p99; the ranks of the two estimates may differ by a sample
	// or so, hence p98.5 to p99.5.
	q := `histogram_quantile(0.99, sum(tokenwatt_request_ttft_seconds` + sel + `))`
	p99, _ := promtest.QueryAt(t, prom.URL(), q, at)
	lo, hi := quantile(tot.ttfts, 0.985)/1.1, quantile(tot.ttfts, 0.995)*1.1
	t.Logf("TTFT p99: Prometheus %.6f s, records %.6f s (simulator 1 ms)", p99, quantile(tot.ttfts, 0.99))
	if p99 < lo || p99 > hi {
		t.Errorf("%s = %v, want it in [%v, %v] from records.jsonl", q, p99, lo, hi)
	}
	// No TTFT is below the simulator's 1 ms, whatever the machine's load;
	// how far above is a wall-clock figure, bounded only with
	// TOKENWATT_TIMING=1.
	if p99 < 0.001/1.1 {
		t.Errorf("%s = %v, below the simulator's 1 ms", q, p99)
	}
	if timingEnabled() && p99 > 0.02 {
		t.Errorf("%s = %v, want near the simulator's 1 ms (at most 20 ms)", q, p99)
	}
}

// TestMetricsAddrInUse: a --metrics-addr that cannot be bound fails the run
// with exit 2 before a single request is sent.
func TestMetricsAddrInUse(t *testing.T) {
	offlineHF(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := l.Addr().String()
	out := t.TempDir()
	res := runCLI(t, "--sim", "--dataset", "synthetic", "--num-samples", "5", "--metrics-addr", addr, "--out", out)
	if res.code != 2 {
		t.Fatalf("exit %d, want 2\nstderr: %s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, addr) {
		t.Errorf("error line %q does not name %s", last, addr)
	}
	if strings.Contains(res.stderr, "goroutine ") {
		t.Errorf("stack trace in stderr:\n%s", res.stderr)
	}
	// Nothing was written: no run directory, no records.
	if found, _ := filepath.Glob(filepath.Join(out, "*", "records.jsonl")); len(found) > 0 {
		t.Errorf("%v written; no request should have been sent", found)
	}
}
