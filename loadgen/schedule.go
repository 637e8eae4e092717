package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// Schedule yields the intended send times of an open-loop run as offsets
// from the run's start. Offsets are absolute, not gaps to sleep, so that
// a late wake-up never shifts the requests after it: the schedule cannot
// drift, and lateness shows up as schedule lag instead.
type Schedule interface {
	// Next returns the offset of the next arrival. Offsets never decrease.
	Next() time.Duration
}

// NewSchedule returns the arrival schedule for rate requests per second.
// burstiness is the gamma distribution's shape (1 = poisson; < 1 burstier,
// > 1 more regular), used only by scenario.ArrivalGamma. The same seed
// gives the same schedule.
func NewSchedule(arrival string, rate, burstiness float64, seed int64) (Schedule, error) {
	return newSchedule(arrival, rate, burstiness, scheduleRNG(seed, 0))
}

// scheduleRNG is the random stream of a schedule: one per stage, so that
// each stage's arrivals are independent of the others' and the same seed
// gives the same run. Stage 0's is a plain run's.
func scheduleRNG(seed int64, stage int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x746f6b656e77+uint64(stage))) // "tokenw": a fixed stream id
}

func newSchedule(arrival string, rate, burstiness float64, rng *rand.Rand) (Schedule, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("rate must be a positive number of requests per second, got %v", rate)
	}
	mean := 1 / rate
	switch arrival {
	case "", scenario.ArrivalConstant:
		return &constantSchedule{period: mean}, nil
	case scenario.ArrivalPoisson:
		return &randomSchedule{gap: func() float64 { return rng.ExpFloat64() * mean }}, nil
	case scenario.ArrivalGamma:
		if !(burstiness > 0) {
			return nil, fmt.Errorf("--burstiness must be > 0 for gamma arrivals, got %v", burstiness)
		}
		scale := mean / burstiness
		if math.IsInf(scale, 0) {
			return nil, fmt.Errorf("--burstiness %v is too small for rate %v", burstiness, rate)
		}
		return &randomSchedule{gap: func() float64 { return gammaSample(rng, burstiness) * scale }}, nil
	default:
		return nil, fmt.Errorf("unknown arrival %q (want constant, poisson or gamma)", arrival)
	}
}

// NewRampSchedule returns the arrival schedule of a rate that changes
// linearly from `from` to `to` requests per second over d; its offsets
// reach d or more once the ramp is over. The arrival process is the same
// as NewSchedule's, run at one request per second in the ramp's
// operational time u = Λ(t) = ∫₀ᵗ λ(s) ds and mapped back to real time by
// t = Λ⁻¹(u) (time rescaling). Constant arrivals then come whenever the
// integral of the rate reaches the next whole request; poisson arrivals
// are exactly an inhomogeneous poisson process of rate λ(t) (the
// time-rescaling theorem), with no candidates thrown away as thinning
// would; gamma arrivals keep their shape, and so their burstiness, at
// every rate along the way.
func NewRampSchedule(arrival string, from, to float64, d time.Duration, burstiness float64, seed int64) (Schedule, error) {
	return newRampSchedule(arrival, from, to, d, burstiness, scheduleRNG(seed, 0))
}

func newRampSchedule(arrival string, from, to float64, d time.Duration, burstiness float64, rng *rand.Rand) (Schedule, error) {
	switch {
	case !(from >= 0) || !(to >= 0) || math.IsInf(from, 0) || math.IsInf(to, 0) || !(max(from, to) > 0):
		return nil, fmt.Errorf("a ramp needs rates of 0 or more, not both 0, got %v to %v", from, to)
	case d <= 0:
		return nil, fmt.Errorf("a ramp needs a duration, got %v", d)
	}
	unit, err := newSchedule(arrival, 1, burstiness, rng)
	if err != nil {
		return nil, err
	}
	secs := d.Seconds()
	return &rampSchedule{unit: unit, from: from, slope: (to - from) / secs, d: d, total: (from + to) / 2 * secs}, nil
}

// rampSchedule maps a one-request-per-second schedule through the inverse
// of a linear rate's integral.
type rampSchedule struct {
	unit        Schedule
	from, slope float64 // λ(t) = from + slope·t, requests per second
	d           time.Duration
	total       float64 // Λ(d): the requests the whole ramp holds
}

func (s *rampSchedule) Next() time.Duration {
	u := s.unit.Next().Seconds()
	if u >= s.total {
		return s.d
	}
	return min(seconds(s.inverse(u)), s.d)
}

// inverse solves Λ(t) = from·t + slope·t²/2 = u for t in [0, d]. The form
// 2u / (from + √(from² + 2·slope·u)) is the root that is continuous
// through slope 0, and loses no precision to cancellation.
func (s *rampSchedule) inverse(u float64) float64 {
	if u <= 0 {
		return 0
	}
	disc := s.from*s.from + 2*s.slope*u
	if disc < 0 { // past the ramp's end (rounding): a falling rate reached 0
		disc = 0
	}
	den := s.from + math.Sqrt(disc)
	if den <= 0 {
		return s.d.Seconds()
	}
	return 2 * u / den
}

// constantSchedule sends request k at k/rate. It multiplies instead of
// accumulating so that float rounding cannot build up over a long soak.
type constantSchedule struct {
	period float64 // seconds
	k      int64
}

func (s *constantSchedule) Next() time.Duration {
	at := seconds(float64(s.k) * s.period)
	s.k++
	return at
}

// randomSchedule sums independent random gaps. The first request goes at
// offset 0 so that a run starts when it is started.
type randomSchedule struct {
	gap     func() float64 // seconds
	elapsed float64        // seconds
	started bool
}

func (s *randomSchedule) Next() time.Duration {
	if s.started {
		s.elapsed += s.gap()
	}
	s.started = true
	return seconds(s.elapsed)
}

// maxOffset is the latest offset a schedule gives: about 292 years, the
// longest time.Duration. An offset past it (a tiny rate, a long gamma
// tail) saturates there, which is never in practice.
const maxOffset = time.Duration(math.MaxInt64)

// seconds converts an offset in seconds to a Duration, saturating at
// maxOffset. Go's conversion of an out-of-range float is
// implementation-defined (on amd64 it gives the most negative Duration,
// which would send the request at once), so the range is checked first.
// NaN, which no valid schedule produces, is also taken as never.
func seconds(s float64) time.Duration {
	ns := s * float64(time.Second)
	switch {
	case ns >= float64(maxOffset) || math.IsNaN(ns):
		return maxOffset
	case ns <= 0:
		return 0
	}
	return time.Duration(ns)
}

// gammaSample draws from Gamma(shape, 1) with Marsaglia and Tsang's method;
// shapes below 1 use the boost Gamma(a) = Gamma(a+1) · U^(1/a).
func gammaSample(rng *rand.Rand, shape float64) float64 {
	if shape < 1 {
		u := rng.Float64()
		for u == 0 {
			u = rng.Float64()
		}
		return gammaSample(rng, shape+1) * math.Pow(u, 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := rng.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := rng.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}
