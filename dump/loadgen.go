package dump

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

// loadgenRow computes one loadgen run's row: every target (loadgen
// process) of the run summed.
func loadgenRow(ctx context.Context, q *querier, o Options, r *run, now time.Time) (*report.Row, error) {
	start, end := r.start, r.end
	if !end.After(start) {
		return nil, fmt.Errorf("empty window %s to %s", stamp(start), stamp(end))
	}
	// A run's counters are final at its end, but the scrape that saw
	// them may come up to a scrape interval later: read on past the end
	// unless the user cut the window there.
	// A window the user ended (--end) is read to the scrape that covers
	// its end: each counter's first sample at or after it.
	limit := end.Add(lookback)
	if limit.After(now) {
		limit = now
	}
	readTo := limit
	if !o.End.IsZero() {
		readTo = end
	}
	q.logf("  window %s to %s (%.3f s); counters read to %s", stamp(start), stamp(end), end.Sub(start).Seconds(), stamp(readTo))
	runSel := "run_id=" + quote(r.id)
	row := rowFromInfo(r)
	d := end.Sub(start).Seconds()
	row.TotalDurationSeconds = &d
	row.Timestamp = end.UTC()

	reqs, reqSeries, err := readCounter(ctx, q, withMatchers("tokenwatt_requests_total", runSel), "outcome", start, readTo, limit)
	if err != nil {
		return nil, err
	}
	if !reqs.found {
		return nil, fmt.Errorf("no tokenwatt_requests_total samples from %s to %s", stamp(start.Add(-lookback)), stamp(limit))
	}
	counterEnd := readTo
	if reqs.readTo.After(readTo) {
		readTo = reqs.readTo
		q.logf("  counters at --end read from the scrape that covers it, at %s", stamp(readTo))
	}
	total, ok := intOf(reqs.total), intOf(reqs.byLabel["ok"])
	row.TotalPrompts, row.SuccessfulPrompts, row.FailedPrompts = int(total), int(ok), int(total-ok)
	for _, c := range []struct {
		metric string
		dst    **int64
	}{
		{"tokenwatt_prompt_tokens_total", &row.TotalPromptTokens},
		{"tokenwatt_output_tokens_total", &row.TotalCompletionTokens},
	} {
		t, _, err := readCounter(ctx, q, withMatchers(c.metric, runSel), "", start, counterEnd, limit)
		if err != nil {
			return nil, err
		}
		if t.found {
			*c.dst = ptr(intOf(t.total))
		}
	}
	if row.TotalPromptTokens != nil && row.TotalCompletionTokens != nil {
		row.TotalTokens = ptr(*row.TotalPromptTokens + *row.TotalCompletionTokens)
	}
	failures := map[string]int{}
	for outcome, n := range reqs.byLabel {
		if outcome != "ok" {
			failures[outcome] = int(intOf(n))
		}
	}
	row.Failures = report.FormatFailures(failures)
	var capWaits counterTotals
	for _, c := range []struct {
		metric string
		dst    **int64
	}{
		{"tokenwatt_failed_prompt_tokens_total", &row.FailedPromptTokens},
		{"tokenwatt_failed_output_tokens_total", &row.FailedOutputTokens},
		{"tokenwatt_cap_waits_total", nil},
	} {
		t, _, err := readCounter(ctx, q, withMatchers(c.metric, runSel), "", start, counterEnd, limit)
		if err != nil {
			return nil, err
		}
		if c.dst == nil {
			capWaits = t
		} else if t.found && t.total > 0 {
			*c.dst = ptr(intOf(t.total))
		}
	}
	if err := sloGoodput(ctx, q, r, row, runSel, start, counterEnd, limit, d); err != nil {
		return nil, err
	}
	if d > 0 {
		row.CompletionRate = ptr(float64(ok) / d)
	}
	// The achieved send rate over the run's own sends: from its start
	// (the first send) to its last send, which the run exports at its end.
	if o.Start.IsZero() && o.End.IsZero() && total > 1 {
		last, found, err := q.scalar(ctx, fmt.Sprintf("max(last_over_time(%s[%s]))",
			withMatchers("tokenwatt_run_last_send_timestamp_seconds", runSel), promDuration(readTo.Sub(start)+lookback)), readTo)
		if err != nil {
			return nil, err
		}
		if span := fromSeconds(last).Sub(start).Seconds(); found && span > 0 {
			row.SendRate = ptr(float64(total) / span)
		}
	}
	if d > 0 {
		if row.TotalTokens != nil {
			row.ThroughputTokensPerSecond = ptr(float64(*row.TotalTokens) / d)
		}
		if row.TotalCompletionTokens != nil {
			row.OutputThroughputTokensPerSecond = ptr(float64(*row.TotalCompletionTokens) / d)
		}
	}

	// Each target's last scrape, whether its counters started in the
	// window and never reset (cumulative histograms are then exact), and
	// its scrape gaps.
	cumulative := true
	byTarget := map[string][]series{}
	for _, s := range reqSeries {
		k := matcherFor([]target{{labels: targetLabels(s.Metric)}})
		byTarget[k] = append(byTarget[k], s)
	}
	var targets []targetAt
	for k, ss := range byTarget {
		var last time.Time
		for _, s := range ss {
			_, baseline, born, resets := counterIncrease(s.Samples, start, readTo)
			if resets > 0 || (!born && baseline != 0) {
				cumulative = false
			}
			for _, p := range s.Samples {
				if t := p.Timestamp.Time(); !t.After(readTo) && t.After(last) {
					last = t
				}
			}
		}
		targets = append(targets, targetAt{matcher: k, at: last})
		s := ss[0]
		if iv := medianInterval(s.Samples); iv > 0 {
			for _, g := range gaps(s.Samples, start, end, 2*iv+iv/2) {
				q.warn(fmt.Sprintf("run %s: scrape gap in {%s}: %s, against a usual %s; counts stay exact, latency and energy span it", r.id, k, g, iv))
			}
		}
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].matcher < targets[j].matcher })
	mode := "cumulative: each loadgen's last scraped histogram (they started empty in the window)"
	if !cumulative {
		mode = "increase() over the window (a counter reset, or a window that starts mid-run)"
	}
	q.logf("  histograms: %s", mode)

	h := &histReader{q: q, sel: runSel, cumulative: cumulative, targets: targets, start: start, end: end, readTo: readTo}
	ttft, err := h.read(ctx, "tokenwatt_request_ttft_seconds")
	if err != nil {
		return nil, err
	}
	row.TTFTP50Seconds, row.TTFTP90Seconds, row.TTFTP99Seconds, row.TTFTMeanSeconds = ttft.p50, ttft.p90, ttft.p99, ttft.mean
	itl, err := h.read(ctx, "tokenwatt_request_itl_seconds")
	if err != nil {
		return nil, err
	}
	row.ITLP50Seconds, row.ITLP90Seconds, row.ITLP99Seconds = itl.p50, itl.p90, itl.p99
	tpot, err := h.read(ctx, "tokenwatt_request_tpot_seconds")
	if err != nil {
		return nil, err
	}
	row.TPOTMeanSeconds = tpot.mean
	e2e, err := h.read(ctx, "tokenwatt_request_duration_seconds")
	if err != nil {
		return nil, err
	}
	row.E2EP50Seconds, row.E2EP90Seconds, row.E2EP99Seconds = e2e.p50, e2e.p90, e2e.p99
	// avg_latency_seconds is the mean E2E of successful requests, which
	// is what the histogram holds.
	row.AvgLatencySeconds = e2e.mean
	lag, err := h.read(ctx, "tokenwatt_request_schedule_lag_seconds")
	if err != nil {
		return nil, err
	}
	row.ScheduleLagP99Seconds = lag.p99
	h.warnResolution("run "+r.id, "no native histograms stored for "+strings.Join(h.classic, ", "))

	// Whether the client limited the run at any time.
	sat, found, err := q.scalar(ctx, fmt.Sprintf("max(max_over_time(%s[%s]))",
		withMatchers("tokenwatt_client_saturated", runSel), promDuration(readTo.Sub(start))), readTo)
	if err != nil {
		return nil, err
	}
	if found {
		row.ClientSaturated = ptr(sat >= 1)
	}
	if capWaits.found {
		p := report.Pacing{Paced: total, CapWaits: intOf(capWaits.total), ClientSaturated: row.ClientSaturated != nil && *row.ClientSaturated}
		if row.Concurrency != nil {
			p.Concurrency = *row.Concurrency
		}
		row.RateWarning = report.RateShortfall(row, p)
	}

	// Carbon intensity: the flag, else the run's own.
	if o.CarbonIntensity != nil {
		row.CarbonIntensityGPerKWh = o.CarbonIntensity
	} else {
		c, found, err := q.scalar(ctx, fmt.Sprintf("max(last_over_time(%s[%s]))",
			withMatchers("tokenwatt_carbon_intensity_grams_per_kwh", runSel), promDuration(readTo.Sub(start)+lookback)), readTo)
		if err != nil {
			return nil, err
		}
		if found && c > 0 {
			row.CarbonIntensityGPerKWh = &c
		}
	}

	e, measured, err := runEnergy(ctx, q, o, r, runSel, start, end, counterEnd, readTo, limit, now)
	if err != nil {
		return nil, err
	}
	if measured {
		row.ApplyEnergy(e)
	} else {
		row.EnergySource = "none"
	}
	return row, nil
}

