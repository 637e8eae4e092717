package compare

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tokenwatt/tokenwatt/report"
)

// recordsFileName is a run directory's records (loadgen.RecordsFileName;
// this package reads the file, it does not link the engine).
const recordsFileName = "records.jsonl"

// request is what compare reads of one records.jsonl line
// (docs/definitions.md, "records.jsonl"): a test checks that every field
// is loadgen.Record's.
type request struct {
	RunID        string   `json:"run_id"`
	Outcome      string   `json:"outcome"`
	TTFT         *float64 `json:"ttft_s"`
	TPOT         *float64 `json:"tpot_s"`
	E2E          *float64 `json:"e2e_s"`
	OutputTokens *int     `json:"output_tokens"`
	EnergyJ      *float64 `json:"energy_j"`
	SLOMet       *bool    `json:"slo_met"`
}

func (r *request) ok() bool { return r.Outcome == "ok" }

// Run is one run to compare: its report.json and its requests.
type Run struct {
	// Path is where it was found: the run directory or the report.json
	// given.
	Path   string
	Report *report.Report
	// Requests are the run's measured requests from records.jsonl, every
	// outcome; nil when the file is missing (then no interval can be
	// computed, and RecordsNote says why).
	Requests    []request
	RecordsPath string
	RecordsNote string
	// Skipped counts the lines of records.jsonl that did not parse (a
	// killed run's cut last line) or belong to another run.
	Skipped int
}

// Load reads a run: a run directory (OUT/<run_id>/, holding report.json
// and records.jsonl) or a report.json, whose records.jsonl is the one
// beside it, else the one its files.records names.
func Load(path string) (*Run, error) {
	reportPath := path
	if fi, err := os.Stat(path); err != nil {
		return nil, err
	} else if fi.IsDir() {
		reportPath = filepath.Join(path, report.ReportFileName)
	}
	rep, err := report.ReadReport(reportPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: give a run directory (OUT/<run_id>/) or a report.json", path, report.ReportFileName)
	}
	if err != nil {
		return nil, err
	}
	run := &Run{Path: path, Report: rep}
	run.RecordsPath = filepath.Join(filepath.Dir(reportPath), recordsFileName)
	if _, err := os.Stat(run.RecordsPath); err != nil && rep.Files.Records != "" {
		run.RecordsPath = rep.Files.Records
	}
	if err := run.readRecords(); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		run.RecordsNote = fmt.Sprintf("no %s beside %s: no confidence intervals", recordsFileName, reportPath)
	}
	return run, nil
}

// readRecords reads the run's records, skipping lines that do not parse
// and records of another run.
func (r *Run) readRecords() error {
	f, err := os.Open(r.RecordsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	// A record with --save-text holds up to 1 MiB of answer, and its
	// prompt.
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	reqs := []request{}
	for sc.Scan() {
		var q request
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil || q.RunID != r.Report.RunID {
			r.Skipped++
			continue
		}
		reqs = append(reqs, q)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", r.RecordsPath, err)
	}
	r.Requests = reqs
	return nil
}
