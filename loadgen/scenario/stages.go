package scenario

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Stage is one step of a load that changes over time (Scenario.Stages):
// for Duration, either open loop at Rate requests per second, with
// Concurrency as its in-flight cap (0: the scenario's concurrency), or,
// with no Rate, closed loop with Concurrency requests in flight.
type Stage struct {
	Duration    time.Duration `yaml:"duration"`
	Rate        float64       `yaml:"rate"`
	Concurrency int           `yaml:"concurrency"`
}

// Ramp is an open-loop rate that changes linearly from From to To
// requests per second over Duration (Scenario.Ramp). The scenario's
// concurrency is its in-flight cap.
type Ramp struct {
	From     float64       `yaml:"from"`
	To       float64       `yaml:"to"`
	Duration time.Duration `yaml:"duration"`
}

// The bounds Validate puts on stages and ramps.
const (
	// MaxStages bounds the number of stages: a day in 10-second steps is
	// 8,640 of them.
	MaxStages = 10_000
	// MaxStagesDuration bounds the stages' total duration and a ramp's:
	// a century, well inside a duration's range (292 years).
	MaxStagesDuration = 100 * 365 * 24 * time.Hour
)

// Staged reports whether the scenario's load changes over time: it has
// stages or a ramp.
func (s *Scenario) Staged() bool { return len(s.Stages) > 0 || s.Ramp != nil }

// StagesDuration is how long the stages, or the ramp, last together; 0
// without either.
func (s *Scenario) StagesDuration() time.Duration {
	if s.Ramp != nil {
		return s.Ramp.Duration
	}
	var total time.Duration
	for _, st := range s.Stages {
		if st.Duration > 0 && total <= MaxStagesDuration {
			total += min(st.Duration, MaxStagesDuration+1)
		}
	}
	return total
}

// TimeLimit is when scheduling stops at the latest: the duration, or the
// end of the stages or ramp when that comes first; 0 means no limit.
func (s *Scenario) TimeLimit() time.Duration {
	d := s.StagesDuration()
	if s.Duration > 0 && (d == 0 || s.Duration < d) {
		d = s.Duration
	}
	return d
}

// OpenLoop reports whether any request of the scenario is scheduled open
// loop: a rate, a ramp or an open-loop stage.
func (s *Scenario) OpenLoop() bool {
	if s.Rate > 0 || s.Ramp != nil {
		return true
	}
	for _, st := range s.Stages {
		if st.Rate > 0 {
			return true
		}
	}
	return false
}

// validateStages checks the stages and the ramp, and how they go with the
// scenario's own rate.
func (s *Scenario) validateStages(add func(key, format string, args ...any)) {
	if len(s.Stages) > 0 && s.Ramp != nil {
		add("ramp", "give stages or a ramp, not both (a ramp is one open-loop stage whose rate changes linearly)")
	}
	if s.Staged() && s.Rate != 0 {
		add("rate", "must be 0 with stages or a ramp, which set the rate over time, got %v", s.Rate)
	}
	if len(s.Stages) > MaxStages {
		add("stages", "at most %d stages, got %d", MaxStages, len(s.Stages))
	}
	// A list of thousands of bad stages is reported by its first few.
	const maxReported = 5
	var total time.Duration
	bad := 0
	for i, st := range s.Stages[:min(len(s.Stages), MaxStages)] {
		key := fmt.Sprintf("stages[%d]", i)
		problem := false
		add := func(key, format string, args ...any) {
			if !problem {
				problem = true
				bad++
			}
			if bad <= maxReported {
				add(key, format, args...)
			}
		}
		if st.Duration <= 0 {
			add(key+".duration", "must be more than 0, got %s", st.Duration)
		} else if total += st.Duration; total > MaxStagesDuration || total < 0 {
			total = MaxStagesDuration + 1
		}
		switch {
		case !(st.Rate >= 0) || math.IsInf(st.Rate, 0):
			add(key+".rate", "must be 0 (a closed-loop stage) or a positive number of requests per second, got %v", st.Rate)
		case st.Rate > 0 && st.Rate < MinRate:
			add(key+".rate", "must be 0 (a closed-loop stage) or at least %g requests per second, got %v", MinRate, st.Rate)
		case st.Rate == 0 && st.Concurrency <= 0:
			add(key+".concurrency", "a closed-loop stage (no rate) needs 1 or more requests in flight, got %d", st.Concurrency)
		}
		if st.Concurrency < 0 {
			add(key+".concurrency", "must be 0 or more, got %d", st.Concurrency)
		} else if st.Concurrency > MaxConcurrency {
			add(key+".concurrency", "must be at most %d, got %d", MaxConcurrency, st.Concurrency)
		}
	}
	if bad > maxReported {
		add("stages", "%d more stages have problems", bad-maxReported)
	}
	if total > MaxStagesDuration {
		add("stages", "together must last at most %s (a century)", formatDuration(MaxStagesDuration))
	}
	if r := s.Ramp; r != nil {
		rateOK := true
		for _, e := range []struct {
			key string
			v   float64
		}{{"ramp.from", r.From}, {"ramp.to", r.To}} {
			if !(e.v >= 0) || math.IsInf(e.v, 0) {
				add(e.key, "must be 0 or a positive number of requests per second, got %v", e.v)
				rateOK = false
			}
		}
		if rateOK && max(r.From, r.To) < MinRate {
			add("ramp.to", "from %v to %v: one end must be at least %g requests per second", r.From, r.To, MinRate)
		}
		switch {
		case r.Duration <= 0:
			add("ramp.duration", "must be more than 0, got %s", r.Duration)
		case r.Duration > MaxStagesDuration:
			add("ramp.duration", "must be at most %s (a century), got %s", formatDuration(MaxStagesDuration), r.Duration)
		}
	}
}

