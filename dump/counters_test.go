package dump

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

var t0 = time.Unix(1_800_000_000, 0)

// samples builds raw samples at t0 + offset seconds.
func samples(pairs ...float64) []model.SamplePair {
	var out []model.SamplePair
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, model.SamplePair{
			Timestamp: model.TimeFromUnixNano(t0.Add(time.Duration(pairs[i] * float64(time.Second))).UnixNano()),
			Value:     model.SampleValue(pairs[i+1]),
		})
	}
	return out
}

func atSec(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestCounterIncrease(t *testing.T) {
	for _, c := range []struct {
		name       string
		s          []model.SamplePair
		start, end float64
		inc, base  float64
		born       bool
		resets     int
	}{
		// Scraped first after 7 requests: born in the window, counted from 0.
		{"born in window", samples(2, 7, 3, 10, 4, 12), 1, 10, 12, 0, true, 0},
		{"baseline before start", samples(0, 0, 1, 3, 2, 5, 3, 9), 1, 10, 6, 3, false, 0},
		{"samples after end ignored", samples(0, 0, 1, 3, 5, 8), 0, 2, 3, 0, false, 0},
		// 10 counted, restart, 4 more: 14 in all.
		{"reset", samples(0, 0, 1, 6, 2, 10, 3, 1, 4, 4), 0, 10, 14, 0, false, 1},
		{"empty", nil, 0, 10, 0, 0, true, 0},
	} {
		inc, base, born, resets := counterIncrease(c.s, atSec(c.start), atSec(c.end))
		if inc != c.inc || base != c.base || born != c.born || resets != c.resets {
			t.Errorf("%s: got inc %v base %v born %v resets %d, want %v %v %v %d", c.name, inc, base, born, resets, c.inc, c.base, c.born, c.resets)
		}
	}
}

func TestWindowIncrease(t *testing.T) {
	// 100 J/s from t=0 to t=10, then a restart at 10 s: 0 at 10.5, 50 at 11.
	s := samples(0, 0, 2, 200, 4, 400, 10, 1000, 10.5, 0, 11, 50)
	for _, c := range []struct {
		start, end float64
		want       float64
		edge       string
	}{
		{1, 3, 200, ""},  // interpolated at both edges
		{2, 4, 200, ""},  // exactly on samples
		{1, 11, 950, ""}, // from 100 at 1 s to 1000 before the reset, then 0 to 50
		{-1, 3, 300, "start"},
		{9, 12, 1050 - 900, "end"},
	} {
		got, edge := windowIncrease(s, atSec(c.start), atSec(c.end), nil)
		if math.Abs(got-c.want) > 1e-9 || edge != c.edge {
			t.Errorf("window [%v, %v]: got %v edge %q, want %v %q", c.start, c.end, got, edge, c.want, c.edge)
		}
	}
}

// TestWindowIncreaseHoldsPowerOutsideTheWindow: 100 W idle until a run
// starts at 1.5 s, 300 W until it ends at 4.5 s, 100 W after; scrapes
// every 2 s see the counter and the power. Linear interpolation would
// smear each step over a scrape interval; holding the power sampled
// outside the window up to its edge reads the run's 900 J exactly.
func TestWindowIncreaseHoldsPowerOutsideTheWindow(t *testing.T) {
	// Counter: 0 at 0; 150 at 1.5; 300 at 2 (150 + 0.5*300); 900 at 4;
	// 1050 at 4.5; 1200 at 6.
	s := samples(0, 0, 2, 300, 4, 900, 6, 1200)
	power := map[int64]float64{}
	for _, x := range []struct{ sec, w float64 }{{0, 100}, {2, 300}, {4, 300}, {6, 100}} {
		power[int64(samples(x.sec, 0)[0].Timestamp)] = x.w
	}
	got, edge := windowIncrease(s, atSec(1.5), atSec(4.5), power)
	if math.Abs(got-900) > 1e-9 || edge != "" {
		t.Errorf("with power: %v (edge %q), want 900", got, edge)
	}
	linear, _ := windowIncrease(s, atSec(1.5), atSec(4.5), nil)
	if math.Abs(linear-900) < 50 {
		t.Errorf("linear interpolation gave %v; the test no longer shows the difference", linear)
	}
}

func TestGaps(t *testing.T) {
	s := samples(0, 0, 1, 1, 2, 2, 6, 6, 7, 7, 8, 8)
	if iv := medianInterval(s); iv != time.Second {
		t.Fatalf("median interval %v, want 1s", iv)
	}
	g := gaps(s, atSec(0.5), atSec(7.5), 2500*time.Millisecond)
	if len(g) != 1 || !strings.Contains(g[0], "(4s without a sample)") {
		t.Errorf("gaps = %q, want the one 4 s gap", g)
	}
	if g := gaps(s, atSec(6.5), atSec(8), 2500*time.Millisecond); len(g) != 0 {
		t.Errorf("gap outside the window reported: %q", g)
	}
}

func TestPromDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour:         "1w",
		305 * time.Second:          "5m5s",
		1563 * time.Millisecond:    "1s563ms",
		1562500 * time.Microsecond: "1s563ms", // rounded up
		0:                          "1ms",
	} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