// runEnergy measures a run's GPU energy as o.EnergyMetric says.
func runEnergy(ctx context.Context, q *querier, o Options, r *run, runSel string, start, end, counterEnd, readTo, limit, now time.Time) (report.Energy, bool, error) {
	targetSel := matcherFor(r.targets)
	switch o.EnergyMetric {
	case EnergyNone:
		return report.Energy{}, false, nil
	case EnergyDCGM:
		if o.GPUSelector == "" {
			q.warn("energy: every GPU dcgm-exporter exports is counted; narrow it with --gpu-selector")
		}
		q.logf("  energy: dcgm-exporter's counter (mJ) on the GPUs matching {%s}", o.GPUSelector)
		e, ok, err := gpuEnergy(ctx, q, dcgmGPU, o.GPUSelector, start, end, now)
		if err == nil && !ok {
			err = fmt.Errorf("energy: no DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{%s} series (is dcgm-exporter scraped?)", o.GPUSelector)
		}
		return e, ok, err
	case EnergyTokenwatt, EnergyAuto:
	default:
		return report.Energy{}, false, fmt.Errorf("unknown energy metric %q (want auto, tokenwatt, dcgm or none)", o.EnergyMetric)
	}
	info := r.targets[0].info
	if o.EnergyMetric == EnergyAuto && o.GPUSelector == "" && len(r.targets) == 1 {
		// The run's own account: the attributed energy counter adds up, by
		// construction, to the GPU energy of the run window that the local
		// summary reports, measured at the loadgen's sampling interval.
		q.logf("  energy: the run's attributed energy (prefill + decode + idle)")
		t, _, err := readCounter(ctx, q, withMatchers("tokenwatt_attributed_energy_joules_total", runSel), "phase", start, counterEnd, limit)
		if err != nil {
			return report.Energy{}, false, err
		}
		if t.found {
			e := report.Energy{Source: string(info["energy_source"]), Method: string(info["energy_method"]),
				EnergyJ: t.total, IdlePowerW: math.NaN(), PeakPowerW: math.NaN(), UUIDs: runGPUUUIDs(r)}
			gpus, found, err := q.scalar(ctx, fmt.Sprintf("count(max %s (last_over_time(%s[%s])))",
				tokenwattGPU.byGPU(), withMatchers(tokenwattGPU.energy, targetSel), promDuration(readTo.Sub(start))), readTo)
			if err != nil {
				return e, false, err
			}
			if found {
				e.GPUs = int(gpus)
			}
			if err := powerStats(ctx, q, tokenwattGPU, targetSel, start, end, readTo, &e); err != nil {
				return e, false, err
			}
			return e, true, nil
		}
		if info["energy_source"] == "none" || info["energy_source"] == "" {
			q.logf("  energy: none (the run had no energy source)")
			return report.Energy{}, false, nil
		}
	}
	sel := o.GPUSelector
	if sel == "" {
		// Several loadgens may share GPUs: count each GPU once, from the
		// per-GPU counters the run's loadgens exported.
		sel = targetSel
	}
	q.logf("  energy: tokenwatt_gpu_energy_joules_total on the GPUs matching {%s}", sel)
	e, ok, err := gpuEnergy(ctx, q, tokenwattGPU, sel, start, end, now)
	if ok && o.GPUSelector == "" {
		e.Source, e.Method = string(info["energy_source"]), string(info["energy_method"])
		e.UUIDs = runGPUUUIDs(r)
	}
	return e, ok, err
}

