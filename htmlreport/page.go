// Package htmlreport writes `loadgen report`'s page: one self-contained
// HTML file (inline SVG and CSS, no script, nothing fetched when it is
// viewed) with charts drawn by gonum.org/v1/plot, for one run, several
// runs compared, or a sweep (docs/htmlreport.md).
//
// It reads what a run leaves in its directory (records.jsonl,
// energy.jsonl, report.json) and keeps a bounded amount of it, whatever
// the run's size.
package htmlreport

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strings"

	"github.com/tokenwatt/tokenwatt/internal/atomicfile"
	"github.com/tokenwatt/tokenwatt/report"
)

// Kind is what a page shows.
type Kind string

const (
	KindRun     Kind = "run"     // one run directory
	KindCompare Kind = "compare" // several run directories, overlaid
	KindSweep   Kind = "sweep"   // a sweep's directory, or any directory of run directories
)

// Options are a page's settings.
type Options struct {
	// Latency is the latency a sweep's curves and frontier use: DIST_STAT
	// (e2e_p99, ttft_p50, tpot_mean; docs/htmlreport.md); empty: the
	// sweep's own (sweep.json's frontier_latency), else DefaultLatency.
	Latency string
	// Generator names what made the page ("loadgen v1.2.3"), for its
	// footer.
	Generator string
}

// DefaultLatency is a sweep's latency when neither the options nor the
// sweep name one.
const DefaultLatency = "e2e_p99"

// page is the template's data.
type page struct {
	Title     string
	Heading   string
	Sub       string
	Simulated bool
	Table     *table
	Key       []keyItem // the runs' colours in overlaid charts
	Notes     []string
	Charts    []*chart
	Footer    string
}

// keyItem is one run's colour in a comparison's charts.
type keyItem struct {
	Label string
	Color template.CSS
}

// table is the key figures: one column per run (or per sweep point when
// Transposed).
type table struct {
	Head []string
	Rows [][]string
}

//go:embed page.html.tmpl
var pageTemplate string

var tmpl = template.Must(template.New("page").Parse(pageTemplate))

// InputError is a page that could not be made from its input: a
// directory that is no run (nor holds any), a file that does not parse,
// an unknown latency.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Write writes the page of dirs to w: one run directory (it has
// records.jsonl) gives a run's page, several a comparison, and one
// directory of run directories (a sweep's OUT/<sweep_id>/, or any
// --out directory) a sweep's.
func Write(w io.Writer, dirs []string, opt Options) (Kind, error) {
	if len(dirs) == 0 {
		return "", &InputError{errors.New("no directory given")}
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return "", &InputError{fmt.Errorf("%s: not a directory", d)}
		}
	}
	var (
		p    *page
		kind Kind
		err  error
	)
	switch {
	case len(dirs) == 1 && isRunDir(dirs[0]):
		kind = KindRun
		p, err = runPage(dirs[0])
	case len(dirs) == 1:
		kind = KindSweep
		p, err = sweepPage(dirs[0], opt.Latency)
	default:
		for _, d := range dirs {
			if !isRunDir(d) {
				return "", &InputError{fmt.Errorf("%s: not a run directory (it has no %s); compare run directories", d, recordsFile)}
			}
		}
		kind = KindCompare
		p, err = comparePage(dirs)
	}
	if err != nil {
		return "", &InputError{err}
	}
	p.Footer = fmt.Sprintf("Made by %s from %s.", orDefault(opt.Generator, "loadgen report"), strings.Join(dirs, ", "))
	return kind, tmpl.Execute(w, p)
}

