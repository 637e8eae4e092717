package loadgen

import (
	"math"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// MeetsSLO says whether the request r met slo (docs/definitions.md, "SLO
// goodput"): it succeeded, and each bound slo sets holds for its value.
// A TPOT bound holds for an answer that has no TPOT (one token); a TTFT
// or E2E bound fails for a request that has no such value (no text came
// back). It is nil when slo bounds nothing.
func MeetsSLO(slo *scenario.SLO, r *Record) *bool {
	if slo.Empty() {
		return nil
	}
	met := r.OK() && withinBound(r.TTFT, slo.TTFT, false) && withinBound(r.TPOT, slo.TPOT, true) && withinBound(r.E2E, slo.E2E, false)
	return &met
}

// withinBound reports whether v is at most bound (no bound: true); absent
// is the answer for a value not measured.
func withinBound(v *float64, bound time.Duration, absent bool) bool {
	if bound <= 0 {
		return true
	}
	if v == nil || math.IsNaN(*v) {
		return absent
	}
	return *v <= bound.Seconds()
}

// sloCount counts the records' SLO outcomes for the summary.
type sloCount struct {
	met, missed int
	// Output tokens of the requests that met the SLO; reports counts
	// those that had a count, so that "none reported" stays unknown.
	tokens  int64
	reports int
}

func (c *sloCount) add(r *Record) {
	switch {
	case r.SLOMet == nil:
	case *r.SLOMet:
		c.met++
		if r.OutputTokens != nil {
			addTokens(&c.tokens, int64(*r.OutputTokens))
			c.reports++
		}
	default:
		c.missed++
	}
}

func (c *sloCount) merge(o *sloCount) {
	c.met += o.met
	c.missed += o.missed
	addTokens(&c.tokens, o.tokens)
	c.reports += o.reports
}

// apply fills row's SLO columns for the SLO spec over a window of d
// seconds (0: unknown); the energy columns come with Row.ApplyEnergy.
func (c *sloCount) apply(row *report.Row, spec string, d float64) {
	if spec == "" {
		return
	}
	row.SLO = spec
	row.SLOMetRequests = new(c.met)
	if c.met == 0 || c.reports > 0 {
		row.SLOOutputTokens = new(c.tokens)
	}
	if d > 0 {
		row.GoodputRequestsPerSecond = new(float64(c.met) / d)
		row.GoodputOutputTokensPerSecond = perSecond(row.SLOOutputTokens, d)
	}
}

// SLOOutcomes are how many measured requests met the run's SLO and how
// many missed it (both 0 without one).
func (s *Summary) SLOOutcomes() (met, missed int) { return s.slo.met, s.slo.missed }