// sloGoodput fills the row's SLO columns from the SLO counters, when
// every loadgen of the run had the same SLO (tokenwatt_run_info's slo);
// the J per SLO-meeting output token comes with the energy.
func sloGoodput(ctx context.Context, q *querier, r *run, row *report.Row, runSel string, start, counterEnd, limit time.Time, d float64) error {
	slo := string(r.targets[0].info["slo"])
	for _, t := range r.targets {
		if string(t.info["slo"]) != slo {
			q.warn("the run's loadgens had different SLOs: no goodput")
			return nil
		}
	}
	if slo == "" {
		return nil
	}
	reqs, _, err := readCounter(ctx, q, withMatchers("tokenwatt_slo_requests_total", runSel), "slo", start, counterEnd, limit)
	if err != nil || !reqs.found {
		return err
	}
	tokens, _, err := readCounter(ctx, q, withMatchers("tokenwatt_slo_output_tokens_total", runSel), "", start, counterEnd, limit)
	if err != nil {
		return err
	}
	row.SLO = slo
	met := int(intOf(reqs.byLabel["met"]))
	row.SLOMetRequests = &met
	if tokens.found {
		row.SLOOutputTokens = ptr(intOf(tokens.total))
	}
	if d > 0 {
		row.GoodputRequestsPerSecond = ptr(float64(met) / d)
		if row.SLOOutputTokens != nil {
			row.GoodputOutputTokensPerSecond = ptr(float64(*row.SLOOutputTokens) / d)
		}
	}
	return nil
}

