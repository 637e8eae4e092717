package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestParseSLO(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		slo      SLO
	}{
		{"ttft=500ms,tpot=50ms,e2e=2s", "ttft=500ms,tpot=50ms,e2e=2s", SLO{TTFT: 500 * time.Millisecond, TPOT: 50 * time.Millisecond, E2E: 2 * time.Second}},
		{" E2E = 1.5s , ttft=0.2s ", "ttft=200ms,e2e=1.5s", SLO{TTFT: 200 * time.Millisecond, E2E: 1500 * time.Millisecond}},
		{"tpot=40ms,", "tpot=40ms", SLO{TPOT: 40 * time.Millisecond}},
	} {
		got, err := ParseSLO(tc.in)
		if err != nil {
			t.Errorf("ParseSLO(%q): %v", tc.in, err)
			continue
		}
		if *got != tc.slo || got.String() != tc.want {
			t.Errorf("ParseSLO(%q) = %+v %q, want %+v %q", tc.in, *got, got.String(), tc.slo, tc.want)
		}
		back, err := ParseSLO(got.String())
		if err != nil || *back != *got {
			t.Errorf("ParseSLO(%q) does not give back %+v: %+v, %v", got.String(), *got, back, err)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "no bound given"},
		{"ttft", "want KEY=DURATION"},
		{"itl=5ms", `unknown bound "itl"`},
		{"ttft=500", "needs a duration with its unit"},
		{"ttft=1s,ttft=2s", "ttft is given twice"},
		{"ttft=-1s", "must be positive"},
		{"ttft=0s", "no bound given"},
	} {
		if _, err := ParseSLO(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseSLO(%q) = %v, want an error containing %q", tc.in, err, tc.msg)
		}
	}
	var none *SLO
	if none.String() != "" || !none.Empty() || none.Keys() != nil {
		t.Errorf("nil SLO: %q %v %v", none.String(), none.Empty(), none.Keys())
	}
	if k := (&SLO{TTFT: 1, E2E: 1}).Keys(); strings.Join(k, ",") != "ttft,e2e" {
		t.Errorf("Keys = %v", k)
	}
}

// TestDecodeSLO: a scenario's slo is a mapping of durations, strictly
// decoded; bad values name the key and line.
func TestDecodeSLO(t *testing.T) {
	s, err := Decode(strings.NewReader("name: x\nslo:\n  ttft: 500ms\n  e2e: 2s\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.SLO == nil || s.SLO.String() != "ttft=500ms,e2e=2s" {
		t.Fatalf("slo = %+v", s.SLO)
	}
	for _, tc := range []struct{ yaml, msg string }{
		{"slo:\n  ttf: 1s\n", `x.yaml:3: unknown key "slo.ttf" (did you mean "slo.ttft"?)`},
		{"slo:\n  ttft: -1s\n", "x.yaml:2: slo: ttft -1s: a bound must be positive"},
		{"slo: {}\n", "x.yaml:2: slo: no bound given"},
		{"stream: false\nslo:\n  tpot: 5ms\n", "x.yaml:3: slo: ttft and tpot are not measured without streaming"},
	} {
		_, err := Decode(strings.NewReader("name: x\n"+tc.yaml), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.msg)
		}
	}
	if _, err := Decode(strings.NewReader("name: x\nstream: false\nslo:\n  e2e: 5s\n"), "x.yaml"); err != nil {
		t.Errorf("e2e without streaming: %v", err)
	}
}
