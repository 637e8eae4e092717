package report

import (
	"math"
	"strings"
)

// Energy is a run's measured GPU energy, as the summary needs it.
type Energy struct {
	Source, Method string   // e.g. scrape, counter
	GPUs           int      // devices measured
	EnergyJ        float64  // E(T1) − E(T0) over the run window, joules
	IdlePowerW     float64  // idle baseline, Σ devices; NaN when not measured
	PeakPowerW     float64  // highest sampled power in the window; NaN when unknown
	UUIDs          []string // the GPUs measured, in order
	Selection      string   // how they were chosen (energy.Selection.How)
	Warning        string   // a doubt about the figures; "" when none
}

const joulesPerWh = 3600

// ApplyEnergy fills the energy columns from e and the counts already in
// the row (docs/energy.md, "Run figures"): active energy
// E − P_idle·(T1 − T0), average power E/(T1 − T0), J per output token
// (and per SLO-meeting output token, with an SLO),
// Wh per 1,000 successful queries, and emissions at the row's carbon
// intensity. A column whose inputs are unknown stays empty.
func (r *Row) ApplyEnergy(e Energy) {
	r.EnergySource, r.EnergyMethod = e.Source, e.Method
	r.GPUs = &e.GPUs
	r.GPUUUIDs, r.GPUSelection, r.EnergyWarning = strings.Join(e.UUIDs, " "), e.Selection, e.Warning
	if math.IsNaN(e.EnergyJ) || e.EnergyJ < 0 {
		return
	}
	r.GPUEnergyWh = ptrF(e.EnergyJ / joulesPerWh)
	if !math.IsNaN(e.PeakPowerW) {
		r.PeakPowerW = ptrF(e.PeakPowerW)
	}
	if !math.IsNaN(e.IdlePowerW) {
		r.IdlePowerW = ptrF(e.IdlePowerW)
	}
	if d := r.TotalDurationSeconds; d != nil && *d > 0 {
		r.AvgPowerW = ptrF(e.EnergyJ / *d)
		if !math.IsNaN(e.IdlePowerW) {
			r.ActiveEnergyWh = ptrF((e.EnergyJ - e.IdlePowerW**d) / joulesPerWh)
		}
	}
	if t := r.TotalCompletionTokens; t != nil && *t > 0 {
		r.JoulesPerOutputToken = ptrF(e.EnergyJ / float64(*t))
	}
	if t := r.SLOOutputTokens; t != nil && *t > 0 {
		r.JoulesPerSLOOutputToken = ptrF(e.EnergyJ / float64(*t))
	}
	if r.SuccessfulPrompts > 0 {
		r.WhPer1000Queries = ptrF(e.EnergyJ / joulesPerWh / float64(r.SuccessfulPrompts) * 1000)
	}
	if c := r.CarbonIntensityGPerKWh; c != nil {
		r.EmissionsGCO2eq = ptrF(e.EnergyJ / 3.6e6 * *c)
	}
}

func ptrF(v float64) *float64 { return &v }
