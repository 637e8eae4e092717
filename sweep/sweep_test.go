package sweep

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/report"
)

func TestParseRates(t *testing.T) {
	for in, want := range map[string][]float64{
		"1,2,4,8":      {1, 2, 4, 8},
		" 0.5 , 3 ":    {0.5, 3},
		"1:64:x2":      {1, 2, 4, 8, 16, 32, 64},
		"1:50:x2":      {1, 2, 4, 8, 16, 32},
		"5:20:+5":      {5, 10, 15, 20},
		"0.1:0.3:+0.1": {0.1, 0.2, 0.3}, // TO itself, not 0.1+2·0.1
		"2:2:x3":       {2},
	} {
		got, err := ParseRates(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseRates(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1,,2", "0,1", "-1", "1:64", "1:64:2", "1:64:x1", "1:64:+0", "4:1:x2", "0:4:+1", "1:1e9:+1", "1,inf", "nan"} {
		if got, err := ParseRates(in); err == nil {
			t.Errorf("ParseRates(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseConcurrencies(t *testing.T) {
	for in, want := range map[string][]int{
		"1,2,4":   {1, 2, 4},
		"1:64:x4": {1, 4, 16, 64},
		"8:32:+8": {8, 16, 24, 32},
		"1:10:x3": {1, 3, 9},
	} {
		got, err := ParseConcurrencies(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseConcurrencies(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"0,1", "1.5", "1:4:x1.1", "1:2:+0.5"} {
		if got, err := ParseConcurrencies(in); err == nil {
			t.Errorf("ParseConcurrencies(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseLatency(t *testing.T) {
	for _, in := range []string{"e2e_p99", "ttft_p50", "tpot_mean", "e2e_from_sched_p99.9", "itl_p95"} {
		l, err := ParseLatency(in)
		if err != nil || l.String() != in {
			t.Errorf("ParseLatency(%q) = %v, %v", in, l, err)
		}
	}
	if l, _ := ParseLatency("e2e_from_sched_p99"); l.Dist != "e2e_from_sched" || l.Stat != "p99" {
		t.Errorf("e2e_from_sched_p99 read as %+v", l)
	}
	for _, in := range []string{"e2e", "e2e_p98", "foo_p99", "ttft_max", "_p99"} {
		if _, err := ParseLatency(in); err == nil {
			t.Errorf("ParseLatency(%q): no error", in)
		}
	}
	d := map[string]*report.Distribution{"e2e": {Count: 3, Mean: 0.2, Percentiles: map[string]float64{"p99": 0.4}}, "ttft": {Count: 0}}
	if v := (Latency{"e2e", "p99"}).Of(d); v == nil || *v != 0.4 {
		t.Errorf("e2e_p99 = %v", v)
	}
	if v := (Latency{"e2e", "mean"}).Of(d); v == nil || *v != 0.2 {
		t.Errorf("e2e_mean = %v", v)
	}
	if (Latency{"ttft", "p99"}).Of(d) != nil || (Latency{"tpot", "p99"}).Of(d) != nil {
		t.Error("a distribution with no value, or none, has a figure")
	}
}

func f(v float64) *float64 { return &v }

// point is a point with latency l and J/token j (either may be nil).
func point(id string, l, j *float64) Point {
	p := Point{RunID: id, Latency: map[string]*report.Distribution{}}
	if l != nil {
		p.Latency["e2e"] = &report.Distribution{Count: 1, Mean: *l, Percentiles: map[string]float64{"p99": *l}}
	}
	if j != nil {
		p.Energy = &report.ReportEnergy{JoulesPerOutputToken: j}
	}
	return p
}

// TestFrontier: the frontier keeps the points no other beats on both
// figures (ties both stay), leaves out points lacking either, and lists
// them by rising latency.
func TestFrontier(t *testing.T) {
	s := &Sweep{Points: []Point{
		point("c1", f(0.10), f(0.94)),           // fastest
		point("c4", f(0.145), f(0.68)),          // cheapest
		point("c16", f(0.325), f(1.14)),         // beaten by c4 on both
		point("c2", f(0.115), f(0.72)),          // between: on the frontier
		point("c8", f(0.205), f(0.80)),          // beaten by c4
		point("same", f(0.145), f(0.68)),        // c4's twin: neither beats the other
		point("lat-only", f(0.01), nil),         // no energy: on no frontier
		point("slower-same-j", f(0.2), f(0.68)), // c4 beats it on latency alone
	}}
	s.Update(Latency{"e2e", "p99"})
	want := []string{"c1", "c2", "c4", "same"}
	if !reflect.DeepEqual(s.Frontier, want) {
		t.Fatalf("frontier %v, want %v", s.Frontier, want)
	}
	for _, p := range s.Points {
		if p.Frontier != slices.Contains(want, p.RunID) {
			t.Errorf("%s: frontier %v", p.RunID, p.Frontier)
		}
	}
	if s.Points[6].LatencyS == nil || s.Points[6].JoulesPerOutputToken != nil {
		t.Errorf("lat-only: %+v", s.Points[6])
	}
	// Another latency, another frontier: by mean E2E too, but a point
	// without it drops out.
	s.Points[0].Latency = nil
	s.Update(Latency{"e2e", "mean"})
	if want := []string{"c2", "c4", "same"}; !reflect.DeepEqual(s.Frontier, want) || s.FrontierLatency != "e2e_mean" {
		t.Errorf("frontier by %s %v, want %v", s.FrontierLatency, s.Frontier, want)
	}
}

func TestSaturation(t *testing.T) {
	rate := func(id string, target float64, warning string) Point {
		return Point{RunID: id, Rate: &target, Rates: report.Rates{Target: &target, Warning: warning}}
	}
	conc := func(id string, c int, done float64) Point {
		return Point{RunID: id, Concurrency: c, Rates: report.Rates{Completion: &done}}
	}
	withGoodput := func(p Point, g float64) Point { p.GoodputRPS = &g; return p }
	for _, tc := range []struct {
		name    string
		earlier []Point
		cur     Point
		want    string // a substring; "" for none
	}{
		{"rate reached", []Point{rate("a", 1, "")}, rate("b", 2, ""), ""},
		{"rate short", []Point{rate("a", 1, "")}, rate("b", 2, "target 2 req/s not reached"), "target 2 req/s not reached"},
		{"first point short", nil, rate("a", 2, "target 2 req/s not reached"), "not reached"},
		{"goodput rises", []Point{withGoodput(rate("a", 1, ""), 1)}, withGoodput(rate("b", 2, ""), 1.9), ""},
		{"goodput falls", []Point{withGoodput(rate("a", 1, ""), 1), withGoodput(rate("b", 2, ""), 2)}, withGoodput(rate("c", 4, ""), 1.8),
			"SLO goodput fell to 1.8 req/s, below 95 % of the 2 req/s at b"},
		{"goodput unknown", []Point{withGoodput(rate("a", 1, ""), 1)}, rate("b", 2, ""), ""},
		{"concurrency scales", []Point{conc("c1", 1, 10)}, conc("c4", 4, 27), ""},
		{"concurrency slows but gains", []Point{conc("c4", 4, 27)}, conc("c16", 16, 33), ""}, // +22 % > 5 % of +300 %
		{"concurrency plateau", []Point{conc("c4", 4, 27)}, conc("c16", 16, 27.5), "concurrency 4 → 16 (+300 %) raised the completion rate by +1.9 %"},
		{"concurrency falls", []Point{conc("c8", 8, 27)}, conc("c9", 9, 26), "concurrency 8 → 9"},
		{"concurrency down", []Point{conc("c8", 8, 27)}, conc("c4", 4, 20), ""},
		{"first concurrency", nil, conc("c1", 1, 10), ""},
	} {
		got := Saturation(tc.earlier, &tc.cur)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestSweepFile: sweep.json round-trips, and a file of another schema
// is refused.
func TestSweepFile(t *testing.T) {
	dir := t.TempDir()
	s := &Sweep{SweepID: "sw", Load: LoadRate, Planned: []float64{1, 2}, FrontierLatency: "e2e_p99",
		Idle: &Idle{PowerW: 100, RunID: "sw-r1"}, StopReason: StopSaturated, Points: []Point{point("sw-r1", f(0.1), f(0.5))}}
	s.Update(Latency{"e2e", "p99"})
	path := filepath.Join(dir, FileName)
	if err := Write(path, s); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Schema != Schema || got.SweepID != "sw" || len(got.Points) != 1 || !got.Points[0].Frontier || got.Frontier[0] != "sw-r1" || got.Idle.PowerW != 100 {
		t.Errorf("read back %+v", got)
	}
	s.Schema = "tokenwatt.sweep/v0"
	b := new(bytes.Buffer)
	b.WriteString(`{"schema": "tokenwatt.sweep/v0"}`)
	other := filepath.Join(dir, "other.json")
	if err := writeFile(other, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(other); err == nil || !strings.Contains(err.Error(), "tokenwatt.sweep/v0") {
		t.Errorf("another schema: %v", err)
	}
}

func TestTable(t *testing.T) {
	s := &Sweep{SweepID: "sw", BenchmarkName: "energy_star+concurrency=4", Simulated: true, Load: LoadConcurrency,
		Planned: []float64{1, 4, 16}, StopReason: StopSaturated, StopDetail: "point 3",
		Points: []Point{point("sw-c1", f(0.1), f(0.94)), point("sw-c4", f(0.145), f(0.68)), point("sw-c16", f(0.325), f(1.14))}}
	for i := range s.Points {
		s.Points[i].Index, s.Points[i].Load = i, []float64{1, 4, 16}[i]
	}
	s.Points[2].Saturation = "concurrency 4 → 16 raised\x1b[31m nothing"
	s.Update(Latency{"e2e", "p99"})
	var b bytes.Buffer
	if err := WriteTable(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"SIMULATED", "Sweep sw: energy_star+concurrency=4, 3 of 3 points", "conc.", "e2e_p99",
		"point 3 (sw-c16) saturated: concurrency 4 → 16 raised\\x1b[31m nothing",
		"stopped: saturated: point 3", "frontier: sw-c1, sw-c4"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("a control character reached the terminal")
	}
	// Each point's line: index, load, ..., frontier latency, J/token, ..., mark.
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 16 || len(f) == 15 {
			rows[f[0]] = f
		}
	}
	for i, want := range [][]string{{"1", "100", "0.9400", "*"}, {"4", "145", "0.6800", "*"}, {"16", "325", "1.140", "saturated"}} {
		r := rows[strconv.Itoa(i+1)]
		if len(r) < 15 || r[1] != want[0] || r[11] != want[1] || r[12] != want[2] || r[len(r)-1] != want[3] {
			t.Errorf("point %d: %q, want load %s, e2e_p99 %s ms, J/token %s, mark %s", i+1, r, want[0], want[1], want[2], want[3])
		}
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// A point's goodput is its report.json's slo.goodput_requests_per_s, and
// unknown without an SLO.
func TestGoodputFromReport(t *testing.T) {
	g := 3.5
	if got := goodput(&report.Report{SLO: &report.ReportSLO{GoodputRequestsPerSecond: &g}}); got == nil || *got != 3.5 {
		t.Errorf("with an SLO: %v", got)
	}
	if got := goodput(&report.Report{}); got != nil {
		t.Errorf("without an SLO: %v", *got)
	}
}
