package report

import (
	"math"
	"testing"
)

func TestApplyEnergy(t *testing.T) {
	dur, intensity := 100.0, 475.0
	tokens := int64(36000)
	r := &Row{TotalDurationSeconds: &dur, TotalCompletionTokens: &tokens, SuccessfulPrompts: 360, CarbonIntensityGPerKWh: &intensity}
	// 36 kJ over 100 s with a 200 W idle baseline.
	r.ApplyEnergy(Energy{Source: "dcgm", Method: "counter", GPUs: 2, EnergyJ: 36000, IdlePowerW: 200, PeakPowerW: 510})
	for _, c := range []struct {
		name string
		got  *float64
		want float64
	}{
		{"gpu_energy_wh", r.GPUEnergyWh, 10},
		{"active_energy_wh", r.ActiveEnergyWh, (36000 - 200*100) / 3600.0},
		{"avg_power_w", r.AvgPowerW, 360},
		{"peak_power_w", r.PeakPowerW, 510},
		{"idle_power_w", r.IdlePowerW, 200},
		{"joules_per_output_token", r.JoulesPerOutputToken, 1},
		{"wh_per_1000_queries", r.WhPer1000Queries, 10.0 / 360 * 1000},
		{"emissions_g_co2eq", r.EmissionsGCO2eq, 0.01 * 475},
	} {
		if c.got == nil || math.Abs(*c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, deref(c.got), c.want)
		}
	}
	if r.EnergySource != "dcgm" || r.EnergyMethod != "counter" || *r.GPUs != 2 {
		t.Errorf("source/method/gpus: %q %q %v", r.EnergySource, r.EnergyMethod, *r.GPUs)
	}
}

func TestApplyEnergyLeavesUnknownsEmpty(t *testing.T) {
	r := &Row{}
	r.ApplyEnergy(Energy{Source: "scrape", Method: "integrated", GPUs: 1, EnergyJ: 100, IdlePowerW: math.NaN(), PeakPowerW: math.NaN()})
	if r.GPUEnergyWh == nil || r.IdlePowerW != nil || r.ActiveEnergyWh != nil || r.AvgPowerW != nil ||
		r.JoulesPerOutputToken != nil || r.WhPer1000Queries != nil || r.EmissionsGCO2eq != nil || r.PeakPowerW != nil {
		t.Fatalf("unknown inputs produced values: %+v", r)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
