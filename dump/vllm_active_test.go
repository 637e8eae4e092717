package dump

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// The active period runs from the last scrape before the request counter
// first grows to the scrape at which it last grows, summed over series,
// inside the window; a counter that never grows has none.
func TestActivePeriod(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) model.Time {
		return model.TimeFromUnixNano(t0.Add(time.Duration(s) * time.Second).UnixNano())
	}
	mk := func(vals ...float64) series {
		var ss series
		for i, v := range vals {
			ss.Samples = append(ss.Samples, model.SamplePair{Timestamp: at(i * 10), Value: model.SampleValue(v)})
		}
		return ss
	}
	// Scrapes every 10 s; requests finish between 30 and 60 s (stop, in
	// series b, grows at 60 s).
	a := mk(5, 5, 5, 5, 8, 9, 9, 9, 9)
	b := mk(0, 0, 0, 0, 0, 0, 2, 2, 2)
	got, ok := activePeriod([]series{a, b}, t0.Add(-time.Hour), t0.Add(time.Hour))
	if !ok || !got.from.Equal(t0.Add(30*time.Second)) || !got.to.Equal(t0.Add(60*time.Second)) {
		t.Errorf("active %v to %v (ok %v), want 30 s to 60 s", got.from.Sub(t0), got.to.Sub(t0), ok)
	}
	// A window that starts inside the activity clips it.
	got, _ = activePeriod([]series{a, b}, t0.Add(35*time.Second), t0.Add(time.Hour))
	if !got.from.Equal(t0.Add(35 * time.Second)) {
		t.Errorf("clipped start %v, want 35 s", got.from.Sub(t0))
	}
	if _, ok := activePeriod([]series{mk(3, 3, 3)}, t0.Add(-time.Hour), t0.Add(time.Hour)); ok {
		t.Error("a counter that never grows has an active period")
	}
}

// vLLM's request counter labels its reason finished_reason; the other
// spelling, finish_reason, is recognised too.
func TestHasLabel(t *testing.T) {
	ss := []series{{Metric: model.Metric{"finish_reason": "abort"}}, {Metric: model.Metric{"finish_reason": "stop"}}}
	if hasLabel(ss, "finished_reason") || !hasLabel(ss, "finish_reason") {
		t.Error("hasLabel")
	}
}
