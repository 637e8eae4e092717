package run

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

func runWithID(t *testing.T, cfg Config) *Result {
	t.Helper()
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestOneDirectoryPerRun: each run writes records.jsonl, energy.jsonl and
// report.json in OUT/<run id>/, and appends its row to OUT/summary.csv;
// a run id that already has results there is refused before anything is
// sent (two runs' energy headers used to share one energy.jsonl).
func TestOneDirectoryPerRun(t *testing.T) {
	out := t.TempDir()
	for _, id := range []string{"first", "second"} {
		cfg := testConfig(t, 4)
		cfg.Out, cfg.RunID = out, id
		res := runWithID(t, cfg)
		if res.RunDir != filepath.Join(out, id) {
			t.Errorf("run dir %s, want %s", res.RunDir, filepath.Join(out, id))
		}
		for _, f := range []string{loadgen.RecordsFileName, energy.FileName, report.ReportFileName} {
			if _, err := os.Stat(filepath.Join(out, id, f)); err != nil {
				t.Errorf("run %s: %v", id, err)
			}
		}
	}
	if got := countLines(t, filepath.Join(out, "summary.csv")); got != 3 {
		t.Errorf("summary.csv has %d lines, want a header and two rows", got)
	}
	if found, _ := filepath.Glob(filepath.Join(out, "*.jsonl")); len(found) > 0 {
		t.Errorf("files outside the run directories: %v", found)
	}
	cfg := testConfig(t, 4)
	cfg.Out, cfg.RunID = out, "first"
	_, err := Start(t.Context(), cfg)
	var input *InputError
	if !errors.As(err, &input) || !strings.Contains(err.Error(), "already has results") {
		t.Errorf("a reused run id: %v, want an InputError", err)
	}
	for _, bad := range []string{"..", "a/b"} {
		cfg := testConfig(t, 1)
		cfg.RunID = bad
		if _, err := Start(t.Context(), cfg); !errors.As(err, &input) {
			t.Errorf("run id %q: %v, want an InputError", bad, err)
		}
	}
}

// TestReportJSON: report.json holds the resolved settings, every
// distribution (agreeing with the summary row), outcomes, rates, energy
// and the paths of the run's files, under its schema version.
func TestReportJSON(t *testing.T) {
	cfg := testConfig(t, 20)
	cfg.RunID = "rep"
	res := runWithID(t, cfg)
	rep, err := report.ReadReport(res.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	row := res.Row
	if rep.Schema != report.ReportSchema || rep.RunID != "rep" || rep.BenchmarkName != "lib-test" || !rep.Simulated ||
		rep.TokenwattVersion != "test" || rep.Host == "" || rep.Started == nil || rep.Finished == nil {
		t.Errorf("identity: %+v", rep)
	}
	st := rep.Settings
	if st.Scenario != "lib-test" || st.Backend != "vllm" || st.Model == "" || !strings.HasPrefix(st.Endpoint, "http://127.0.0.1:") ||
		!st.Stream || st.NumSamples != 20 || st.Concurrency != 2 || st.MaxTokens != 8 || st.DatasetPrompts != 20 ||
		len(st.DatasetSHA256) != 64 || st.EnergySource != "scrape" || st.API != "chat" || len(st.GPUs) != 1 || st.EnergyIntervalS != 0.02 ||
		len(st.GPUModels) != 1 || st.GPUModels[0] == "" {
		t.Errorf("settings: %+v", st)
	}
	if rep.Requests.Total != 20 || rep.Requests.OK != 20 || rep.Requests.Outcomes["ok"] != 20 {
		t.Errorf("requests: %+v", rep.Requests)
	}
	e2e := rep.Latency["e2e"]
	if e2e == nil || e2e.Count != 20 || e2e.Percentiles["p50"] != *row.E2EP50Seconds || e2e.Percentiles["p99"] != *row.E2EP99Seconds ||
		e2e.Min > e2e.Percentiles["p50"] || e2e.Max < e2e.Percentiles["p99.9"] || e2e.Std <= 0 {
		t.Errorf("e2e distribution %+v against the row's p50 %v p99 %v", e2e, *row.E2EP50Seconds, *row.E2EP99Seconds)
	}
	for _, k := range []string{"ttft", "itl", "tpot", "e2e_from_sched", "schedule_lag"} {
		if rep.Latency[k] == nil {
			t.Errorf("no %s distribution", k)
		}
	}
	if rep.Tokens.Output == nil || *rep.Tokens.Output != *row.TotalCompletionTokens || rep.Energy == nil ||
		rep.Energy.GPUEnergyWh == nil || *rep.Energy.GPUEnergyWh != *row.GPUEnergyWh {
		t.Errorf("tokens %+v, energy %+v", rep.Tokens, rep.Energy)
	}
	if rep.Rates.Completion == nil || rep.Rates.Target != nil {
		t.Errorf("rates %+v: want a completion rate and no target (closed loop)", rep.Rates)
	}
	if rep.Files.Records != res.RecordsPath || rep.Files.Summary != res.SummaryPath || rep.Files.Energy == "" {
		t.Errorf("files %+v", rep.Files)
	}
}
