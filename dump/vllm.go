package dump

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/tokenwatt/tokenwatt/report"
)

// vllmRow computes a row for a vLLM server from its own vllm:* metrics
// over [Start, End] (default: the last Since), with GPU energy from
// dcgm-exporter or tokenwatt's energy-exporter. No loadgen is involved,
// so the run's settings (rate, concurrency, endpoint) are unknown and a
// request counts where vLLM counts it: as it finishes.
func vllmRow(ctx context.Context, q *querier, o Options, now time.Time) (*report.Row, error) {
	row, err := vllmMeasure(ctx, q, o, now)
	if err == nil {
		explainEmpty(q, row)
	}
	return row, err
}

// vllmUnknowable are the columns a row from vLLM's metrics cannot fill,
// and why.
var vllmUnknowable = []struct{ columns, why string }{
	{"scenario endpoint request_rate concurrency arrival warmup_requests",
		"vLLM's metrics do not say how the load was sent (no tokenwatt loadgen ran)"},
	{"schedule_lag_p99_seconds client_saturated", "only tokenwatt's client measures them"},
	{"run_id", "give --run-id to name the row"},
	{"gpu_selection energy_warning", "they describe a loadgen's own GPU choice"},
}

// explainEmpty warns, in one line, which columns of a --source vllm row
// are empty and why.
func explainEmpty(q *querier, row *report.Row) {
	why := map[string]string{}
	for _, u := range vllmUnknowable {
		for _, c := range strings.Fields(u.columns) {
			why[c] = u.why
		}
	}
	if row.AvgLatencySeconds == nil && row.FailedPrompts > 0 {
		why["avg_latency_seconds"] = fmt.Sprintf("it is the mean E2E of successful requests, and vLLM's E2E histogram also holds the %d aborted ones", row.FailedPrompts)
	}
	if row.EnergySource == "none" || row.EnergySource == "" {
		for _, c := range strings.Fields("energy_method gpus gpu_energy_wh active_energy_wh avg_power_w peak_power_w idle_power_w joules_per_output_token wh_per_1000_queries emissions_g_co2eq gpu_uuids") {
			why[c] = "no energy measured (see above)"
		}
	}
	if row.TPOTMeanSeconds == nil {
		why["tpot_mean_seconds"] = "no vllm:request_time_per_output_token_seconds observations (vLLM before 0.10 has none)"
	}
	if row.IdlePowerW == nil && row.GPUEnergyWh != nil {
		why["idle_power_w"] = "no idle baseline for these GPUs (a tokenwatt loadgen run measures one; dcgm-exporter has none)"
		why["active_energy_wh"] = why["idle_power_w"]
	}
	if row.GPUUUIDs == "" && row.GPUEnergyWh != nil {
		why["gpu_uuids"] = "the energy series carry no UUID label"
	}
	if row.CarbonIntensityGPerKWh == nil {
		why["carbon_intensity_g_per_kwh"] = "give --carbon-intensity"
		why["emissions_g_co2eq"] = "no carbon intensity (give --carbon-intensity)"
	}
	var order []string
	byWhy := map[string][]string{}
	cells := row.Record()
	for i, c := range report.Columns() {
		if cells[i] != "" {
			continue
		}
		w := why[c]
		if w == "" {
			w = "no samples of it in the window"
		}
		if byWhy[w] == nil {
			order = append(order, w)
		}
		byWhy[w] = append(byWhy[w], c)
	}
	if len(order) == 0 {
		return
	}
	var parts []string
	for _, w := range order {
		parts = append(parts, strings.Join(byWhy[w], ", ")+": "+w)
	}
	q.warn("vllm: columns left empty: " + strings.Join(parts, "; "))
}

