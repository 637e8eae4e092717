package scenario

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SLO is a latency promise: a bound on each of a request's TTFT, TPOT
// and E2E latency that the promise covers (zero: not covered). A request
// meets it when it succeeded and each bound holds (docs/definitions.md,
// "SLO goodput"); goodput is the requests, and their output tokens, per
// second that met it.
type SLO struct {
	TTFT time.Duration `yaml:"ttft"`
	TPOT time.Duration `yaml:"tpot"`
	E2E  time.Duration `yaml:"e2e"`
}

// sloKeys are the SLO's keys, in the order String writes them.
var sloKeys = []string{"ttft", "tpot", "e2e"}

func (s *SLO) bound(key string) *time.Duration {
	switch key {
	case "ttft":
		return &s.TTFT
	case "tpot":
		return &s.TPOT
	case "e2e":
		return &s.E2E
	}
	return nil
}

// ParseSLO parses --slo's form, "ttft=500ms,tpot=50ms,e2e=2s": one or
// more of ttft, tpot and e2e, each with a positive Go duration.
func ParseSLO(spec string) (*SLO, error) {
	slo := &SLO{}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, ok := strings.Cut(part, "=")
		key, value = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value)
		if !ok {
			return nil, fmt.Errorf("%q: want KEY=DURATION (keys: %s), e.g. ttft=500ms,tpot=50ms", part, strings.Join(sloKeys, ", "))
		}
		b := slo.bound(key)
		if b == nil {
			return nil, fmt.Errorf("%q: unknown bound %q (keys: %s)", part, key, strings.Join(sloKeys, ", "))
		}
		if seen[key] {
			return nil, fmt.Errorf("%q: %s is given twice", spec, key)
		}
		seen[key] = true
		d, err := time.ParseDuration(value)
		if err != nil {
			return nil, fmt.Errorf("%q: %s needs a duration with its unit, e.g. %s=500ms", part, key, key)
		}
		*b = d
	}
	if err := slo.check(); err != nil {
		return nil, err
	}
	return slo, nil
}

// check reports a bound that is not positive, or no bound at all.
func (s *SLO) check() error {
	var problems []string
	for _, k := range sloKeys {
		if d := *s.bound(k); d < 0 {
			problems = append(problems, fmt.Sprintf("%s %s: a bound must be positive", k, d))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	if s.Empty() {
		return fmt.Errorf("no bound given: give one or more of %s, e.g. ttft=500ms,tpot=50ms", strings.Join(sloKeys, ", "))
	}
	return nil
}

// Empty reports whether s bounds nothing.
func (s *SLO) Empty() bool { return s == nil || (s.TTFT <= 0 && s.TPOT <= 0 && s.E2E <= 0) }

// String is the SLO in ParseSLO's form, bounds in the order ttft, tpot,
// e2e: "ttft=500ms,e2e=2s"; "" for none. Two runs promised the same when
// their strings are equal.
func (s *SLO) String() string {
	if s.Empty() {
		return ""
	}
	var parts []string
	for _, k := range sloKeys {
		if d := *s.bound(k); d > 0 {
			parts = append(parts, k+"="+d.String())
		}
	}
	return strings.Join(parts, ",")
}

// Keys are the bounds s sets, in String's order.
func (s *SLO) Keys() []string {
	if s.Empty() {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(sloKeys), func(k string) bool { return *s.bound(k) <= 0 })
}
