package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestWriteTableGolden(t *testing.T) {
	tests := []struct {
		golden string
		row    *Row
	}{
		{"table_simulated.golden", fullRow()},
		{"table_unknown.golden", unknownRow()},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTable(&buf, tt.row); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, buf.Bytes())
		})
	}
}

func TestWriteTableSimulatedFirstLine(t *testing.T) {
	for _, simulated := range []bool{true, false} {
		var buf bytes.Buffer
		if err := WriteTable(&buf, &Row{Simulated: simulated}); err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(buf.String(), "\n")
		if got := strings.Contains(first, "SIMULATED"); got != simulated {
			t.Errorf("Simulated=%v: first line %q", simulated, first)
		}
	}
}

func TestNumber(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{12.5, "12.50"},
		{0.012345, "0.01235"},
		{1234.5678, "1235"},
		{12345678.9, "12345679"},
		{1e-12, "0.000000000"},
		{-0.5, "-0.5000"},
	}
	for _, tt := range tests {
		if got := Number(&tt.v); got != tt.want {
			t.Errorf("Number(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := Number(nil); got != "-" {
		t.Errorf("Number(nil) = %q, want -", got)
	}
}

// Latencies read in milliseconds, the unit once after the values; the
// CSV keeps seconds.
func TestWriteTableLatenciesInMilliseconds(t *testing.T) {
	r := &Row{TTFTMeanSeconds: new(0.0123), TTFTP50Seconds: new(0.012), TTFTP90Seconds: new(0.5), TTFTP99Seconds: new(1.23456),
		ITLP50Seconds: new(0.001999), TPOTMeanSeconds: new(0.0000021), E2EP50Seconds: new(0.0)}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	// Column padding depends on the longest label; compare with runs of
	// blanks as one.
	table := regexp.MustCompile(` {2,}`).ReplaceAllString(buf.String(), " ")
	for _, want := range []string{
		"\nLatency, ok requests\n",
		"TTFT mean / p50 / p90 / p99 12.3 / 12.0 / 500 / 1235 ms\n",
		"ITL p50 / p90 / p99 2.00 / - / - ms\n",
		"TPOT mean 0.00210 ms\n",
		"E2E p50 / p90 / p99 0 / - / - ms\n",
		"E2E mean, ok requests -\n",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "0.001999") || strings.Contains(buf.String(), "(s)\n") {
		t.Errorf("latencies still in seconds:\n%s", buf.String())
	}
}

// Without an energy source the table has no Energy block: no dashes, no
// carbon intensity that applies to nothing.
func TestWriteTableNoEnergyBlockWithoutEnergy(t *testing.T) {
	for _, source := range []string{"none", ""} {
		r := fullRow()
		r.EnergySource, r.EnergyMethod = source, ""
		r.GPUEnergyWh, r.ActiveEnergyWh, r.JoulesPerOutputToken, r.EmissionsGCO2eq = nil, nil, nil, nil
		var buf bytes.Buffer
		if err := WriteTable(&buf, r); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"\nEnergy\n", "carbon", "emissions", "GPU energy /"} {
			if strings.Contains(buf.String(), bad) {
				t.Errorf("source %q: table shows %q:\n%s", source, bad, buf.String())
			}
		}
		if !strings.Contains(buf.String(), "Tokens, ok requests\n") {
			t.Errorf("source %q: table lost its other blocks:\n%s", source, buf.String())
		}
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, fullRow()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\nEnergy\n") || !strings.Contains(buf.String(), "carbon intensity (g/kWh)") {
		t.Errorf("a measured run lost its Energy block:\n%s", buf.String())
	}
}

// TestWriteTableFinishReasons: one line under Requests, the most frequent
// reason first, a server's control characters escaped; none without
// counts.
func TestWriteTableFinishReasons(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTableWith(&buf, fullRow(), TableOptions{FinishReasons: map[string]int{"stop": 2, "length": 48, "abort": 2, "x\x1b[2J": 1}, NoFinishReason: 3}); err != nil {
		t.Fatal(err)
	}
	if want := "  finish reason, ok requests                     length 48 / abort 2 / stop 2 / x\\x1b[2J 1 / none given 3\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, buf.String())
	}
	buf.Reset()
	if err := WriteTableWith(&buf, fullRow(), TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "finish reason") {
		t.Errorf("a finish reason line without counts:\n%s", buf.String())
	}
}

// TestWriteTableClientLateness: with stamped chunks, one line of the
// client's lateness and one of the simulator's timer lateness, in ms;
// none without.
func TestWriteTableClientLateness(t *testing.T) {
	late := &Distribution{Count: 100, Max: 0.0042, Percentiles: map[string]float64{"p50": 0.000123, "p99": 0.00156}}
	timer := &Distribution{Count: 100, Max: 0.001, Percentiles: map[string]float64{"p50": 0.00002, "p99": 0.000061}}
	var buf bytes.Buffer
	if err := WriteTableWith(&buf, fullRow(), TableOptions{ClientLateness: late, ServerTimerLateness: timer}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\n  client lateness p50 / p99 / max +0\.123 / 1\.56 / 4\.20 ms\n`),
		regexp.MustCompile(`\n  simulator timer lateness p99 +0\.0610 ms\n`),
	} {
		if !want.MatchString(buf.String()) {
			t.Errorf("table lacks %v:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	if err := WriteTableWith(&buf, fullRow(), TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "lateness") {
		t.Errorf("a lateness line without stamps:\n%s", buf.String())
	}
}