// vllmMeasure is vllmRow's row, before the account of its empty columns.
func vllmMeasure(ctx context.Context, q *querier, o Options, now time.Time) (*report.Row, error) {
	end := o.End
	if end.IsZero() {
		end = now
	}
	start := o.Start
	if start.IsZero() {
		start = end.Add(-o.Since)
	}
	if !end.After(start) {
		return nil, fmt.Errorf("empty window %s to %s", stamp(start), stamp(end))
	}
	sel := ""
	if o.Model != "" {
		sel = "model_name=~" + quote(regexp.QuoteMeta(o.Model))
	}
	q.logf("vLLM server {%s}: window %s to %s (%.3f s)", sel, stamp(start), stamp(end), end.Sub(start).Seconds())
	// Each counter is read to the scrape that covers the window's end:
	// its first sample at or after end, looked for up to a lookback later.
	limit := end.Add(lookback)
	if limit.After(now) {
		limit = now
	}

	reqs, reqSeries, err := readCounter(ctx, q, withMatchers("vllm:request_success_total", sel), "finished_reason", start, end, limit)
	if err != nil {
		return nil, err
	}
	if reqs.found && !hasLabel(reqSeries, "finished_reason") && hasLabel(reqSeries, "finish_reason") {
		// The label's other spelling (OpenAI's finish_reason).
		if reqs, reqSeries, err = readCounter(ctx, q, withMatchers("vllm:request_success_total", sel), "finish_reason", start, end, limit); err != nil {
			return nil, err
		}
	}
	if !reqs.found {
		return nil, notFoundf("no vllm:request_success_total{%s} samples from %s to %s (is Prometheus scraping vLLM's /metrics?)",
			sel, stamp(start.Add(-lookback)), stamp(end))
	}
	readTo := end
	if reqs.readTo.After(end) {
		readTo = reqs.readTo
		q.logf("  counters read to the scrape that covers the window's end, at %s", stamp(readTo))
	} else if end.Before(now) {
		q.warn(fmt.Sprintf("vllm: no scrape of vllm:request_success_total at or after the window's end %s yet; requests that finished after the last scrape before it are not counted", stamp(end)))
	}
	var models []string
	for _, s := range reqSeries {
		models = append(models, string(s.Metric["model_name"]))
	}
	total := intOf(reqs.total)
	// vLLM counts every finished request here; finished_reason "abort"
	// (client gone, server error) is the only failure it records.
	failed := intOf(reqs.byLabel["abort"])
	d := end.Sub(start).Seconds()
	row := &report.Row{
		BenchmarkName:        "vllm",
		Backend:              "vllm",
		Model:                strings.Join(uniq(models), " "),
		RunID:                o.RunID,
		TotalPrompts:         int(total),
		SuccessfulPrompts:    int(total - failed),
		FailedPrompts:        int(failed),
		TotalDurationSeconds: &d,
		Timestamp:            end.UTC(),
	}
	for _, c := range []struct {
		metric string
		dst    **int64
	}{
		{"vllm:prompt_tokens_total", &row.TotalPromptTokens},
		{"vllm:generation_tokens_total", &row.TotalCompletionTokens},
	} {
		t, _, err := readCounter(ctx, q, withMatchers(c.metric, sel), "", start, end, limit)
		if err != nil {
			return nil, err
		}
		if t.found {
			*c.dst = ptr(intOf(t.total))
		}
	}
	// Throughput is over the time requests were finishing, not over the
	// window: a --since 5m around a 20 s benchmark would divide by 300 s.
	active, activeOK := activePeriod(reqSeries, start, readTo)
	if activeOK {
		q.logf("  active: requests finished from %s to %s (%.3f s, to the scrape)", stamp(active.from), stamp(active.to), active.to.Sub(active.from).Seconds())
	} else {
		q.warn("vllm: no request finished between two scrapes inside the window; throughput left empty")
	}
	ad := active.to.Sub(active.from).Seconds()
	if row.TotalPromptTokens != nil && row.TotalCompletionTokens != nil {
		row.TotalTokens = ptr(*row.TotalPromptTokens + *row.TotalCompletionTokens)
		if activeOK {
			row.ThroughputTokensPerSecond = ptr(float64(*row.TotalTokens) / ad)
		}
	}
	if row.TotalCompletionTokens != nil && activeOK {
		row.OutputThroughputTokensPerSecond = ptr(float64(*row.TotalCompletionTokens) / ad)
	}

	h := &histReader{q: q, sel: sel, start: start, end: end, readTo: readTo}
	ttft, err := h.read(ctx, "vllm:time_to_first_token_seconds")
	if err != nil {
		return nil, err
	}
	row.TTFTP50Seconds, row.TTFTP90Seconds, row.TTFTP99Seconds, row.TTFTMeanSeconds = ttft.p50, ttft.p90, ttft.p99, ttft.mean
	itl, err := h.read(ctx, "vllm:inter_token_latency_seconds")
	if err != nil {
		return nil, err
	}
	if itl.p50 == nil {
		// vLLM before 0.10 had only the older name.
		if itl, err = h.read(ctx, "vllm:time_per_output_token_seconds"); err != nil {
			return nil, err
		}
	}
	row.ITLP50Seconds, row.ITLP90Seconds, row.ITLP99Seconds = itl.p50, itl.p90, itl.p99
	tpot, err := h.read(ctx, "vllm:request_time_per_output_token_seconds")
	if err != nil {
		return nil, err
	}
	row.TPOTMeanSeconds = tpot.mean
	if tpot.mean == nil {
		q.warn("vllm: no vllm:request_time_per_output_token_seconds observations in the window (vLLM before 0.10 has none); tpot_mean_seconds left empty")
	}
	e2e, err := h.read(ctx, "vllm:e2e_request_latency_seconds")
	if err != nil {
		return nil, err
	}
	row.E2EP50Seconds, row.E2EP90Seconds, row.E2EP99Seconds = e2e.p50, e2e.p90, e2e.p99
	h.warnResolution("vllm", "vLLM exports classic buckets only ("+strings.Join(h.classic, ", ")+")")
	if failed == 0 {
		row.AvgLatencySeconds = e2e.mean
	}
	row.CarbonIntensityGPerKWh = o.CarbonIntensity

	metric := o.EnergyMetric
	if metric == EnergyAuto {
		metric = EnergyDCGM
		v, err := q.vector(ctx, fmt.Sprintf("count(last_over_time(%s[%s]))", withMatchers(dcgmGPU.energy, o.GPUSelector), promDuration(end.Sub(start))), end)
		if err != nil {
			return nil, err
		}
		if len(v) == 0 {
			metric = EnergyTokenwatt
		}
	}
	var m gpuMetrics
	switch metric {
	case EnergyNone:
		row.EnergySource = "none"
		return row, nil
	case EnergyDCGM:
		m = dcgmGPU
	case EnergyTokenwatt:
		m = tokenwattGPU
	default:
		return nil, fmt.Errorf("unknown energy metric %q (want auto, tokenwatt, dcgm or none)", o.EnergyMetric)
	}
	if o.GPUSelector == "" {
		q.warn(fmt.Sprintf("energy: every GPU with %s is counted; narrow it to the vLLM server's with --gpu-selector", m.energy))
	}
	q.logf("  energy: %s on the GPUs matching {%s}", m.energy, o.GPUSelector)
	e, ok, err := gpuEnergy(ctx, q, m, o.GPUSelector, start, end, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		q.warn(fmt.Sprintf("energy: no %s{%s} series; energy columns left empty", m.energy, o.GPUSelector))
		row.EnergySource = "none"
		return row, nil
	}
	row.ApplyEnergy(e)
	return row, nil
}

