package dump

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// querier runs PromQL against the Prometheus HTTP API and, with explain
// set, prints every query next to its result.
type querier struct {
	api     v1.API
	explain io.Writer
	log     *slog.Logger
}

// warn logs a problem that leaves the row written.
func (q *querier) warn(msg string) { q.log.Warn(msg) }

func (q *querier) logf(format string, args ...any) {
	if q.explain != nil {
		fmt.Fprintf(q.explain, format+"\n", args...)
	}
}

// vector runs an instant query at ts.
func (q *querier) vector(ctx context.Context, promql string, ts time.Time) (model.Vector, error) {
	v, warnings, _, err := q.api.Query(ctx, promql, ts)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", oneLine(promql), err)
	}
	for _, w := range warnings {
		q.warn(fmt.Sprintf("Prometheus warns about %s: %s", oneLine(promql), w))
	}
	switch r := v.(type) {
	case model.Vector:
		q.logf("  %s\n    @ %s => %s", oneLine(promql), stamp(ts), describeVector(r))
		return r, nil
	case *model.Scalar:
		q.logf("  %s\n    @ %s => %v", oneLine(promql), stamp(ts), r.Value)
		return model.Vector{{Metric: model.Metric{}, Value: r.Value, Timestamp: r.Timestamp}}, nil
	}
	return nil, fmt.Errorf("query %s: result type %s, want a vector", oneLine(promql), v.Type())
}

// scalar runs promql at ts and returns its single value; found is false
// for an empty result or NaN.
func (q *querier) scalar(ctx context.Context, promql string, ts time.Time) (float64, bool, error) {
	v, err := q.vector(ctx, promql, ts)
	if err != nil {
		return 0, false, err
	}
	switch {
	case len(v) == 0:
		return 0, false, nil
	case len(v) > 1:
		return 0, false, fmt.Errorf("query %s: %d series, want one", oneLine(promql), len(v))
	case v[0].Histogram != nil:
		return 0, false, fmt.Errorf("query %s: a native histogram, want a number", oneLine(promql))
	}
	x := float64(v[0].Value)
	return x, !math.IsNaN(x) && !math.IsInf(x, 0), nil
}

// series is one time series' raw samples.
type series struct {
	Metric  model.Metric
	Samples []model.SamplePair
	Hists   []model.SampleHistogramPair
}

// raw returns the raw samples of selector in (from, to]: the range
// selector selector[to-from] evaluated at to, which Prometheus and
// VictoriaMetrics both answer with the stored samples.
func (q *querier) raw(ctx context.Context, selector string, from, to time.Time) ([]series, error) {
	secs := int64(math.Ceil(to.Sub(from).Seconds()))
	if secs < 1 {
		secs = 1
	}
	promql := fmt.Sprintf("%s[%ds]", selector, secs)
	v, warnings, _, err := q.api.Query(ctx, promql, to)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", promql, err)
	}
	for _, w := range warnings {
		q.warn(fmt.Sprintf("Prometheus warns about %s: %s", promql, w))
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query %s: result type %s, want a matrix of raw samples", promql, v.Type())
	}
	out := make([]series, 0, len(m))
	n, stale := 0, 0
	for _, s := range m {
		values := dropNaN(s.Values)
		stale += len(s.Values) - len(values)
		out = append(out, series{Metric: s.Metric, Samples: values, Hists: s.Histograms})
		n += len(values) + len(s.Histograms)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Metric.String() < out[j].Metric.String() })
	q.logf("  %s\n    @ %s => %d series, %d raw samples", promql, stamp(to), len(out), n)
	if stale > 0 {
		q.logf("    (%d NaN samples dropped: staleness markers, which VictoriaMetrics returns as samples)", stale)
	}
	return out, nil
}

// dropNaN is s without its NaN samples. Prometheus marks a series that
// went away with a staleness marker, a special NaN, and never returns it;
// VictoriaMetrics returns it as a sample, and counted as a counter value
// it would make every increase NaN and every count garbage.
func dropNaN(s []model.SamplePair) []model.SamplePair {
	kept := s[:0:0]
	for _, p := range s {
		if !math.IsNaN(float64(p.Value)) {
			kept = append(kept, p)
		}
	}
	return kept
}

func describeVector(v model.Vector) string {
	if len(v) == 0 {
		return "no series"
	}
	parts := make([]string, 0, len(v))
	for i, s := range v {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("... (%d series)", len(v)))
			break
		}
		val := fmt.Sprint(s.Value)
		if s.Histogram != nil {
			val = fmt.Sprintf("histogram(count %v, sum %v)", s.Histogram.Count, s.Histogram.Sum)
		}
		if len(s.Metric) == 0 {
			parts = append(parts, val)
		} else {
			parts = append(parts, s.Metric.String()+" "+val)
		}
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func fromSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// promDuration is d in PromQL's duration syntax (1w, 5m5s, 1s563ms),
// rounded up to whole milliseconds, its finest unit.
func promDuration(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return model.Duration(ms * time.Millisecond).String()
}

// quote is a PromQL string literal.
func quote(s string) string { return fmt.Sprintf("%q", s) }
