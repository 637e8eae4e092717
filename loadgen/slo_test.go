package loadgen

import (
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

func TestMeetsSLO(t *testing.T) {
	slo := &scenario.SLO{TTFT: 100 * time.Millisecond, TPOT: 10 * time.Millisecond, E2E: time.Second}
	for _, tc := range []struct {
		name string
		rec  Record
		slo  *scenario.SLO
		want *bool
	}{
		{"within every bound", Record{Outcome: "ok", TTFT: new(0.1), TPOT: new(0.01), E2E: new(1.0)}, slo, new(true)},
		{"ttft over", Record{Outcome: "ok", TTFT: new(0.1001), TPOT: new(0.01), E2E: new(1.0)}, slo, new(false)},
		{"tpot over", Record{Outcome: "ok", TTFT: new(0.05), TPOT: new(0.011), E2E: new(0.5)}, slo, new(false)},
		{"e2e over", Record{Outcome: "ok", TTFT: new(0.05), TPOT: new(0.001), E2E: new(1.5)}, slo, new(false)},
		{"one token: no tpot to hold", Record{Outcome: "ok", TTFT: new(0.05), E2E: new(0.05)}, slo, new(true)},
		{"no text: no ttft", Record{Outcome: "ok"}, slo, new(false)},
		{"failed, however fast", Record{Outcome: "http_5xx", TTFT: new(0.01), E2E: new(0.02)}, slo, new(false)},
		{"unbound values do not count", Record{Outcome: "ok", TTFT: new(9.0), E2E: new(0.5)}, &scenario.SLO{E2E: time.Second}, new(true)},
		{"no SLO", Record{Outcome: "ok"}, nil, nil},
	} {
		got := MeetsSLO(tc.slo, &tc.rec)
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: MeetsSLO = %v, want %v", tc.name, derefBool(got), derefBool(tc.want))
		}
	}
}

func derefBool(p *bool) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestSummarySLO: goodput is the requests, and their output tokens,
// that met the SLO over the window; J per SLO-meeting output token is
// the energy over those tokens; merging adds the counts.
func TestSummarySLO(t *testing.T) {
	met, missed := new(true), new(false)
	recs := []*Record{
		{Outcome: "ok", SLOMet: met, OutputTokens: new(30)},
		{Outcome: "ok", SLOMet: met, OutputTokens: new(10)},
		{Outcome: "ok", SLOMet: missed, OutputTokens: new(50)},
		{Outcome: "timeout", SLOMet: missed, OutputTokens: new(5)},
	}
	a, b := summaryOf(recs[:2]), summaryOf(recs[2:])
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	info := goldenInfo() // a 10 s window
	info.SLO = "ttft=500ms"
	row := a.Row(info)
	row.ApplyEnergy(report.Energy{Source: "sim", EnergyJ: 200, IdlePowerW: 0, PeakPowerW: 0})
	if m, x := a.SLOOutcomes(); m != 2 || x != 2 {
		t.Errorf("outcomes %d met, %d missed; want 2, 2", m, x)
	}
	check := func(name string, got *float64, want float64) {
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if row.SLO != "ttft=500ms" || row.SLOMetRequests == nil || *row.SLOMetRequests != 2 || row.SLOOutputTokens == nil || *row.SLOOutputTokens != 40 {
		t.Fatalf("slo %q met %v tokens %v", row.SLO, row.SLOMetRequests, row.SLOOutputTokens)
	}
	check("goodput req/s", row.GoodputRequestsPerSecond, 0.2)
	check("goodput tok/s", row.GoodputOutputTokensPerSecond, 4)
	check("J per SLO token", row.JoulesPerSLOOutputToken, 5)
	check("J per token (all ok requests)", row.JoulesPerOutputToken, 200.0/90)

	rep := &report.Report{}
	rep.FillFromRow(row)
	if rep.SLO == nil || rep.SLO.Met != 2 || rep.SLO.Missed != 2 || rep.SLO.Attainment == nil || *rep.SLO.Attainment != 0.5 {
		t.Errorf("report.json slo = %+v", rep.SLO)
	}

	// Without an SLO the columns stay unknown.
	plain := summaryOf([]*Record{{Outcome: "ok", OutputTokens: new(3)}}).Row(goldenInfo())
	if plain.SLO != "" || plain.SLOMetRequests != nil || plain.GoodputRequestsPerSecond != nil {
		t.Errorf("no SLO: %q %v %v", plain.SLO, plain.SLOMetRequests, plain.GoodputRequestsPerSecond)
	}
	rep = &report.Report{}
	rep.FillFromRow(plain)
	if rep.SLO != nil {
		t.Errorf("no SLO: report.json slo = %+v", rep.SLO)
	}
}
