package main

import (
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/tokenwatt/tokenwatt/report"
)

// counterValue is the counter name's value in the series whose label has
// value (label "" sums every series).
func counterValue(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	var v float64
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if label == "" || (l.GetName() == label && l.GetValue() == value) {
				v += m.GetCounter().GetValue()
				break
			}
		}
	}
	return v
}

// TestSLOGoodput: with --slo every record says whether it met the SLO
// (ok, and each bound held), and the summary, report.json, the table
// and the metrics count the same requests: goodput over the window and
// the energy over their output tokens.
func TestSLOGoodput(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	const ttftBound, e2eBound = 0.009, 0.04
	res, fams := runScraped(t, "--sim", "--sim-ttft", "8ms", "--sim-itl", "2ms", "--sim-jitter", "1ms", "--sim-fail-500", "0.1",
		"--dataset", "synthetic", "--num-samples", "60", "--concurrency", "4", "--max-tokens", "24", "--min-tokens", "0",
		"--max-consecutive-failures", "0", "--energy", "sim", "--slo", "e2e=40ms,ttft=9ms", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	met, failedMissed := 0, 0
	var tokens int64
	for _, r := range recs {
		want := r.OK() && r.TTFT != nil && *r.TTFT <= ttftBound && r.E2E != nil && *r.E2E <= e2eBound
		if r.SLOMet == nil || *r.SLOMet != want {
			t.Fatalf("record %d: slo_met %v, want %v (outcome %s, ttft %v, e2e %v)", r.Seq, deref(r.SLOMet), want, r.Outcome, deref(r.TTFT), deref(r.E2E))
		}
		if want {
			met++
			tokens += int64(*r.OutputTokens)
		} else if !r.OK() {
			failedMissed++
		}
	}
	if met == 0 || met == len(recs) || failedMissed == 0 {
		t.Fatalf("%d of %d records met the SLO, %d failed: want some of each (the test's bounds or fault rate need retuning)", met, len(recs), failedMissed)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	d := *row.TotalDurationSeconds
	energy := *row.GPUEnergyWh * 3600
	if row.SLO != "ttft=9ms,e2e=40ms" || deref(row.SLOMetRequests) != met || deref(row.SLOOutputTokens) != tokens {
		t.Errorf("summary: slo %q met %v tokens %v; records: %d met, %d tokens", row.SLO, deref(row.SLOMetRequests), deref(row.SLOOutputTokens), met, tokens)
	}
	for _, c := range []struct {
		name string
		got  *float64
		want float64
	}{
		{"goodput_requests_per_second", row.GoodputRequestsPerSecond, float64(met) / d},
		{"goodput_output_tokens_per_second", row.GoodputOutputTokensPerSecond, float64(tokens) / d},
		{"joules_per_slo_output_token", row.JoulesPerSLOOutputToken, energy / float64(tokens)},
	} {
		if c.got == nil || math.Abs(*c.got/c.want-1) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, deref(c.got), c.want)
		}
	}
	if *row.JoulesPerSLOOutputToken <= *row.JoulesPerOutputToken {
		t.Errorf("J per SLO-meeting token %v not above J per token %v", *row.JoulesPerSLOOutputToken, *row.JoulesPerOutputToken)
	}
	rep, err := report.ReadReport(runFile(t, out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.SLO; s == nil || s.Met != met || s.Missed != len(recs)-met || deref(s.TTFTS) != ttftBound || deref(s.E2ES) != e2eBound ||
		s.TPOTS != nil || deref(s.JoulesPerSLOOutputToken) != *row.JoulesPerSLOOutputToken {
		t.Errorf("report.json slo = %+v", rep.SLO)
	}
	if got := tableCells(res.stdout, "met / missed"); len(got) < 2 || got[0] != strconv.Itoa(met) || got[1] != strconv.Itoa(len(recs)-met) {
		t.Errorf("table: met line %q\n%s", got, res.stdout)
	}
	if !strings.Contains(res.stdout, "SLO ttft=9ms,e2e=40ms\n") {
		t.Errorf("table lacks the SLO block:\n%s", res.stdout)
	}
	if v := counterValue(fams, "tokenwatt_slo_requests_total", "slo", "met"); v != float64(met) {
		t.Errorf("tokenwatt_slo_requests_total{slo=met} = %v, want %d", v, met)
	}
	if v := counterValue(fams, "tokenwatt_slo_requests_total", "slo", "missed"); v != float64(len(recs)-met) {
		t.Errorf("tokenwatt_slo_requests_total{slo=missed} = %v, want %d", v, len(recs)-met)
	}
	if v := counterValue(fams, "tokenwatt_slo_output_tokens_total", "", ""); v != float64(tokens) {
		t.Errorf("tokenwatt_slo_output_tokens_total = %v, want %d", v, tokens)
	}
}

// TestSLOWithout: without --slo, records say null, the SLO columns are
// empty, report.json's slo is null and no SLO series is exported; a bad
// --slo, or one that bounds TTFT without streaming, exits 2 naming it.
func TestSLOWithout(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res, fams := runScraped(t, "--sim", "--dataset", "synthetic", "--num-samples", "3", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
		if r.SLOMet != nil {
			t.Errorf("record %d: slo_met %v without --slo", r.Seq, *r.SLOMet)
		}
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.SLO != "" || row.SLOMetRequests != nil || row.GoodputRequestsPerSecond != nil {
		t.Errorf("summary without --slo: %q %v %v", row.SLO, deref(row.SLOMetRequests), deref(row.GoodputRequestsPerSecond))
	}
	if rep, err := report.ReadReport(runFile(t, out, "report.json")); err != nil || rep.SLO != nil {
		t.Errorf("report.json slo = %+v (%v)", rep.SLO, err)
	}
	if fams["tokenwatt_slo_requests_total"] != nil || strings.Contains(res.stdout, "SLO") {
		t.Error("SLO series or table block without --slo")
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--slo", "ttft=5"}, "--slo: \"ttft=5\": ttft needs a duration with its unit"},
		{[]string{"--slo", "itl=5ms"}, `unknown bound "itl"`},
		{[]string{"--slo", "ttft=5ms", "--no-stream"}, "slo: ttft and tpot are not measured without streaming"},
	} {
		res := runCLI(t, append([]string{"--sim", "--dataset", "synthetic", "--num-samples", "1", "--out", t.TempDir()}, tc.args...)...)
		if res.code != 2 || !strings.Contains(res.stderr, tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, res.code, res.stderr, tc.msg)
		}
	}
}
