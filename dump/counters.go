package dump

import (
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/common/model"
)

// counterIncrease is how much the counter s grew in (start, end]: the sum
// of the increases between its raw samples, where a drop is a reset (the
// process restarted and counted again from 0).
//
// Its baseline is its last sample at or before start. A series with no
// sample at or before start was born in the window, and its counter
// started at 0: tokenwatt's run counters start at 0 with the run, so this
// counts the requests completed before Prometheus' first scrape too,
// which increase() cannot see. The count is then exact, not extrapolated.
func counterIncrease(s []model.SamplePair, start, end time.Time) (inc, baseline float64, born bool, resets int) {
	startMs, endMs := start.UnixMilli(), end.UnixMilli()
	prev, have := 0.0, false
	i := 0
	for ; i < len(s) && int64(s[i].Timestamp) <= startMs; i++ {
		prev, have = float64(s[i].Value), true
	}
	born, baseline = !have, prev
	for ; i < len(s) && int64(s[i].Timestamp) <= endMs; i++ {
		v := float64(s[i].Value)
		if v < prev {
			resets++
			inc += v
		} else {
			inc += v - prev
		}
		prev = v
	}
	return inc, baseline, born, resets
}

// windowIncrease is the counter s's growth between the instants start and
// end, which in general fall between its raw samples. Resets are removed
// first. Between the two samples around each edge, the counter is read
// as if the power stayed at its level outside the window up to the edge:
// the power sampled before start, and after end (power maps a sample's
// timestamp in ms to the power then, in counter units per second). A run
// window starts with its first request and ends with its last, so the
// power does step there, and this reads the edges exactly where linear
// interpolation would smear the step over a whole scrape interval. With
// no power sample at a bracketing timestamp, the edge is interpolated
// linearly.
//
// When no sample lies at or before start (or at or after end), the
// nearest sample stands in for it and edge names the side that is not
// covered: "start", "end" or "start and end"; "" when covered.
func windowIncrease(s []model.SamplePair, start, end time.Time, power map[int64]float64) (inc float64, edge string) {
	if len(s) == 0 {
		return 0, "start and end"
	}
	// Reset-corrected cumulative values.
	t := make([]float64, len(s))
	c := make([]float64, len(s))
	offset, prev := 0.0, float64(s[0].Value)
	for i, p := range s {
		v := float64(p.Value)
		if v < prev {
			offset += prev
		}
		prev = v
		t[i] = float64(p.Timestamp) / 1000
		c[i] = v + offset
	}
	// at reads the counter at x; outside says which power sample models
	// the stretch up to x: the earlier one (before a window) or the later
	// one (after it).
	at := func(x float64, earlier bool) (float64, bool) {
		i := sort.SearchFloat64s(t, x)
		switch {
		case i < len(t) && t[i] == x:
			return c[i], true
		case i == 0:
			return c[0], false
		case i == len(t):
			return c[len(c)-1], false
		}
		lo, hi := c[i-1], c[i]
		if earlier {
			if p, ok := power[int64(s[i-1].Timestamp)]; ok {
				return min(max(lo+p*(x-t[i-1]), lo), hi), true
			}
		} else if p, ok := power[int64(s[i].Timestamp)]; ok {
			return max(min(hi-p*(t[i]-x), hi), lo), true
		}
		f := (x - t[i-1]) / (t[i] - t[i-1])
		return lo + f*(hi-lo), true
	}
	a, okA := at(seconds(start), true)
	b, okB := at(seconds(end), false)
	switch {
	case !okA && !okB:
		edge = "start and end"
	case !okA:
		edge = "start"
	case !okB:
		edge = "end"
	}
	return b - a, edge
}

// gaps lists the stretches of more than limit between consecutive samples
// of s inside [start, end], as human-readable text.
func gaps(s []model.SamplePair, start, end time.Time, limit time.Duration) []string {
	var out []string
	var last time.Time
	for _, p := range s {
		ts := p.Timestamp.Time()
		if ts.Before(start) {
			last = ts
			continue
		}
		if !last.IsZero() {
			from := last
			if from.Before(start) {
				from = start
			}
			if g := ts.Sub(last); g > limit && !from.After(end) {
				out = append(out, fmt.Sprintf("%s to %s (%s without a sample)", stamp(last), stamp(ts), g.Round(time.Millisecond)))
			}
		}
		if ts.After(end) {
			break
		}
		last = ts
	}
	return out
}

// medianInterval is the median gap between consecutive samples, the
// series' scrape (or push) interval.
func medianInterval(s []model.SamplePair) time.Duration {
	if len(s) < 2 {
		return 0
	}
	d := make([]time.Duration, 0, len(s)-1)
	for i := 1; i < len(s); i++ {
		d = append(d, s[i].Timestamp.Time().Sub(s[i-1].Timestamp.Time()))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