// WriteFile writes the page to path atomically (a temporary file renamed
// into place), once it is whole: bad input leaves path as it was.
func WriteFile(path string, dirs []string, opt Options) (Kind, error) {
	var b bytes.Buffer
	kind, err := Write(&b, dirs, opt)
	if err != nil {
		return "", err
	}
	return kind, atomicfile.Write(path, b.Bytes())
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// runPage is one run's page.
func runPage(dir string) (*page, error) {
	r, err := loadRun(dir)
	if err != nil {
		return nil, err
	}
	p := &page{Title: "tokenwatt run " + r.id, Heading: "Run " + r.id, Simulated: r.simulated}
	if r.rep != nil {
		p.Sub = r.rep.BenchmarkName
		p.Table = figureTable([]*runData{r})
	} else {
		p.Notes = append(p.Notes, fmt.Sprintf("%s has no %s (the run did not finish): the charts are drawn from its records alone.", dir, report.ReportFileName))
	}
	p.Notes = append(p.Notes, readNotes(r)...)
	one := func(s *sample) []series { return []series{{label: r.id, s: s}} }
	add := func(c *chart, err error) error {
		if err == nil && c != nil {
			p.Charts = append(p.Charts, c)
		}
		return err
	}
	errs := []error{
		add(cdfChart("chart-ttft-cdf", "TTFT: cumulative distribution", "TTFT", true, one(r.ttft), "")),
		add(cdfChart("chart-itl-cdf", "ITL: cumulative distribution", "ITL", true, one(r.itl), "")),
		add(cdfChart("chart-e2e-cdf", "E2E latency: cumulative distribution", "E2E latency", true, one(r.e2e), "")),
		add(histChart("chart-ttft-hist", "TTFT: histogram", "TTFT", r.ttft, "requests")),
		add(histChart("chart-itl-hist", "ITL: histogram", "ITL", r.itl, "gaps")),
		add(histChart("chart-e2e-hist", "E2E latency: histogram", "E2E latency", r.e2e, "requests")),
		add(inFlightChart(r)),
		add(powerChart(r)),
		add(jptChart(r)),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(r.ttft.vals) == 0 && r.ok > 0 {
		p.Notes = append(p.Notes, "No TTFT or ITL was measured (a run without streaming measures E2E only).")
	}
	if !r.hasEnergy() {
		p.Notes = append(p.Notes, "The run had no energy source: no power or energy charts.")
	}
	return p, nil
}

// readNotes says what reading the run's files left out.
func readNotes(r *runData) []string {
	var n []string
	if r.skippedLines > 0 {
		n = append(n, fmt.Sprintf("%d lines of %s did not parse and were skipped.", r.skippedLines, recordsFile))
	}
	if r.energySkipped > 0 {
		n = append(n, fmt.Sprintf("%d lines of %s did not parse and were skipped.", r.energySkipped, energyFile))
	}
	return n
}

// comparePage overlays several runs' distributions.
func comparePage(dirs []string) (*page, error) {
	var runs []*runData
	for _, d := range dirs {
		r, err := loadRun(d)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.id
	}
	p := &page{Title: "tokenwatt: " + strings.Join(ids, " vs "), Heading: "Compare " + strings.Join(ids, " · "),
		Sub: "Overlaid distributions of the runs' successful requests; the first run is the base."}
	for _, r := range runs {
		p.Simulated = p.Simulated || r.simulated
		if r.rep == nil {
			p.Notes = append(p.Notes, fmt.Sprintf("%s has no %s (the run did not finish): its figures are missing from the table.", r.dir, report.ReportFileName))
		}
		for _, n := range readNotes(r) {
			p.Notes = append(p.Notes, r.id+": "+n)
		}
	}
	p.Table = figureTable(runs)
	for i, r := range runs {
		c := colorOf(i)
		p.Key = append(p.Key, keyItem{Label: r.id, Color: template.CSS(fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B))})
	}
	pick := func(f func(*runData) *sample) []series {
		ss := make([]series, len(runs))
		for i, r := range runs {
			ss[i] = series{label: r.id, s: f(r), color: i}
		}
		return ss
	}
	var errs []error
	for _, c := range []struct {
		id, title, axis string
		seconds         bool
		f               func(*runData) *sample
	}{
		{"chart-ttft-cdf", "TTFT: cumulative distributions", "TTFT", true, func(r *runData) *sample { return r.ttft }},
		{"chart-itl-cdf", "ITL: cumulative distributions", "ITL", true, func(r *runData) *sample { return r.itl }},
		{"chart-e2e-cdf", "E2E latency: cumulative distributions", "E2E latency", true, func(r *runData) *sample { return r.e2e }},
		{"chart-jpt-cdf", "Energy per output token, per request: cumulative distributions", "J per output token", false, func(r *runData) *sample { return r.jpt }},
	} {
		ch, err := cdfChart(c.id, c.title, c.axis, c.seconds, pick(c.f), "")
		errs = append(errs, err)
		if ch != nil {
			p.Charts = append(p.Charts, ch)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// figureTable is the runs' key figures from their report.json, one
// column per run.
func figureTable(runs []*runData) *table {
	t := &table{Head: []string{""}}
	for _, r := range runs {
		t.Head = append(t.Head, r.id)
	}
	row := func(name string, f func(*report.Report) string) {
		cells := []string{name}
		for _, r := range runs {
			v := "–"
			if r.rep != nil {
				v = f(r.rep)
			}
			cells = append(cells, v)
		}
		t.Rows = append(t.Rows, cells)
	}
	row("benchmark", func(rep *report.Report) string { return rep.BenchmarkName })
	row("started (UTC)", func(rep *report.Report) string {
		if rep.Started == nil {
			return "–"
		}
		return rep.Started.UTC().Format("2006-01-02 15:04:05")
	})
	row("duration", func(rep *report.Report) string { return fmtSeconds(rep.DurationS) })
	row("stopped", func(rep *report.Report) string { return rep.StopReason })
	row("requests total / ok / failed", func(rep *report.Report) string {
		return fmt.Sprintf("%d / %d / %d", rep.Requests.Total, rep.Requests.OK, rep.Requests.Failed)
	})
	row("rate target / sent / completed (req/s)", func(rep *report.Report) string {
		return fmtNum(rep.Rates.Target) + " / " + fmtNum(rep.Rates.Send) + " / " + fmtNum(rep.Rates.Completion)
	})
	for _, d := range []struct{ key, name string }{{"ttft", "TTFT"}, {"itl", "ITL"}, {"tpot", "TPOT"}, {"e2e", "E2E latency"}} {
		row(d.name+" p50 / p90 / p99", func(rep *report.Report) string {
			dist := rep.Latency[d.key]
			if dist == nil {
				return "–"
			}
			var parts []string
			for _, k := range []string{"p50", "p90", "p99"} {
				v, ok := dist.Percentiles[k]
				if !ok {
					parts = append(parts, "–")
					continue
				}
				parts = append(parts, fmtSeconds(&v))
			}
			return strings.Join(parts, " / ")
		})
	}
	row("output tokens / s", func(rep *report.Report) string { return fmtNum(rep.Tokens.OutputPerSecond) })
	energy := func(f func(*report.ReportEnergy) string) func(*report.Report) string {
		return func(rep *report.Report) string {
			if rep.Energy == nil {
				return "–"
			}
			return f(rep.Energy)
		}
	}
	row("GPU energy (Wh)", energy(func(e *report.ReportEnergy) string { return fmtNum(e.GPUEnergyWh) }))
	row("power avg / peak / idle (W)", energy(func(e *report.ReportEnergy) string {
		return fmtNum(e.AvgPowerW) + " / " + fmtNum(e.PeakPowerW) + " / " + fmtNum(e.IdlePowerW)
	}))
	row("energy per output token (J)", energy(func(e *report.ReportEnergy) string { return fmtNum(e.JoulesPerOutputToken) }))
	row("simulated", func(rep *report.Report) string {
		if rep.Simulated {
			return "SIMULATED"
		}
		return "no"
	})
	return t
}

// fmtNum shows a figure to 4 significant digits; "–" when unknown.
func fmtNum(v *float64) string {
	if v == nil || math.IsNaN(*v) {
		return "–"
	}
	return fmt.Sprintf("%.4g", *v)
}

// fmtSeconds shows a duration in ms under a second, else in s.
func fmtSeconds(v *float64) string {
	switch {
	case v == nil || math.IsNaN(*v):
		return "–"
	case math.Abs(*v) < 1:
		return fmt.Sprintf("%.3g ms", *v*1e3)
	default:
		return fmt.Sprintf("%.4g s", *v)
	}
}
