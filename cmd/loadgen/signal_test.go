package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildLoadgen compiles the command once per test binary run.
func buildLoadgen(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loadgen")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitInterrupted waits (up to 30 s) for a signalled loadgen to exit with
// exitInterrupted, failing the test with its stderr otherwise.
func waitInterrupted(t *testing.T, cmd *exec.Cmd, stderr fmt.Stringer) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("loadgen still running 30s after the signal; stderr:\n%s", stderr.String())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit: %v, want code %d; stderr:\n%s", err, exitInterrupted, stderr.String())
	}
}

// countLines returns the number of complete lines in path (0 if absent).
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte("\n"))
}

func TestSIGINTWritesEverythingAndExits130(t *testing.T) {
	bin := buildLoadgen(t)
	out := t.TempDir()
	// Four streams of 200 tokens at 10 ms: each request takes about two
	// seconds, and records reach the file within a second of completing
	// (the flush period), so SIGINT lands with more than a second left on
	// the requests in flight: longer than the grace period.
	cmd := exec.Command(bin, "--sim", "--sim-ttft", "5ms", "--sim-itl", "10ms", "--dataset", "synthetic",
		"--scenario", "throughput", "--concurrency", "4", "--duration", "0s", "--num-samples", "1000",
		"--max-tokens", "200", "--ignore-eos", "--grace", "300ms", "--run-id", "sig", "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	records := filepath.Join(out, "sig", "records.jsonl")
	deadline := time.Now().Add(30 * time.Second)
	for countLines(records) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("no records after 30s; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitInterrupted(t, cmd, &stderr)

	recs := readRecords(t, records)
	canceled := 0
	seen := map[int64]bool{}
	for _, r := range recs {
		if seen[r.Seq] {
			t.Fatalf("request %d recorded twice", r.Seq)
		}
		seen[r.Seq] = true
		switch r.Outcome {
		case "ok":
		case "canceled":
			canceled++
		default:
			t.Errorf("request %d ended %s: %v", r.Seq, r.Outcome, deref(r.Error))
		}
	}
	if canceled == 0 {
		t.Errorf("no request was in flight past the grace period (want some canceled); %d records", len(recs))
	}
	rows := readSummary(t, filepath.Join(out, "summary.csv"))
	if len(rows) != 1 || rows[0].TotalPrompts != len(recs) || rows[0].SuccessfulPrompts != len(recs)-canceled {
		t.Fatalf("summary %+v disagrees with %d records (%d canceled)", rows, len(recs), canceled)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say the run was interrupted:\n%s", stderr.String())
	}
}

// inFlight reads tokenwatt_requests_in_flight from a run's /metrics (-1:
// not yet served).
func inFlight(metricsURL string) int {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^tokenwatt_requests_in_flight(?:\{[^}]*\})? (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(v)
}

// waitFor polls cond every 50ms for up to 30s, failing the test with the
// loadgen's stderr if it never holds.
func waitFor(t *testing.T, what string, stderr *syncBuffer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30s; stderr:\n%s", what, stderr.String())
		}
	}
}

// The first Ctrl-C says what it waits for; the second cancels the
// requests in flight at once instead of waiting out --grace, and the
// records and the summary are still complete. Each request here would
// stream for 100s and --grace is 60s: the run ends well before either.
func TestSecondSIGINTAbortsAtOnce(t *testing.T) {
	bin := buildLoadgen(t)
	out := t.TempDir()
	cmd := exec.Command(bin, "--sim", "--sim-ttft", "5ms", "--sim-itl", "50ms", "--dataset", "synthetic",
		"--scenario", "throughput", "--concurrency", "4", "--duration", "0s", "--num-samples", "100",
		"--max-tokens", "2000", "--ignore-eos", "--grace", "60s", "--energy", "none",
		"--metrics-addr", "127.0.0.1:0", "--out", out)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	serving := regexp.MustCompile(`serving metrics at (http://\S+/metrics)`)
	var metricsURL string
	waitFor(t, "metrics address", &stderr, func() bool {
		m := serving.FindStringSubmatch(stderr.String())
		if m != nil {
			metricsURL = m[1]
		}
		return m != nil
	})
	waitFor(t, "4 requests in flight", &stderr, func() bool { return inFlight(metricsURL) == 4 })

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	const stopping = "loadgen: stopping: waiting up to 1m0s for 4 in-flight requests (Ctrl-C again to abort)\n"
	waitFor(t, "stopping message", &stderr, func() bool { return strings.Contains(stderr.String(), stopping) })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitInterrupted(t, cmd, &stderr) // 30s: well before --grace

	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	if len(recs) != 4 {
		t.Fatalf("%d records, want the 4 in flight; stderr:\n%s", len(recs), stderr.String())
	}
	for _, r := range recs {
		if r.Outcome != "canceled" {
			t.Errorf("request %d ended %s, want canceled", r.Seq, r.Outcome)
		}
	}
	rows := readSummary(t, filepath.Join(out, "summary.csv"))
	if len(rows) != 1 || rows[0].TotalPrompts != 4 || rows[0].SuccessfulPrompts != 0 || rows[0].FailedPrompts != 4 {
		t.Fatalf("summary %+v, want 4 requests, all failed (canceled)", rows)
	}
	if !strings.Contains(stderr.String(), "loadgen: aborting: canceling 4 in-flight requests") {
		t.Errorf("stderr does not say it aborted:\n%s", stderr.String())
	}
}
