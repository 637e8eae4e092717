package run

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// A summary file the row could not be appended to (the Python POC's 13
// columns, another CSV) fails Start, before the simulator, the energy
// source or the records file are even opened, let alone a request sent.
func TestStartChecksTheSummaryFile(t *testing.T) {
	for name, header := range map[string]string{
		"the Python POC's 13 columns": strings.Join(report.Columns()[:13], ","),
		"another CSV":                 "config_name,summary_total_prompts,timestamp",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, 3)
			cfg.SummaryPath = filepath.Join(t.TempDir(), "results.csv")
			if err := os.WriteFile(cfg.SummaryPath, []byte(header+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Start(t.Context(), cfg)
			var input *InputError
			if !errors.As(err, &input) || !errors.Is(err, report.ErrHeaderMismatch) || !strings.Contains(err.Error(), cfg.SummaryPath) {
				t.Fatalf("Start: %v, want an InputError naming %s", err, cfg.SummaryPath)
			}
			if r.simSrv != nil || r.backend != nil {
				t.Error("Start went on to the simulator or the server")
			}
			if entries, _ := os.ReadDir(cfg.Out); len(entries) > 0 {
				t.Errorf("a run refused at start left %v in its output directory", entries)
			}
		})
	}
}

// When the summary cannot take the row at the end (a full disk:
// /dev/full), the row goes to a fresh summary.csv in the run's directory,
// report.json says so, and Run still returns the Result.
func TestSummaryOnAFullDisk(t *testing.T) {
	cfg := testConfig(t, 4)
	cfg.SummaryPath = filepath.Join(cfg.Out, "summary.csv")
	if err := os.Symlink("/dev/full", cfg.SummaryPath); err != nil {
		t.Fatal(err)
	}
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatalf("Run: %v, want a Result that says the summary failed", err)
	}
	fallback := filepath.Join(res.RunDir, report.FallbackSummaryName)
	if !errors.Is(res.SummaryErr, syscall.ENOSPC) || res.SummaryPath != fallback {
		t.Fatalf("SummaryErr %v, SummaryPath %q; want ENOSPC and %s", res.SummaryErr, res.SummaryPath, fallback)
	}
	rows, err := report.ReadCSV(fallback)
	if err != nil || len(rows) != 1 || rows[0].TotalPrompts != 4 || rows[0].RunID != r.ID() {
		t.Fatalf("fallback summary: %v rows %+v", err, rows)
	}
	rep, err := report.ReadReport(res.ReportPath)
	if err != nil || rep.Files.Summary != fallback || res.ReportErr != nil {
		t.Errorf("report.json: %v, files.summary %q, want %s", err, rep.Files.Summary, fallback)
	}
}

// Records that cannot be written (a full disk: records.jsonl links to
// /dev/full) stop the run at the first write error, not at its end: the
// stop reason says why, the metric counts it, and the summary row and
// report.json are written all the same.
func TestRecordsOnAFullDiskStopTheRun(t *testing.T) {
	cfg := testConfig(t, 0)
	cfg.RunID = "full-disk"
	cfg.Scenario.Rate, cfg.Scenario.Duration, cfg.Scenario.Concurrency = 20, 10*time.Minute, 0
	dir := filepath.Join(cfg.Out, cfg.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, loadgen.RecordsFileName)); err != nil {
		t.Fatal(err)
	}
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != loadgen.StopWriteError || !errors.Is(res.RecordsErr, syscall.ENOSPC) || !errors.Is(r.RecordsErr(), syscall.ENOSPC) {
		t.Fatalf("stop reason %q, RecordsErr %v (live %v); want %q and ENOSPC", res.StopReason, res.RecordsErr, r.RecordsErr(), loadgen.StopWriteError)
	}
	if got := counterValue(t, r, "tokenwatt_records_write_errors_total"); got != 1 {
		t.Errorf("tokenwatt_records_write_errors_total %v, want 1", got)
	}
	rows, err := report.ReadCSV(res.SummaryPath)
	if err != nil || len(rows) != 1 || rows[0].TotalPrompts != res.Requests || res.Requests == 0 {
		t.Errorf("summary: %v, rows %+v, want one row counting the %d requests", err, rows, res.Requests)
	}
	if rep, err := report.ReadReport(res.ReportPath); err != nil || rep.StopReason != loadgen.StopWriteError {
		t.Errorf("report.json: %v, %+v", err, rep)
	}
}

// An energy.jsonl cut mid-line by a killed run (here in the directory of
// the run id reused) gets a newline first: the new run's header is a line
// of its own, so each sample after it is the new run's.
func TestEnergySamplesAfterACrash(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.RunID = "after-crash"
	dir := filepath.Join(cfg.Out, cfg.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	killed := `{"_run_id": "killed", "_source": "sim"}` + "\n" + `{"t_unix": 1, "gpu": 0, "energy_j": 10}` + "\n" + `{"t_unix": 2, "gpu": 0, "ener`
	path := filepath.Join(dir, energy.FileName)
	if err := os.WriteFile(path, []byte(killed), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	r.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The run each line belongs to: the nearest header line above it.
	run, samples := "", map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			if n != 3 {
				t.Errorf("line %d does not parse (only the killed run's cut line 3 may not): %s", n, sc.Bytes())
			}
			continue
		}
		if id, ok := line["_run_id"].(string); ok {
			run = id
			continue
		}
		samples[run]++
	}
	if samples["killed"] != 1 || samples["after-crash"] == 0 {
		t.Errorf("samples by run %v, want the killed run's 1 and the new run's", samples)
	}
}

// counterValue is the value of the run's one counter called name.
func counterValue(t *testing.T, r *Run, name string) float64 {
	t.Helper()
	mfs, err := r.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}
