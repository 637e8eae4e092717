package dump

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

// vllmRow computes a row for a vLLM server from its own vllm:* metrics
// over [Start, End] (default: the last Since), with GPU energy from
// dcgm-exporter or tokenwatt's energy-exporter. No loadgen is involved,
// so the run's settings (rate, concurrency, endpoint) are unknown and a
// request counts where vLLM counts it: as it finishes.
func vllmRow(ctx context.Context, q *querier, o Options, now time.Time) (*report.Row, error) {
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

	reqs, reqSeries, err := readCounter(ctx, q, withMatchers("vllm:request_success_total", sel), "finished_reason", start, end)
	if err != nil {
		return nil, err
	}
	if !reqs.found {
		return nil, notFoundf("no vllm:request_success_total{%s} samples from %s to %s (is Prometheus scraping vLLM's /metrics?)",
			sel, stamp(start.Add(-lookback)), stamp(end))
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
		t, _, err := readCounter(ctx, q, withMatchers(c.metric, sel), "", start, end)
		if err != nil {
			return nil, err
		}
		if t.found {
			*c.dst = ptr(intOf(t.total))
		}
	}
	if row.TotalPromptTokens != nil && row.TotalCompletionTokens != nil {
		row.TotalTokens = ptr(*row.TotalPromptTokens + *row.TotalCompletionTokens)
		row.ThroughputTokensPerSecond = ptr(float64(*row.TotalTokens) / d)
	}
	if row.TotalCompletionTokens != nil {
		row.OutputThroughputTokensPerSecond = ptr(float64(*row.TotalCompletionTokens) / d)
	}

	h := &histReader{q: q, sel: sel, start: start, end: end, readTo: end}
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
	e2e, err := h.read(ctx, "vllm:e2e_request_latency_seconds")
	if err != nil {
		return nil, err
	}
	row.E2EP50Seconds, row.E2EP90Seconds, row.E2EP99Seconds = e2e.p50, e2e.p90, e2e.p99
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
