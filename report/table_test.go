package report

import (
	"bytes"
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
		if got := number(&tt.v); got != tt.want {
			t.Errorf("number(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := number(nil); got != "-" {
		t.Errorf("number(nil) = %q, want -", got)
	}
}
