//go:build unix

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Run with an open-files limit of 64 (soft and hard, so that loadgen
// cannot raise it) at a rate that keeps hundreds of requests in flight:
// the client's dials and the in-process simulator's accepts fail with
// EMFILE. The simulator counts its failed accepts instead of logging
// net/http's "http: Accept error" line for each, and a warning names the
// limit as what capped the run.
func TestOpenFilesLimitCappedRunIsNamed(t *testing.T) {
	bin := buildLoadgen(t)
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", `ulimit -n 64 && exec "$0" "$@"`, bin,
		"--sim", "--sim-ttft", "1s", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "2", "--min-tokens", "0", "--rate", "1000", "--num-samples", "300", "-c", "0",
		"--timeout", "20s", "--max-consecutive-failures", "0", "--energy", "none", "--metrics-addr", "", "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running after 60s; stderr:\n%s", stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != exitFailed) {
		t.Fatalf("exit: %v; stderr:\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "Accept error") {
		t.Errorf("accept errors printed line by line:\n%s", stderr.String())
	}
	const want = "loadgen: warning: the open-files limit (64), not the server, capped this run: "
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("no warning naming the limit (%q):\n%s", want, stderr.String())
	}
	if rows := readSummary(t, filepath.Join(out, "summary.csv")); len(rows) != 1 || rows[0].TotalPrompts != 300 {
		t.Errorf("summary %+v, want one row of 300 requests", rows)
	}
}
