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
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("rate must be a positive number of requests per second, got %v", rate)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x746f6b656e77)) // "tokenw": a fixed stream id
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
