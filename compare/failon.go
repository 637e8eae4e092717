package compare

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Threshold is one --fail-on condition: the figure Metric changed by more
// than Percent (in the direction of its sign: > +5 % for an increase,
// < −5 % for a decrease).
type Threshold struct {
	Metric  string  `json:"metric"`
	Percent float64 `json:"percent"`
	// Above: an increase beyond Percent fails (">"); else a decrease
	// below it ("<").
	Above bool `json:"above"`
}

func (t Threshold) String() string {
	op := "<"
	if t.Above {
		op = ">"
	}
	return fmt.Sprintf("%s%s%s%%", t.Metric, op, signedPct(t.Percent))
}

// ParseFailOn parses --fail-on: comma-separated conditions
// METRIC>+N% (an increase of more than N %) or METRIC<-N% (a decrease of
// more than N %), METRIC one of MetricNames.
func ParseFailOn(spec string) ([]Threshold, error) {
	var out []Threshold
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.IndexAny(part, "<>")
		if i < 0 {
			return nil, fmt.Errorf("%q: want METRIC>+N%% or METRIC<-N%%, e.g. joules_per_output_token>+5%%", part)
		}
		t := Threshold{Metric: strings.TrimSpace(part[:i]), Above: part[i] == '>'}
		if !slices.Contains(MetricNames(), t.Metric) {
			return nil, fmt.Errorf("%q: %q is not a tested figure (%s)", part, t.Metric, strings.Join(MetricNames(), ", "))
		}
		num, ok := strings.CutSuffix(strings.TrimSpace(part[i+1:]), "%")
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%q: the threshold is a percentage, e.g. %s+5%%", part, part[:i+1])
		}
		switch {
		case t.Above && v < 0:
			return nil, fmt.Errorf("%q: > takes an increase (+N%%); for a decrease write %s<%s%%", part, t.Metric, signedPct(v))
		case !t.Above && v > 0:
			return nil, fmt.Errorf("%q: < takes a decrease (-N%%): %s<-%s%%", part, t.Metric, strconv.FormatFloat(v, 'f', -1, 64))
		}
		t.Percent = v
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no condition given: e.g. joules_per_output_token>+5%%,ttft_p99>+10%%")
	}
	return out, nil
}

// failOn checks figs against the thresholds. A threshold is breached
// when the figure's difference is significant in its direction (the
// confidence interval of the relative difference lies wholly above 0 for
// >, below 0 for <) and its estimate is beyond the threshold.
func failOn(figs []Figure, ts []Threshold) (breached, untested []string) {
	breached, untested = []string{}, []string{}
	for _, t := range ts {
		i := slices.IndexFunc(figs, func(f Figure) bool { return f.Name == t.Metric })
		if i < 0 {
			untested = append(untested, fmt.Sprintf("%s: not compared (the runs have no common SLO)", t))
			continue
		}
		f := &figs[i]
		if f.CI == nil {
			untested = append(untested, fmt.Sprintf("%s: no interval (%s)", t, f.Untested))
			continue
		}
		est := *f.Estimate
		if t.Above && f.CI.Lo > 0 && est > t.Percent || !t.Above && f.CI.Hi < 0 && est < t.Percent {
			breached = append(breached, fmt.Sprintf("%s: %s %% [%s %%, %s %%]", t, signedPct(est), signedPct(f.CI.Lo), signedPct(f.CI.Hi)))
		}
	}
	return breached, untested
}

// signedPct is a percentage with its sign and one decimal: "+10.3",
// "-0.4", "+0.0" (only for 0 itself: "+0.02" otherwise).
func signedPct(v float64) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	if (s == "0.0" || s == "-0.0") && v != 0 {
		// Not zero: an interval's end just off 0 says which side it is.
		s = strconv.FormatFloat(v, 'g', 1, 64)
	}
	if s == "-0.0" {
		s = "0.0"
	}
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}

// formatPct is a percentage without sign: "95", "99.9".
func formatPct(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