// runGPUUUIDs are the GPUs the run's loadgens measured
// (tokenwatt_run_info's gpu_uuids), each once, in the order first seen.
func runGPUUUIDs(r *run) []string {
	var uuids []string
	for _, tg := range r.targets {
		for _, u := range strings.Fields(string(tg.info["gpu_uuids"])) {
			if !slices.Contains(uuids, u) {
				uuids = append(uuids, u)
			}
		}
	}
	return uuids
}

// rowFromInfo fills the row's descriptive columns from the targets'
// tokenwatt_run_info labels: settings that differ between loadgens are
// summed (rates, concurrency, warm-up) or joined (endpoints).
func rowFromInfo(r *run) *report.Row {
	info := r.targets[0].info
	row := &report.Row{
		BenchmarkName: cmp.Or(string(info["benchmark"]), string(info["scenario"])),
		Backend:       string(info["backend"]),
		Model:         string(info["model"]),
		RunID:         r.id,
		Scenario:      string(info["scenario"]),
	}
	var endpoints, arrivals []string
	var rate float64
	var conc, warm int
	rateOK, concOK, warmOK := true, true, true
	for _, t := range r.targets {
		m := t.info
		row.Simulated = row.Simulated || m["simulated"] == "true"
		if e := string(m["endpoint"]); e != "" {
			endpoints = append(endpoints, e)
		}
		if a := string(m["arrival"]); a != "" {
			arrivals = append(arrivals, a)
		}
		if x, err := strconv.ParseFloat(string(m["rate"]), 64); err == nil {
			rate += x
		} else {
			rateOK = false
		}
		if x, err := strconv.Atoi(string(m["concurrency"])); err == nil {
			conc += x
		} else {
			concOK = false
		}
		if x, err := strconv.Atoi(string(m["warmup"])); err == nil {
			warm += x
		} else {
			warmOK = false
		}
	}
	row.Endpoint = strings.Join(uniq(endpoints), " ")
	if a := uniq(arrivals); len(a) == 1 {
		row.Arrival = a[0]
	}
	if rateOK {
		row.RequestRate = &rate
	}
	if concOK {
		row.Concurrency = &conc
	}
	if warmOK {
		row.WarmupRequests = &warm
	}
	return row
}

func ptr[T any](v T) *T { return &v }
