// Package dump computes tokenwatt's CSV summary row (docs/csv.md) from a
// Prometheus-compatible time-series database (Prometheus or
// VictoriaMetrics) instead of from a run's local records: for soak runs,
// runs spread over several loadgen processes, and vLLM servers that only
// Prometheus measured.
//
// Counts and token totals come from the counters' raw samples (every
// increase between samples, resets included, from the counter's 0 at the
// run's start), so they are exact; percentiles come from histogram_quantile
// over the native histograms (classic buckets where there are none);
// energy from the run's attributed-energy counter, or the per-GPU energy
// counters (tokenwatt's or dcgm-exporter's) interpolated at the window's
// edges.
package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/report"
)

// Sources of a row.
const (
	SourceLoadgen = "loadgen" // tokenwatt_* series of loadgen runs
	SourceVLLM    = "vllm"    // vLLM's own vllm:* series, no loadgen
)

// Energy metrics.
const (
	EnergyAuto      = "auto"      // loadgen: the run's own energy; vllm: dcgm, else tokenwatt
	EnergyTokenwatt = "tokenwatt" // tokenwatt_gpu_energy_joules_total
	EnergyDCGM      = "dcgm"      // DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ)
	EnergyNone      = "none"
)

// Options choose the rows to compute.
type Options struct {
	Source string // SourceLoadgen (default) or SourceVLLM
	// RunID picks one loadgen run; All picks every run that started in
	// the last Since. Start and End, when set, override the window.
	RunID      string
	All        bool
	Since      time.Duration
	Start, End time.Time
	// EnergyMetric is one of the Energy* constants; GPUSelector narrows
	// the per-GPU energy series, as PromQL label matchers without braces
	// (e.g. `hostname="gpu-node-1"`; dcgm-exporter before 4.8 writes
	// Hostname).
	EnergyMetric string
	GPUSelector  string
	// Model filters --source vllm by model_name.
	Model string
	// CarbonIntensity overrides the run's own (g CO2eq per kWh).
	CarbonIntensity *float64
}

