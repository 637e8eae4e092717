// Package sweep is `loadgen sweep`'s pure part: the load points a sweep
// runs (a list or a range of rates or concurrencies), each point's key
// figures read from its run's report.json, the rules that stop a sweep
// when the server saturates, the energy–latency frontier, sweep.json
// (schema tokenwatt.sweep/v1, docs/sweep.md) and the terminal table.
//
// It runs nothing: cmd/loadgen runs each point (package loadgen/run) and
// hands this package the report. It must not depend on the load
// generator, the backends or the energy sources.
package sweep

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxPoints bounds a sweep's points: a range that would give more is
// refused, most likely a typo (1:1000:+0.001).
const MaxPoints = 1000

// Load is what a sweep varies.
type Load string

const (
	// LoadRate varies the open-loop arrival rate, requests per second.
	LoadRate Load = "rate"
	// LoadConcurrency varies the closed loop's requests in flight.
	LoadConcurrency Load = "concurrency"
)

// ParseRates reads --rates: a comma list ("1,2,4,8"), a geometric range
// "FROM:TO:xFACTOR" ("1:64:x2": 1, 2, 4, ... 64) or an arithmetic one
// "FROM:TO:+STEP" ("5:50:+5"). A range includes TO when a step lands on
// it (to within a part in a million) and stops below it otherwise. Each
// rate must be above 0; the points need not be in order, but are run in
// the order given.
func ParseRates(s string) ([]float64, error) {
	vals, err := parseValues(s)
	if err != nil {
		return nil, err
	}
	for _, v := range vals {
		if !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q: a rate must be a number above 0 req/s, got %g", s, v)
		}
	}
	return vals, nil
}

// ParseConcurrencies reads --concurrencies as ParseRates reads --rates;
// each value must be a whole number of requests in flight, 1 or more.
func ParseConcurrencies(s string) ([]int, error) {
	vals, err := parseValues(s)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(vals))
	for i, v := range vals {
		r := math.Round(v)
		if r < 1 || math.Abs(v-r) > 1e-6*r || r > math.MaxInt32 {
			return nil, fmt.Errorf("%q: a concurrency must be a whole number, 1 or more, got %g", s, v)
		}
		out[i] = int(r)
	}
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, fmt.Errorf("%q: concurrency %d twice in a row (a range's step is too small)", s, out[i])
		}
	}
	return out, nil
}

func parseValues(s string) ([]float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty: give a list (1,2,4) or a range (1:64:x2, 5:50:+5)")
	}
	if strings.Contains(s, ":") {
		return parseRange(s)
	}
	var vals []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not a number", s, strings.TrimSpace(f))
		}
		vals = append(vals, v)
	}
	if len(vals) > MaxPoints {
		return nil, fmt.Errorf("%q: %d points, at most %d", s, len(vals), MaxPoints)
	}
	return vals, nil
}

func parseRange(s string) ([]float64, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%q: a range is FROM:TO:xFACTOR or FROM:TO:+STEP", s)
	}
	from, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
	to, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
	if err1 != nil || err2 != nil || !(from > 0) || !(to >= from) || math.IsInf(to, 0) {
		return nil, fmt.Errorf("%q: a range needs 0 < FROM <= TO", s)
	}
	step := strings.TrimSpace(parts[2])
	geometric := strings.HasPrefix(step, "x") || strings.HasPrefix(step, "*")
	if !geometric && !strings.HasPrefix(step, "+") {
		return nil, fmt.Errorf("%q: the step is xFACTOR (geometric, x2) or +STEP (arithmetic, +5)", s)
	}
	by, err := strconv.ParseFloat(step[1:], 64)
	switch {
	case err != nil || math.IsInf(by, 0) || math.IsNaN(by):
		return nil, fmt.Errorf("%q: step %q is not a number", s, step)
	case geometric && !(by > 1):
		return nil, fmt.Errorf("%q: a geometric range's factor must be above 1", s)
	case !geometric && !(by > 0):
		return nil, fmt.Errorf("%q: an arithmetic range's step must be above 0", s)
	}
	const tol = 1e-6
	var vals []float64
	for i := 0; ; i++ {
		v := from + float64(i)*by // arithmetic: no accumulated error
		if geometric {
			v = from * math.Pow(by, float64(i))
		}
		if v > to*(1+tol) {
			break
		}
		if math.Abs(v-to) <= to*tol {
			v = to
		}
		if len(vals) == MaxPoints {
			return nil, fmt.Errorf("%q: more than %d points", s, MaxPoints)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// FormatLoad writes a point's load as its run id's suffix and the table
// show it: r4, r0.5 (rate) or c16 (concurrency).
func FormatLoad(load Load, v float64) string {
	if load == LoadConcurrency {
		return "c" + strconv.FormatFloat(v, 'f', -1, 64)
	}
	return "r" + strconv.FormatFloat(v, 'g', 6, 64)
}
