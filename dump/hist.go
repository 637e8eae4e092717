package dump

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// targetAt is a target and the time of its last scrape in the window.
type targetAt struct {
	matcher string // job="...",instance="..."
	at      time.Time
}

// histReader reads a histogram's quantiles and mean over a window.
//
// In cumulative mode every target's histograms started empty at or after
// the window's start and never reset (a loadgen run's do), so the
// histogram of the whole run is each target's last scraped histogram,
// summed: `sum(h{...} @ t1 or h{...} @ t2)`. That includes requests
// completed before Prometheus' first scrape. Otherwise (a window that
// starts mid-run, a restarted loadgen, a vLLM server) it is
// `sum(increase(h[window]))`, whose quantiles are those of the requests
// seen between the window's first and last samples.
type histReader struct {
	q          *querier
	sel        string // matchers of the run or server
	cumulative bool
	targets    []targetAt
	start, end time.Time // the window
	readTo     time.Time // evaluation time: the window's end, or the last scrape after it
	classic    []string  // metrics that had no native histogram but classic buckets
	// resolution says, for each percentile read from classic buckets,
	// the bucket it lies in: "ITL p90 in (0, 0.01] s".
	resolution []string
	vmrange    bool // some buckets were VictoriaMetrics' vmrange ones
}

func (h *histReader) window() string { return promDuration(h.readTo.Sub(h.start)) }

func at(t time.Time) string { return fmt.Sprintf("@ %.3f", seconds(t)) }

// native is the PromQL for the run's native histogram of metric.
func (h *histReader) native(metric string) string {
	if !h.cumulative {
		return fmt.Sprintf("sum(increase(%s[%s]))", withMatchers(metric, h.sel), h.window())
	}
	var parts []string
	for _, t := range h.targets {
		parts = append(parts, withMatchers(metric, h.sel, t.matcher)+" "+at(t.at))
	}
	return "sum(" + strings.Join(parts, " or ") + ")"
}

// classicSum is sum by (by) of the classic series metric+suffix
// (_bucket, _sum, _count) over the run.
func (h *histReader) classicSum(metric, suffix, by string) string {
	grouping := ""
	if by != "" {
		grouping = " by (" + by + ")"
	}
	if !h.cumulative {
		return fmt.Sprintf("sum%s (increase(%s[%s]))", grouping, withMatchers(metric+suffix, h.sel), h.window())
	}
	var parts []string
	for _, t := range h.targets {
		parts = append(parts, withMatchers(metric+suffix, h.sel, t.matcher)+" "+at(t.at))
	}
	return fmt.Sprintf("sum%s (%s)", grouping, strings.Join(parts, " or "))
}

// nativeZeroThreshold is the width of a native histogram's zero bucket as
// client_golang sets it (prometheus.DefNativeHistogramZeroThreshold, 2^-128):
// observations of 0 fall into it.
const nativeZeroThreshold = 2.938735877055719e-39

// inZeroBucket is x, or 0 when x lies within the zero bucket: a quantile
// among observations of 0 (a schedule lag that never happened) comes back
// from histogram_quantile as a point inside that bucket, 2.9e-39, which
// means 0.
func inZeroBucket(x float64) float64 {
	if math.Abs(x) <= nativeZeroThreshold {
		return 0
	}
	return x
}

// stats are a histogram's quantiles and mean; nil where unknown.
type stats struct {
	p50, p90, p99, mean *float64
}

// read returns metric's p50, p90, p99 and mean, from its native histogram
// or, when there is none, its classic buckets (noted in h.classic). A
// histogram with no observations gives unknown values.
func (h *histReader) read(ctx context.Context, metric string) (stats, error) {
	var st stats
	val := func(promql string) (*float64, bool, error) {
		v, err := h.q.vector(ctx, promql, h.readTo)
		if err != nil || len(v) == 0 {
			return nil, false, err
		}
		if len(v) > 1 || v[0].Histogram != nil {
			return nil, false, fmt.Errorf("query %s: want one number, got %s", oneLine(promql), describeVector(v))
		}
		x := inZeroBucket(float64(v[0].Value))
		if x != x { // NaN: no observations
			return nil, true, nil
		}
		return &x, true, nil
	}
	native := h.native(metric)
	p50, found, err := val(fmt.Sprintf("histogram_quantile(0.5, %s)", native))
	if err != nil {
		return st, err
	}
	if found {
		st.p50 = p50
		if st.p90, _, err = val(fmt.Sprintf("histogram_quantile(0.9, %s)", native)); err != nil {
			return st, err
		}
		if st.p99, _, err = val(fmt.Sprintf("histogram_quantile(0.99, %s)", native)); err != nil {
			return st, err
		}
		st.mean, _, err = val(fmt.Sprintf("histogram_sum(%[1]s) / histogram_count(%[1]s)", native))
		return st, err
	}
	// vmrange too: VictoriaMetrics stores native histograms it receives
	// (remote_write from a Prometheus that scraped them) as _bucket series
	// labelled vmrange="lo...hi", which its histogram_quantile reads; on
	// Prometheus the label is absent and the grouping is by le alone.
	buckets := h.classicSum(metric, "_bucket", "le, vmrange")
	p50, found, err = val(fmt.Sprintf("histogram_quantile(0.5, %s)", buckets))
	if err != nil || !found {
		return st, err
	}
	h.classic = append(h.classic, metric)
	st.p50 = p50
	if st.p90, _, err = val(fmt.Sprintf("histogram_quantile(0.9, %s)", buckets)); err != nil {
		return st, err
	}
	if st.p99, _, err = val(fmt.Sprintf("histogram_quantile(0.99, %s)", buckets)); err != nil {
		return st, err
	}
	st.mean, _, err = val(fmt.Sprintf("%s / %s", h.classicSum(metric, "_sum", ""), h.classicSum(metric, "_count", "")))
	if err != nil {
		return st, err
	}
	if st.mean != nil && *st.mean == 0 {
		// A sum of 0 over observations that are never negative (durations,
		// all of them) means every one was 0: each quantile is 0, not the
		// point histogram_quantile interpolates inside the first bucket
		// (0.99 of its width for p99; a schedule lag that never happened).
		st.p50, st.p90, st.p99 = ptr(0.0), ptr(0.0), ptr(0.0)
		h.q.logf("    every observation was 0 (their sum is 0): p50, p90 and p99 are 0")
		return st, nil
	}
	bv, err := h.q.vector(ctx, buckets, h.readTo)
	if err != nil {
		return st, err
	}
	bs := bucketsOf(bv)
	for _, x := range bv {
		if _, ok := x.Metric["vmrange"]; ok {
			h.vmrange = true
		}
	}
	var in []string
	for _, p := range []struct {
		name string
		x    *float64
	}{{"p50", st.p50}, {"p90", st.p90}, {"p99", st.p99}} {
		if p.x != nil {
			in = append(in, fmt.Sprintf("%s %s %s", shortName(metric), p.name, bs.containing(*p.x)))
		}
	}
	if len(in) > 0 {
		h.resolution = append(h.resolution, strings.Join(in, ", "))
	}
	return st, nil
}

