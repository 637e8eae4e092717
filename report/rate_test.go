package report

import (
	"strings"
	"testing"
)

func TestRateShortfall(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	for _, c := range []struct {
		name string
		row  Row
		p    Pacing
		want []string // "" for no warning
	}{
		{"closed loop", Row{RequestRate: f(0), SendRate: f(3), CompletionRate: f(3), TotalPrompts: 30, TotalDurationSeconds: f(10)}, Pacing{}, nil},
		{"reached", Row{RequestRate: f(40), SendRate: f(39.5), CompletionRate: f(38), TotalPrompts: 400, TotalDurationSeconds: f(10.3)}, Pacing{}, nil},
		{"cap full", Row{RequestRate: f(40), SendRate: f(4.09), CompletionRate: f(4.0), TotalPrompts: 100, TotalDurationSeconds: f(25)},
			Pacing{Paced: 100, CapWaits: 98, Concurrency: 1},
			[]string{"target 40 req/s not reached (sent 4.09, completed 4 req/s)", "in-flight cap of 1 was full for 98 % of sends: raise --concurrency"}},
		{"client saturated", Row{RequestRate: f(3000), SendRate: f(409), CompletionRate: f(68), TotalPrompts: 2454, TotalDurationSeconds: f(36)},
			Pacing{Paced: 2454, ClientSaturated: true},
			[]string{"client was saturated", "server is slower than the rate"}},
		{"server slower, sends on time", Row{RequestRate: f(10), SendRate: f(10), CompletionRate: f(5), TotalPrompts: 100, TotalDurationSeconds: f(20)},
			Pacing{Paced: 100}, []string{"server is slower than the rate: the last requests finished 10.0 s after the last send"}},
		{"short run, long latency: not flagged", Row{RequestRate: f(40), SendRate: f(40), CompletionRate: f(28.8), TotalPrompts: 100, TotalDurationSeconds: f(3.5)},
			Pacing{Paced: 100}, nil},
		{"late without a known cause", Row{RequestRate: f(100), SendRate: f(80), CompletionRate: f(79), TotalPrompts: 80, TotalDurationSeconds: f(1.01)},
			Pacing{Paced: 80}, []string{"the client sent behind its schedule"}},
	} {
		got := RateShortfall(&c.row, c.p)
		if c.want == nil {
			if got != "" {
				t.Errorf("%s: %q, want no warning", c.name, got)
			}
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
	}
}

func TestFormatFailures(t *testing.T) {
	if got := FormatFailures(map[string]int{"timeout": 3, "canceled": 5, "http_5xx": 3, "stream_error": 0}); got != "canceled=5 http_5xx=3 timeout=3" {
		t.Errorf("%q", got)
	}
	if got := FormatFailures(nil); got != "" {
		t.Errorf("%q", got)
	}
}