// ParseStages reads stages as --stages writes them: a comma-separated
// list of DURATION@LOAD, where DURATION is a Go duration (90s, 10m, 1h30m)
// and LOAD is a rate in requests per second (open loop: 5, 0.5), cN
// (closed loop, N requests in flight: c8), or a rate with its own
// in-flight cap (20/c64). The stages are not validated.
func ParseStages(spec string) ([]Stage, error) {
	var out []Stage
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		st, err := parseStage(item)
		if err != nil {
			return nil, fmt.Errorf("stage %d %q: %v (want DURATION@RATE, DURATION@cN or DURATION@RATE/cN, e.g. 60s@5,60s@20,2m@c8)", i+1, item, err)
		}
		out = append(out, st)
	}
	return out, nil
}

func parseStage(item string) (Stage, error) {
	d, load, ok := strings.Cut(item, "@")
	if !ok {
		return Stage{}, errors.New("no @ between the duration and the load")
	}
	var st Stage
	var err error
	if st.Duration, err = time.ParseDuration(strings.TrimSpace(d)); err != nil {
		return Stage{}, fmt.Errorf("duration %q: want a duration such as 30s, 5m or 1h", d)
	}
	load = strings.TrimSpace(load)
	rate, capSpec, hasCap := strings.Cut(load, "/")
	if !hasCap && strings.HasPrefix(load, "c") {
		rate, capSpec, hasCap = "", load, true
	}
	if rate != "" {
		if st.Rate, err = strconv.ParseFloat(rate, 64); err != nil {
			return Stage{}, fmt.Errorf("rate %q is not a number", rate)
		}
	}
	if hasCap {
		n, ok := strings.CutPrefix(capSpec, "c")
		if st.Concurrency, err = strconv.Atoi(n); !ok || err != nil {
			return Stage{}, fmt.Errorf("concurrency %q: want c and a whole number, e.g. c8", capSpec)
		}
	}
	if rate == "" && !hasCap {
		return Stage{}, errors.New("no rate or concurrency after @")
	}
	return st, nil
}

// ParseRamp reads a ramp as --ramp writes it: FROM:TO:DURATION, e.g.
// 1:50:10m for 1 to 50 requests per second over 10 minutes. The ramp is
// not validated.
func ParseRamp(spec string) (*Ramp, error) {
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%q: want FROM:TO:DURATION, e.g. 1:50:10m (1 to 50 req/s over 10 minutes)", spec)
	}
	var r Ramp
	var err error
	if r.From, err = strconv.ParseFloat(strings.TrimSpace(parts[0]), 64); err != nil {
		return nil, fmt.Errorf("%q: FROM %q is not a number of requests per second", spec, parts[0])
	}
	if r.To, err = strconv.ParseFloat(strings.TrimSpace(parts[1]), 64); err != nil {
		return nil, fmt.Errorf("%q: TO %q is not a number of requests per second", spec, parts[1])
	}
	if r.Duration, err = time.ParseDuration(strings.TrimSpace(parts[2])); err != nil {
		return nil, fmt.Errorf("%q: DURATION %q: want a duration such as 30s, 5m or 1h", spec, parts[2])
	}
	return &r, nil
}

// FormatStages writes stages as ParseStages reads them.
func FormatStages(stages []Stage) string {
	parts := make([]string, len(stages))
	for i, st := range stages {
		parts[i] = st.String()
	}
	return strings.Join(parts, ",")
}

// String is the stage as --stages writes it: 60s@5, 2m@c8, 30s@20/c64.
func (st Stage) String() string {
	s := formatDuration(st.Duration) + "@"
	switch {
	case st.Rate > 0 && st.Concurrency > 0:
		s += strconv.FormatFloat(st.Rate, 'g', -1, 64) + "/c" + strconv.Itoa(st.Concurrency)
	case st.Rate > 0:
		s += strconv.FormatFloat(st.Rate, 'g', -1, 64)
	default:
		s += "c" + strconv.Itoa(st.Concurrency)
	}
	return s
}

// String is the ramp as --ramp writes it: 1:50:10m.
func (r *Ramp) String() string {
	return strconv.FormatFloat(r.From, 'g', -1, 64) + ":" + strconv.FormatFloat(r.To, 'g', -1, 64) + ":" + formatDuration(r.Duration)
}

// formatDuration writes d as time.Duration does, without its zero units:
// 1m rather than 1m0s, 1h30m rather than 1h30m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