// hasLabel reports whether some series carries label name.
func hasLabel(ss []series, name string) bool {
	for _, s := range ss {
		if _, ok := s.Metric[model.LabelName(name)]; ok {
			return true
		}
	}
	return false
}

// span is a stretch of time.
type span struct{ from, to time.Time }

// activePeriod is when requests were finishing within [start, end]: from
// the last scrape before the summed request counter first grew, to the
// scrape at which it last grew. ok is false when it never grew.
func activePeriod(ss []series, start, end time.Time) (span, bool) {
	type point struct {
		t time.Time
		v float64
	}
	// The counters' sum at each scrape time, each series carrying its
	// last value forward.
	var times []time.Time
	seen := map[int64]bool{}
	for _, s := range ss {
		for _, p := range s.Samples {
			if ms := int64(p.Timestamp); !seen[ms] {
				seen[ms] = true
				times = append(times, p.Timestamp.Time())
			}
		}
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	sums := make([]point, 0, len(times))
	idx := make([]int, len(ss))
	last := make([]float64, len(ss))
	for _, t := range times {
		sum := 0.0
		for k, s := range ss {
			for idx[k] < len(s.Samples) && !s.Samples[idx[k]].Timestamp.Time().After(t) {
				last[k] = float64(s.Samples[idx[k]].Value)
				idx[k]++
			}
			sum += last[k]
		}
		sums = append(sums, point{t, sum})
	}
	var a span
	found := false
	for i := 1; i < len(sums); i++ {
		if sums[i].t.After(end) || !sums[i].t.After(start) || sums[i].v == sums[i-1].v {
			continue
		}
		if !found {
			a.from, found = sums[i-1].t, true
			if a.from.Before(start) {
				a.from = start
			}
		}
		a.to = sums[i].t
	}
	return a, found && a.to.After(a.from)
}