// bucket is one bucket of a classic histogram, (lo, hi].
type bucket struct{ lo, hi float64 }

// bucketList is a histogram's buckets, sorted by upper bound.
type bucketList []bucket

// bucketsOf reads the buckets of a `sum by (le, vmrange)` result:
// Prometheus' cumulative le buckets, or VictoriaMetrics' vmrange ones
// ("1.000e-03...1.136e-03"). Series it cannot parse are skipped.
func bucketsOf(v model.Vector) bucketList {
	var bs bucketList
	var les []float64
	for _, s := range v {
		if r, ok := s.Metric["vmrange"]; ok {
			lo, hi, found := strings.Cut(string(r), "...")
			l, err1 := strconv.ParseFloat(lo, 64)
			u, err2 := strconv.ParseFloat(hi, 64)
			if found && err1 == nil && err2 == nil {
				bs = append(bs, bucket{l, u})
			}
			continue
		}
		if le, err := strconv.ParseFloat(string(s.Metric["le"]), 64); err == nil {
			les = append(les, le)
		}
	}
	sort.Float64s(les)
	lo := 0.0
	for _, le := range les {
		if le < 0 {
			lo = le
			continue
		}
		bs = append(bs, bucket{lo, le})
		lo = le
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].hi < bs[j].hi })
	return bs
}

// containing names the bucket x lies in, "in (lo, hi] s"; a quantile at
// the highest finite bound (histogram_quantile's answer for the +Inf
// bucket) is "at or above" it.
func (bs bucketList) containing(x float64) string {
	for i, b := range bs {
		if x <= b.hi && (x > b.lo || (x == b.lo && i == 0)) {
			if math.IsInf(b.hi, 1) {
				return fmt.Sprintf("above %s s (the +Inf bucket)", num(b.lo))
			}
			if i+1 < len(bs) && x == b.hi && math.IsInf(bs[i+1].hi, 1) {
				return fmt.Sprintf("at or above %s s (the top bucket is +Inf)", num(b.hi))
			}
			return fmt.Sprintf("in (%s, %s] s", num(b.lo), num(b.hi))
		}
	}
	return "in no bucket the server returned"
}

func num(x float64) string { return strconv.FormatFloat(x, 'g', 4, 64) }

// shortName is a histogram's name as the table says it.
func shortName(metric string) string {
	for _, n := range []struct{ suffix, name string }{
		{"ttft_seconds", "TTFT"}, {"time_to_first_token_seconds", "TTFT"},
		{"itl_seconds", "ITL"}, {"inter_token_latency_seconds", "ITL"}, {"time_per_output_token_seconds", "ITL"},
		{"tpot_seconds", "TPOT"}, {"duration_seconds", "E2E"}, {"e2e_request_latency_seconds", "E2E"},
		{"schedule_lag_seconds", "schedule lag"},
	} {
		if strings.HasSuffix(metric, n.suffix) {
			return n.name
		}
	}
	return metric
}

// warnResolution warns, when some percentiles came from classic
// buckets, which and how coarse: each one's bucket.
func (h *histReader) warnResolution(who, what string) {
	if len(h.classic) == 0 {
		return
	}
	kind := "classic buckets"
	if h.vmrange {
		kind = "VictoriaMetrics' vmrange buckets (how it stores the native histograms remote-written to it)"
	}
	h.q.warn(fmt.Sprintf("%s: %s; percentiles from %s, each known only to lie in its bucket (a native histogram's error is 10 %%): %s",
		who, what, kind, strings.Join(h.resolution, "; ")))
}
