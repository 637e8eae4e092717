package dump

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/report"
)

// gpuMetrics name a per-GPU energy counter, its power gauge and the labels
// that identify a physical GPU.
type gpuMetrics struct {
	energy, power, idle string  // idle: "" when the exporter has none
	scale               float64 // energy counter unit in joules
	// gpuLabels identify a physical GPU: the series of one GPU that share
	// them count once.
	gpuLabels []string
	source    string
}

var (
	// tokenwatt's series are one per GPU and exporting job. A loadgen and
	// an energy-exporter may give one GPU different hostname (a pod's
	// name, NODE_NAME) and gpu labels, and two containers may both be
	// localhost: the uuid alone names the GPU.
	tokenwattGPU = gpuMetrics{
		energy: "tokenwatt_gpu_energy_joules_total", power: "tokenwatt_gpu_power_watts", idle: "tokenwatt_gpu_idle_power_watts",
		scale: 1, gpuLabels: []string{"uuid"}, source: "tokenwatt",
	}
	// dcgm-exporter repeats a GPU's device-level fields, energy and power
	// among them, on each MIG instance's series (GPU_I_ID) and each pod's
	// using it, with the same value. The host label is Hostname up to
	// dcgm-exporter 4.8, hostname since; gpu keeps apart GPUs exported
	// without a UUID.
	dcgmGPU = gpuMetrics{
		energy: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", power: "DCGM_FI_DEV_POWER_USAGE",
		scale: 1e-3, gpuLabels: []string{"UUID", "gpu", "Hostname", "hostname"}, source: "dcgm-exporter",
	}
)

// gpuKey is the physical GPU a series of m belongs to.
func (m gpuMetrics) gpuKey(l model.Metric) string {
	parts := make([]string, len(m.gpuLabels))
	for i, n := range m.gpuLabels {
		parts[i] = string(l[model.LabelName(n)])
	}
	return strings.Join(parts, "/")
}

// byGPU is the PromQL grouping that keeps one series per physical GPU.
func (m gpuMetrics) byGPU() string { return "by (" + strings.Join(m.gpuLabels, ", ") + ")" }

// gpuEnergy measures the GPUs selected by sel over [start, end] from the
// per-GPU energy counters, each interpolated at the window's edges. A
// physical GPU counts once, however many series it has: exported by
// several jobs (a loadgen and an energy-exporter), or repeated per MIG
// instance and per pod (dcgm-exporter).
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
	// One GPU may have several series: keep, per GPU, the series that
	// covers the window (the largest increase among those that do).
	type best struct {
		inc    float64
		edge   string
		metric model.Metric
	}
	perGPU := map[string]best{}
	for _, s := range ss {
		inc, edge := windowIncrease(s.Samples, start, end, powerOf[gpuSeriesKey(s.Metric)])
		key := m.gpuKey(s.Metric)
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
		for _, l := range []model.LabelName{"UUID", "uuid"} {
			if u := string(b.metric[l]); u != "" {
				e.UUIDs = append(e.UUIDs, u)
				break
			}
		}
	}
	sort.Strings(e.UUIDs)
	e.UUIDs = slices.Compact(e.UUIDs)
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
	peak, ok, err := q.scalar(ctx, fmt.Sprintf("max_over_time(sum(max %s (%s))[%s:%s])",
		m.byGPU(), withMatchers(m.power, sel), promDuration(w), promDuration(step)), end)
	if err != nil {
		return err
	}
	if ok {
		e.PeakPowerW = peak
	}
	if m.idle == "" {
		return nil
	}
	idle, ok, err := q.scalar(ctx, fmt.Sprintf("sum(max %s (last_over_time(%s[%s])))",
		m.byGPU(), withMatchers(m.idle, sel), promDuration(readTo.Sub(start)+lookback)), readTo)
	if err != nil {
		return err
	}
	if ok {
		e.IdlePowerW = idle
	}
	return nil
}
