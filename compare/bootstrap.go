package compare

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// A statistic is computed from one run's requests, each counted as many
// times as a resample drew it. Two shapes cover every figure compare
// tests:
//
//   - a quantile: the value at rank ⌊q·(m−1)⌋ (numpy's "lower" method,
//     the summary's) among the m drawn requests that have the value;
//   - a ratio of sums: Σ num / Σ den over the drawn requests (a mean is
//     Σ value / Σ 1; J per output token Σ energy_j / Σ output_tokens;
//     goodput Σ met / window).
type statistic struct {
	// Quantile: q, and the requests that have the value, in increasing
	// order of it (index into the population, and the value).
	q      float64
	order  []int32
	values []float64
	// Ratio of sums: num and den per request (0: not counted), or a
	// constant denominator (den nil).
	num, den []float64
	constDen float64
	// size is how many requests it rests on: those with the value (a
	// quantile), with a denominator (a ratio), or all (a rate).
	size int
}

// quantileStat is the q-quantile of the values requests have (has false:
// none).
func quantileStat(n int, q float64, value func(i int) (float64, bool)) *statistic {
	s := &statistic{q: q, order: []int32{}}
	for i := range n {
		if _, ok := value(i); ok {
			s.order = append(s.order, int32(i))
		}
	}
	slices.SortStableFunc(s.order, func(a, b int32) int {
		va, _ := value(int(a))
		vb, _ := value(int(b))
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	s.size = len(s.order)
	s.values = make([]float64, len(s.order))
	for j, i := range s.order {
		s.values[j], _ = value(int(i))
	}
	return s
}

// ratioStat is Σ num / Σ den, each over the requests that have it (a
// den of nil divides by constDen instead). size is how many requests
// the statistic rests on, for the minimum a verdict needs.
func ratioStat(n int, num func(i int) (float64, bool), den func(i int) (float64, bool), constDen float64) *statistic {
	s := &statistic{num: make([]float64, n), constDen: constDen}
	if den != nil {
		s.den = make([]float64, n)
	}
	for i := range n {
		if v, ok := num(i); ok {
			s.num[i] = v
		}
		if den == nil {
			continue
		}
		if d, ok := den(i); ok {
			s.den[i] = d
			s.size++
		}
	}
	if den == nil {
		s.size = n
	}
	return s
}

// meanStat is the mean of the values requests have.
func meanStat(n int, value func(i int) (float64, bool)) *statistic {
	return ratioStat(n, value, func(i int) (float64, bool) {
		_, ok := value(i)
		return 1, ok
	}, 0)
}

// eval is the statistic over the requests drawn counts[i] times each
// (nil: each once); NaN when no drawn request has it.
func (s *statistic) eval(counts []int32) float64 {
	c := func(i int) float64 {
		if counts == nil {
			return 1
		}
		return float64(counts[i])
	}
	if s.num == nil {
		var m int64
		for _, i := range s.order {
			m += int64(c(int(i)))
		}
		if m == 0 {
			return math.NaN()
		}
		k := int64(math.Floor(s.q * float64(m-1)))
		var cum int64
		for j, i := range s.order {
			cum += int64(c(int(i)))
			if cum > k {
				return s.values[j]
			}
		}
		return s.values[len(s.values)-1]
	}
	var num, den float64
	for i, v := range s.num {
		if v == 0 && (s.den == nil || s.den[i] == 0) {
			continue
		}
		w := c(i)
		num += w * v
		if s.den != nil {
			den += w * s.den[i]
		}
	}
	if s.den == nil {
		den = s.constDen
	}
	if den == 0 {
		return math.NaN()
	}
	return num / den
}

// resampleChunk is how many resamples share one random generator: the
// resamples are cut into chunks, each seeded by (seed, chunk), so that the
// result does not depend on how many goroutines draw them.
const resampleChunk = 64

// bootstrap draws resamples of a population of n requests (n requests
// drawn with replacement, each resample from its own stream seeded by
// seed and its number) and evaluates every statistic on each: out[s][b]
// is statistic s on resample b.
func bootstrap(n int, stats []*statistic, resamples int, seed uint64) [][]float64 {
	out := make([][]float64, len(stats))
	for i := range out {
		out[i] = make([]float64, resamples)
	}
	if n == 0 {
		for i := range out {
			for b := range out[i] {
				out[i][b] = math.NaN()
			}
		}
		return out
	}
	chunks := (resamples + resampleChunk - 1) / resampleChunk
	next := make(chan int, chunks)
	for c := range chunks {
		next <- c
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), chunks) {
		wg.Go(func() {
			counts := make([]int32, n)
			for c := range next {
				rng := rand.New(rand.NewPCG(seed, uint64(c)))
				for b := c * resampleChunk; b < min(resamples, (c+1)*resampleChunk); b++ {
					clear(counts)
					for range n {
						counts[rng.IntN(n)]++
					}
					for s, st := range stats {
						out[s][b] = st.eval(counts)
					}
				}
			}
		})
	}
	wg.Wait()
	return out
}

// Interval is a confidence interval.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// percentileInterval is the central confidence·100 % interval of xs
// (NaNs left out), each end linearly interpolated between order
// statistics (numpy's default); ok is false with fewer than half the
// resamples usable.
func percentileInterval(xs []float64, confidence float64) (Interval, bool) {
	s := slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(s) < 2 || len(s)*2 < len(xs) {
		return Interval{}, false
	}
	slices.Sort(s)
	at := func(p float64) float64 {
		h := p * float64(len(s)-1)
		lo := math.Floor(h)
		i := int(lo)
		if i >= len(s)-1 {
			return s[len(s)-1]
		}
		return s[i] + (h-lo)*(s[i+1]-s[i])
	}
	alpha := 1 - confidence
	return Interval{Lo: at(alpha / 2), Hi: at(1 - alpha/2)}, true
}