// Dumper computes rows through a Prometheus HTTP API client.
type Dumper struct {
	API v1.API
	// Explain, when set, receives every query and its result.
	Explain io.Writer
	// Logger gets, as warnings, problems that leave the row written:
	// scrape gaps, fallbacks, windows not fully covered. nil drops them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// ErrNotFound is matched (errors.Is) by Rows' error when no run, or no
// vLLM series, matches.
var ErrNotFound = errors.New("not found")

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

func notFoundf(format string, args ...any) error {
	return &notFoundError{fmt.Sprintf(format, args...)}
}

// Rows computes the rows o asks for.
func (d *Dumper) Rows(ctx context.Context, o Options) ([]*report.Row, error) {
	q := &querier{api: d.API, explain: d.Explain, log: d.Logger}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	if o.Since <= 0 {
		o.Since = 7 * 24 * time.Hour
	}
	if o.EnergyMetric == "" {
		o.EnergyMetric = EnergyAuto
	}
	switch o.Source {
	case "", SourceLoadgen:
	case SourceVLLM:
		r, err := vllmRow(ctx, q, o, now)
		if err != nil {
			return nil, err
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: the server's answers gave a number no run can have; nothing written (run with --explain to see the queries)", err)
		}
		return []*report.Row{r}, nil
	default:
		return nil, fmt.Errorf("unknown source %q (want %s or %s)", o.Source, SourceLoadgen, SourceVLLM)
	}
	if (o.RunID == "") == !o.All {
		return nil, errors.New("give --run-id ID or --all")
	}
	runs, err := findRuns(ctx, q, o, now)
	if err != nil {
		return nil, err
	}
	var rows []*report.Row
	for _, r := range runs {
		q.logf("run %s:", r.id)
		row, err := loadgenRow(ctx, q, o, r, now)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", r.id, err)
		}
		if err := row.Validate(); err != nil {
			return nil, fmt.Errorf("run %s: %w: the server's answers gave a number no run can have; nothing written (run with --explain to see the queries)", r.id, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// target is one scraped loadgen process (or one push source).
type target struct {
	labels model.LabelSet // job, instance (whatever identifies it besides run_id)
	info   model.Metric   // its tokenwatt_run_info labels
	ended  bool           // it exported tokenwatt_run_end_timestamp_seconds
}

// run is a loadgen run found in the database.
type run struct {
	id         string
	start, end time.Time
	endKnown   bool
	targets    []target
}

// targetLabels are the labels that tell one loadgen target from another.
func targetLabels(m model.Metric) model.LabelSet {
	ls := model.LabelSet{}
	for _, n := range []model.LabelName{"job", "instance"} {
		if v, ok := m[n]; ok {
			ls[n] = v
		}
	}
	return ls
}

func findRuns(ctx context.Context, q *querier, o Options, now time.Time) ([]*run, error) {
	since := promDuration(o.Since)
	sel := ""
	if o.RunID != "" {
		sel = "{run_id=" + quote(o.RunID) + "}"
	}
	infos, err := q.vector(ctx, fmt.Sprintf("last_over_time(tokenwatt_run_info%s[%s])", sel, since), now)
	if err != nil {
		return nil, err
	}
	starts, err := q.vector(ctx, fmt.Sprintf("min by (run_id) (last_over_time(tokenwatt_run_start_timestamp_seconds%s[%s]))", sel, since), now)
	if err != nil {
		return nil, err
	}
	ends, err := q.vector(ctx, fmt.Sprintf("last_over_time(tokenwatt_run_end_timestamp_seconds%s[%s])", sel, since), now)
	if err != nil {
		return nil, err
	}
	byID := map[string]*run{}
	for _, s := range infos {
		id := string(s.Metric["run_id"])
		r := byID[id]
		if r == nil {
			r = &run{id: id}
			byID[id] = r
		}
		r.targets = append(r.targets, target{labels: targetLabels(s.Metric), info: s.Metric})
	}
	for _, s := range starts {
		if r := byID[string(s.Metric["run_id"])]; r != nil {
			r.start = fromSeconds(float64(s.Value))
		}
	}
	for _, s := range ends {
		r := byID[string(s.Metric["run_id"])]
		if r == nil {
			continue
		}
		t := fromSeconds(float64(s.Value))
		if !r.endKnown || t.After(r.end) {
			r.end, r.endKnown = t, true
		}
		tl := targetLabels(s.Metric)
		for i := range r.targets {
			if r.targets[i].labels.Equal(tl) {
				r.targets[i].ended = true
			}
		}
	}

	if o.RunID != "" && byID[o.RunID] == nil {
		return nil, notFound(ctx, q, o, now)
	}
	var runs []*run
	for _, r := range byID {
		if r.start.IsZero() && o.Start.IsZero() {
			q.warn(fmt.Sprintf("run %s has no tokenwatt_run_start_timestamp_seconds in the last %s; skipped (give --start)", r.id, since))
			continue
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, notFoundf("no tokenwatt run in the last %s (is Prometheus scraping the loadgen's --metrics-addr, or is --push-url set?)", since)
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].start.Equal(runs[j].start) {
			return runs[i].start.Before(runs[j].start)
		}
		return runs[i].id < runs[j].id
	})
	for _, r := range runs {
		sort.Slice(r.targets, func(i, j int) bool { return r.targets[i].labels.String() < r.targets[j].labels.String() })
		if !o.Start.IsZero() {
			r.start = o.Start
		}
		if !o.End.IsZero() {
			r.end, r.endKnown = o.End, true
			continue
		}
		for _, t := range r.targets {
			if !t.ended {
				q.warn(fmt.Sprintf("run %s: loadgen %s exported no run end (still running, or it exited before Prometheus scraped its last values: use --linger of at least one scrape interval); its counts are those last scraped", r.id, t.labels))
			}
		}
		if !r.endKnown {
			last, err := lastSample(ctx, q, "tokenwatt_run_info{run_id="+quote(r.id)+"}", now.Add(-o.Since), now)
			if err != nil {
				return nil, err
			}
			r.end, r.endKnown = last, !last.IsZero()
			q.warn(fmt.Sprintf("run %s has no end time; the window ends at its last sample, %s", r.id, stamp(last)))
		}
	}
	return runs, nil
}

// notFound is the error for an unknown run id: it lists the most recent
// runs that do exist.
func notFound(ctx context.Context, q *querier, o Options, now time.Time) error {
	since := promDuration(o.Since)
	v, err := q.vector(ctx, fmt.Sprintf("max by (run_id) (last_over_time(tokenwatt_run_start_timestamp_seconds[%s]))", since), now)
	if err != nil {
		return err
	}
	sort.Slice(v, func(i, j int) bool { return v[i].Value > v[j].Value })
	var recent []string
	for i, s := range v {
		if i == 5 {
			break
		}
		recent = append(recent, fmt.Sprintf("%s (started %s)", s.Metric["run_id"], stamp(fromSeconds(float64(s.Value)))))
	}
	if len(recent) == 0 {
		return notFoundf("run id %q: no tokenwatt run at all in the last %s (is Prometheus scraping the loadgen's --metrics-addr, or is --push-url set? VictoriaMetrics hides samples newer than its -search.latencyOffset, 30 s by default, unless it honours the latency_offset=1ms that dump asks for: a run that just ended may show up 30 s later)", o.RunID, since)
	}
	return notFoundf("run id %q not in the last %s; most recent: %s", o.RunID, since, strings.Join(recent, ", "))
}

// lastSample is the time of the newest raw sample of selector in (from, to].
func lastSample(ctx context.Context, q *querier, selector string, from, to time.Time) (time.Time, error) {
	ss, err := q.raw(ctx, selector, from, to)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, s := range ss {
		if n := len(s.Samples); n > 0 && s.Samples[n-1].Timestamp.Time().After(last) {
			last = s.Samples[n-1].Timestamp.Time()
		}
	}
	return last, nil
}

// lookback is how far before a window dump looks for a counter's baseline
// sample and after it for the final scrape: Prometheus' default lookback.
const lookback = 5 * time.Minute

// readCounter sums counterIncrease over every series of selector from
// start to end, grouped by the label by ("" for all). Each series is read
// to its first sample at or after end (coverEnd), looked for up to limit.
type counterTotals struct {
	byLabel map[string]float64
	total   float64
	found   bool
	readTo  time.Time // the latest sample read: end's covering scrape, or the last before it
}

func readCounter(ctx context.Context, q *querier, selector, by string, start, end, limit time.Time) (counterTotals, []series, error) {
	ss, err := q.raw(ctx, selector, start.Add(-lookback), limit)
	if err != nil {
		return counterTotals{}, nil, err
	}
	t := counterTotals{byLabel: map[string]float64{}, found: len(ss) > 0}
	for i := range ss {
		ss[i].Samples = coverEnd(ss[i].Samples, end)
		s := ss[i]
		inc, _, _, _ := counterIncrease(s.Samples, start, limit)
		t.total += inc
		if by != "" {
			t.byLabel[string(s.Metric[model.LabelName(by)])] += inc
		}
		if n := len(s.Samples); n > 0 && s.Samples[n-1].Timestamp.Time().After(t.readTo) {
			t.readTo = s.Samples[n-1].Timestamp.Time()
		}
	}
	if t.found {
		q.logf("    = %v", roundish(t.total))
	}
	return t, ss, nil
}

// coverEnd is s up to its first sample at or after end: the scrape that
// saw what the counter held at end. Read only to end, a window would lose
// what happened between its last scrape and end (a request finishing a
// moment before end counts at the next scrape); read further, it would
// count what happened after that scrape.
func coverEnd(s []model.SamplePair, end time.Time) []model.SamplePair {
	endMs := end.UnixMilli()
	for i, p := range s {
		if int64(p.Timestamp) >= endMs {
			return s[:i+1]
		}
	}
	return s
}

func roundish(x float64) string { return strconv.FormatFloat(x, 'g', 10, 64) }

// intOf is a count read from counters, rounded: counters of whole things
// only ever add whole numbers.
func intOf(x float64) int64 { return int64(math.Round(x)) }

// matcherFor selects the series of the given targets: one target's own
// labels, or a regex over several.
func matcherFor(ts []target) string {
	if len(ts) == 1 {
		var parts []string
		for _, n := range []model.LabelName{"job", "instance"} {
			if v, ok := ts[0].labels[n]; ok {
				parts = append(parts, string(n)+"="+quote(string(v)))
			}
		}
		return strings.Join(parts, ",")
	}
	var jobs, insts []string
	for _, t := range ts {
		jobs = append(jobs, regexp.QuoteMeta(string(t.labels["job"])))
		insts = append(insts, regexp.QuoteMeta(string(t.labels["instance"])))
	}
	return "job=~" + quote(strings.Join(uniq(jobs), "|")) + ",instance=~" + quote(strings.Join(uniq(insts), "|"))
}

func uniq(xs []string) []string {
	sort.Strings(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func withMatchers(metric string, matchers ...string) string {
	var ms []string
	for _, m := range matchers {
		if m = strings.TrimSpace(m); m != "" {
			ms = append(ms, m)
		}
	}
	return metric + "{" + strings.Join(ms, ",") + "}"
}
