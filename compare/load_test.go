package compare

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// writeRun writes r as a run directory: report.json and records.jsonl
// (as loadgen.Records), plus the extra lines given.
func writeRun(t *testing.T, dir string, r *Run, extra ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteReport(filepath.Join(dir, report.ReportFileName), r.Report); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, q := range r.Requests {
		rec := loadgen.Record{RunID: q.RunID, Outcome: q.Outcome, TTFT: q.TTFT, TPOT: q.TPOT, E2E: q.E2E,
			OutputTokens: q.OutputTokens, EnergyJ: q.EnergyJ, SLOMet: q.SLOMet}
		b, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(append(b, '\n'))
	}
	for _, l := range extra {
		buf.WriteString(l)
	}
	if err := os.WriteFile(filepath.Join(dir, recordsFileName), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoad: a run directory and its report.json load the same run; a
// record of another run and a killed run's cut last line are skipped and
// said; a run without records.jsonl loads, without intervals; a path
// with no report.json is an error that says what to give.
func TestLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	want := synthRun("r1", rng, 30, 1)
	dir := filepath.Join(t.TempDir(), "r1")
	writeRun(t, dir, want, `{"run_id":"other","outcome":"ok"}`+"\n", `{"run_id":"r1","outc`)
	for _, p := range []string{dir, filepath.Join(dir, report.ReportFileName)} {
		got, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Report.RunID != "r1" || len(got.Requests) != 30 || got.Skipped != 2 || got.RecordsNote != "" {
			t.Errorf("Load(%s): run %q, %d requests, %d skipped, note %q", p, got.Report.RunID, len(got.Requests), got.Skipped, got.RecordsNote)
		}
		for i := range got.Requests {
			if !equalRequest(&got.Requests[i], &want.Requests[i]) {
				t.Fatalf("request %d: %+v, want %+v", i, got.Requests[i], want.Requests[i])
			}
		}
		if n := info(got).Notes; len(n) != 1 || !strings.Contains(n[0], "2 line(s)") {
			t.Errorf("notes %q", n)
		}
	}
	if err := os.Remove(filepath.Join(dir, recordsFileName)); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || got.Requests != nil || !strings.Contains(got.RecordsNote, "no confidence intervals") {
		t.Errorf("without records: %+v, %v", got, err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "give a run directory") {
		t.Errorf("an empty directory: %v", err)
	}
}

func equalRequest(a, b *request) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestWriteGolden pins the three output formats of one comparison.
func TestWriteGolden(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	base, hot := synthRun("base", rng, 300, 1), synthRun("hot", rng, 300, 1.1)
	for _, r := range []*Run{base, hot} {
		e := 0.5
		if r == hot {
			e = 0.55
		}
		r.Report.Energy = &report.ReportEnergy{Source: "sim", JoulesPerOutputToken: &e}
		r.Report.Latency["ttft"] = &report.Distribution{Percentiles: map[string]float64{"p50": 0.05, "p99": 0.12}}
	}
	hot.Report.Settings.Rate = 2
	fail, _ := ParseFailOn("joules_per_output_token>+5%,e2e_p99>+10%")
	res, err := Compare(base, []*Run{hot}, Options{FailOn: fail, Resamples: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatTable, FormatMarkdown, FormatJSON} {
		var buf bytes.Buffer
		if err := Write(&buf, res, format); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", format+".golden")
		if *update {
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -update writes it)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s output differs from %s (go test -update rewrites it):\n%s", format, path, buf.Bytes())
		}
	}
	if err := Write(new(bytes.Buffer), res, "xml"); err == nil {
		t.Error("format xml accepted")
	}
}
