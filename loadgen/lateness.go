package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// latenessHist is a cumulative histogram of durations in fixed
// log-linear buckets, safe for concurrent use without locks: the
// client lateness of stamped text chunks (backends.Response.Lateness),
// for the saturation monitor, which takes a quantile of what it gained
// in each window (histQuantile), as it does of Go's scheduling
// latencies.
//
// Durations under 2^latenessSubBits ns have a bucket each (negative ones
// share the first); above, each power of two is split into
// 2^latenessSubBits equal buckets, so a bucket's lower bound is within
// 1/16 (6.25 %) of any value in it; from 2^latenessMaxExp ns (18
// minutes) on, one last bucket.
type latenessHist struct {
	counts [latenessBuckets]atomic.Uint64
}

const (
	latenessSubBits = 4
	latenessSub     = 1 << latenessSubBits
	latenessMaxExp  = 40
	latenessBuckets = latenessSub + (latenessMaxExp-latenessSubBits)*latenessSub + 1
)

// latenessBounds are the buckets' lower bounds in seconds, then +Inf:
// the first bucket's is -Inf (it holds the negative durations too).
var latenessBounds = func() []float64 {
	b := make([]float64, latenessBuckets+1)
	b[0] = math.Inf(-1)
	for i := 1; i < latenessBuckets; i++ {
		b[i] = float64(latenessLower(i)) / float64(time.Second)
	}
	b[latenessBuckets] = math.Inf(1)
	return b
}()

// latenessIndex is the bucket of d.
func latenessIndex(d time.Duration) int {
	if d < latenessSub {
		return int(max(d, 0))
	}
	v := uint64(d)
	e := bits.Len64(v) - 1 // latenessSubBits ≤ e ≤ 62
	if e >= latenessMaxExp {
		return latenessBuckets - 1
	}
	sub := int(v>>(e-latenessSubBits)) & (latenessSub - 1)
	return latenessSub + (e-latenessSubBits)*latenessSub + sub
}

// latenessLower is the lower bound of bucket i (i ≥ 1), in nanoseconds.
func latenessLower(i int) int64 {
	if i < latenessSub {
		return int64(i)
	}
	j := i - latenessSub
	e, sub := latenessSubBits+j/latenessSub, j%latenessSub
	return int64(latenessSub+sub) << (e - latenessSubBits)
}

func (h *latenessHist) add(d time.Duration) { h.counts[latenessIndex(d)].Add(1) }

// ObserveLateness counts one stamped chunk as it arrives
// (backends.LatenessObserver).
func (h *latenessHist) ObserveLateness(d time.Duration) { h.add(d) }

// read appends the cumulative counts to dst[:0].
func (h *latenessHist) read(dst []uint64) []uint64 {
	dst = dst[:0]
	for i := range h.counts {
		dst = append(dst, h.counts[i].Load())
	}
	return dst
}
