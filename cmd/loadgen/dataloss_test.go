package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestPOCSummaryFileIsCheckedFirst: a POC config whose
// reporter.output_file holds the POC's own 13-column CSV fails before the
// first request (exit 2, naming the file and the way out), instead of
// after the whole run; --out then writes the run and its row elsewhere.
func TestPOCSummaryFileIsCheckedFirst(t *testing.T) {
	offlineHF(t)
	fixture, err := filepath.Abs("../../loadgen/scenario/testdata/poc/gpt_oss_120b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	pocCSV := "results/gpt_oss_120b_results.csv"
	old := strings.Join(report.Columns()[:13], ",") + "\ngpt_oss_120b_benchmark,vllm,openai/gpt-oss-120b,10,10,0,12.5,1.25,3000,1000,2000,240,2025-06-01T12:30:45.123456+00:00\n"
	if err := os.MkdirAll("results", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pocCSV, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", fixture, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic", "--metrics-addr", "", "--energy", "none"}
	res := runCLI(t, args...)
	last := lastLine(res.stderr)
	if res.code != exitUsage || res.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want exit %d and nothing on stdout\n%s", res.code, res.stdout, exitUsage, res.stderr)
	}
	for _, want := range []string{pocCSV, "Python POC's 13 columns", "--out"} {
		if !strings.Contains(last, want) {
			t.Errorf("error line %q does not mention %q", last, want)
		}
	}
	if strings.Contains(res.stderr, "scenario gpt_oss_120b_benchmark") {
		t.Errorf("the run started before the summary file was refused:\n%s", res.stderr)
	}
	if _, err := os.Stat("benchmark_output"); err == nil {
		t.Error("the refused run created its output directory")
	}

	res = runCLI(t, append(args, "--out", "tokenwatt")...)
	if res.code != 0 {
		t.Fatalf("with --out: exit %d\n%s", res.code, res.stderr)
	}
	if rows := readSummary(t, "tokenwatt/summary.csv"); len(rows) != 1 || rows[0].TotalPrompts != 10 {
		t.Errorf("--out tokenwatt: summary %+v", rows)
	}
	if got, _ := os.ReadFile(pocCSV); string(got) != old {
		t.Errorf("the POC's CSV changed:\n%s", got)
	}
}

// TestSummaryOnAFullDiskIsNotLost: a summary that cannot be appended at
// the end (summary.csv links to /dev/full) still prints the table, writes
// the row to a fresh summary.csv in the run's directory, says where, and
// exits 3 (written only in part), not 2 (bad input).
func TestSummaryOnAFullDiskIsNotLost(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	if err := os.Symlink("/dev/full", filepath.Join(out, "summary.csv")); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic", "--num-samples", "3",
		"--max-tokens", "8", "--min-tokens", "0", "--metrics-addr", "", "--energy", "none", "--out", out)
	if res.code != exitWriteFailed {
		t.Fatalf("exit %d, want %d\n%s", res.code, exitWriteFailed, res.stderr)
	}
	if !strings.Contains(res.stdout, "energy_star") {
		t.Errorf("no table on stdout:\n%s", res.stdout)
	}
	fallback := runFile(t, out, report.FallbackSummaryName)
	if rows := readSummary(t, fallback); len(rows) != 1 || rows[0].TotalPrompts != 3 {
		t.Errorf("fallback summary %s: %+v", fallback, rows)
	}
	if !strings.Contains(res.stderr, "no space left on device") || !strings.Contains(lastLine(res.stderr), fallback) {
		t.Errorf("stderr does not say why and where the row went:\n%s", res.stderr)
	}

	// The run directory's disk full too: the row goes to stderr, as CSV.
	if err := os.MkdirAll(filepath.Join(out, "rid"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(out, "rid", report.FallbackSummaryName)); err != nil {
		t.Fatal(err)
	}
	res = runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic", "--num-samples", "3",
		"--max-tokens", "8", "--min-tokens", "0", "--metrics-addr", "", "--energy", "none", "--out", out, "--run-id", "rid")
	if res.code != exitWriteFailed || !strings.Contains(res.stdout, "energy_star") {
		t.Fatalf("exit %d, want %d after the table\n%s", res.code, exitWriteFailed, res.stderr)
	}
	header := strings.Join(report.Columns(), ",")
	_, row, _ := strings.Cut(res.stderr, header+"\n")
	if !strings.Contains(row, ",rid,") {
		t.Errorf("the row is not on stderr after the header:\n%s", res.stderr)
	}
}

// TestRecordsOnAFullDiskStopTheRun: records.jsonl linked to /dev/full
// (a full disk): the first write error is logged while the run goes on,
// stops the run (stop reason write_error, long before its 10 minutes),
// and the exit is 3 after the table.
func TestRecordsOnAFullDiskStopTheRun(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "rid"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(out, "rid", loadgen.RecordsFileName)); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "1ms", "--dataset", "synthetic", "--rate", "20", "--duration", "10m",
		"--max-tokens", "8", "--min-tokens", "0", "--metrics-addr", "", "--energy", "none", "--out", out, "--run-id", "rid")
	if res.code != exitWriteFailed {
		t.Fatalf("exit %d, want %d\n%s", res.code, exitWriteFailed, res.stderr)
	}
	warn := strings.Index(res.stderr, "no space left on device: stopping the run")
	if warn < 0 || warn > strings.Index(res.stderr, "(stopped: write_error)") || !strings.Contains(res.stdout, "energy_star") {
		t.Errorf("the write error was not reported as it happened, before the table and the summary:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
	if rows := readSummary(t, filepath.Join(out, "summary.csv")); len(rows) != 1 || rows[0].TotalPrompts == 0 {
		t.Errorf("summary: %+v", rows)
	}
}

// failingView is a run whose records can no longer be written.
type failingView struct {
	*fakeView
	err error
}

func (v failingView) RecordsErr() error { return v.err }

// The progress line says so once records cannot be written.
func TestProgressLineShowsARecordsWriteError(t *testing.T) {
	v := failingView{fakeView: &fakeView{sc: &scenario.Scenario{Duration: time.Minute}}}
	if line := progressLine(v, time.Second); strings.Contains(line, "RECORDS") {
		t.Errorf("progress line %q without a write error", line)
	}
	v.err = errors.Join(syscall.ENOSPC)
	if line := progressLine(v, time.Second); !strings.Contains(line, "RECORDS WRITE FAILED") {
		t.Errorf("progress line %q does not say the records failed", line)
	}
}
