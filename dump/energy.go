package dump

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/report"
)

// gpuMetrics name a per-GPU energy counter, its power gauge and the labels
// that identify a GPU.
type gpuMetrics struct {
	energy, power, idle string  // idle: "" when the exporter has none
	scale               float64 // energy counter unit in joules
	host, gpu           string
	source              string
}

var (
	tokenwattGPU = gpuMetrics{
		energy: "tokenwatt_gpu_energy_joules_total", power: "tokenwatt_gpu_power_watts", idle: "tokenwatt_gpu_idle_power_watts",
		scale: 1, host: "hostname", gpu: "gpu", source: "tokenwatt",
	}
	dcgmGPU = gpuMetrics{
		energy: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", power: "DCGM_FI_DEV_POWER_USAGE",
		scale: 1e-3, host: "Hostname", gpu: "gpu", source: "dcgm-exporter",
	}
)

// gpuEnergy measures the GPUs selected by sel over [start, end] from the
// per-GPU energy counters, each interpolated at the window's edges. A GPU
// exported by several jobs (a loadgen and an energy-exporter) counts once.
//
// The counters are read from lookback before start to lookback after end
// (or now): reading a counter at an edge needs a sample on each side.
func gpuEnergy(ctx context.Context, q *querier, m gpuMetrics, sel string, start, end, now time.Time) (report.Energy, bool, error) {
	e := report.Energy{Source: m.source, Method: "counter", IdlePowerW: math.NaN(), PeakPowerW: math.NaN()}
	readTo := end.Add(lookback)
	if readTo.After(now) {
		readTo = now
	}
	ss, err := q.raw(ctx, withMatchers(m.energy, sel), start.Add(-lookback), readTo)
	if err != nil || len(ss) == 0 {
		return e, false, err
	}
	// The power samples of each GPU series, to read the counter at the
	// window's edges (see windowIncrease).
	ps, err := q.raw(ctx, withMatchers(m.power, sel), start.Add(-lookback), readTo)
	if err != nil {
		return e, false, err
	}
	powerOf := map[string]map[int64]float64{}
	for _, p := range ps {
		byTime := map[int64]float64{}
		for _, x := range p.Samples {
			byTime[int64(x.Timestamp)] = float64(x.Value) / m.scale
		}
		powerOf[gpuSeriesKey(p.Metric)] = byTime
	}
	// One GPU may be exported by several jobs: keep, per GPU, the series
	// that covers the window (the largest increase among those that do).
	type best struct {
		inc    float64
		edge   string
		metric model.Metric
	}
	perGPU := map[string]best{}
	for _, s := range ss {
		inc, edge := windowIncrease(s.Samples, start, end, powerOf[gpuSeriesKey(s.Metric)])
		key := string(s.Metric[model.LabelName(m.host)]) + "/" + string(s.Metric[model.LabelName(m.gpu)]) + "/" + string(s.Metric["uuid"]) + string(s.Metric["UUID"])
		b, seen := perGPU[key]
		if !seen || (b.edge != "" && edge == "") || (b.edge == "") == (edge == "") && inc > b.inc {
			perGPU[key] = best{inc * m.scale, edge, s.Metric}
		}
	}
	for _, b := range perGPU {
		if b.edge != "" {
			q.warn(fmt.Sprintf("%s: no sample beyond the window's %s edge; the nearest sample stands in, so energy may be short", b.metric, b.edge))
		}
	}
	for _, b := range perGPU {
		e.EnergyJ += b.inc
	}
	e.GPUs = len(perGPU)
	q.logf("    = %s J over %d GPU(s), each counter read at %s and %s (power held at its level outside the window)", roundish(e.EnergyJ), e.GPUs, stamp(start), stamp(end))
	if err := powerStats(ctx, q, m, sel, start, end, readTo, &e); err != nil {
		return e, true, err
	}
	return e, true, nil
}

// gpuSeriesKey identifies a GPU series across the energy and power
// metrics: every label but the name.
func gpuSeriesKey(m model.Metric) string {
	c := m.Clone()
	delete(c, model.MetricNameLabel)
	return c.String()
}

// powerStats fills peak power (highest sum of the GPUs' scraped power in
// the window) and the idle baseline (tokenwatt's gauge, where exported).
func powerStats(ctx context.Context, q *querier, m gpuMetrics, sel string, start, end, readTo time.Time, e *report.Energy) error {
	w := end.Sub(start)
	step := w / 1000
	if step < time.Second {
		step = time.Second
	}
	peak, ok, err := q.scalar(ctx, fmt.Sprintf("max_over_time(sum(max by (%s, %s) (%s))[%s:%s])",
		m.host, m.gpu, withMatchers(m.power, sel), promDuration(w), promDuration(step)), end)
	if err != nil {
		return err
	}
	if ok {
		e.PeakPowerW = peak
	}
	if m.idle == "" {
		return nil
	}
	idle, ok, err := q.scalar(ctx, fmt.Sprintf("sum(max by (%s, %s) (last_over_time(%s[%s])))",
		m.host, m.gpu, withMatchers(m.idle, sel), promDuration(readTo.Sub(start)+lookback)), readTo)
	if err != nil {
		return err
	}
	if ok {
		e.IdlePowerW = idle
	}
	return nil
}
