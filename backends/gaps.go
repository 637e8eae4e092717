package backends

import (
	"fmt"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// MaxITL is how many inter-token gaps a Response keeps one by one: the
// first MaxITL, which a record lists in itl_s. The gaps after them (an
// answer of more than MaxITL+1 chunks, or a server that streams without
// end) go to Response.MoreITL, whose memory does not grow with their
// number, so that the statistics still count every gap.
const MaxITL = 10000

// GapAccuracy is the relative accuracy at which a GapSketch keeps its
// gaps' distribution. It is the local summary's (loadgen's sketches,
// 0.1 %), so that merging a GapSketch there puts every gap in the bin it
// would have had on its own: the summary's percentiles come out as if
// each gap had been observed.
const GapAccuracy = 0.001

// GapSketch holds inter-token gaps in memory that does not grow with
// their number: their exact count, sum, minimum, maximum, mean and sum of
// squared deviations (for a standard deviation), and their distribution
// as a DDSketch at GapAccuracy. Values are seconds.
type GapSketch struct {
	sk       *ddsketch.DDSketchWithExactSummaryStatistics
	mean, m2 float64
}

func newGapSketch() *GapSketch {
	sk, err := ddsketch.NewDefaultDDSketchWithExactSummaryStatistics(GapAccuracy)
	if err != nil {
		// Only an accuracy outside (0, 1) fails, and GapAccuracy is a
		// constant inside it.
		panic(fmt.Sprintf("ddsketch with accuracy %v: %v", GapAccuracy, err))
	}
	return &GapSketch{sk: sk}
}

// add counts one gap.
func (g *GapSketch) add(d time.Duration) {
	x := d.Seconds()
	// A duration is finite and far below DDSketch's range limit, so Add
	// cannot fail.
	_ = g.sk.Add(x)
	delta := x - g.mean
	g.mean += delta / g.sk.GetCount()
	g.m2 += delta * (x - g.mean)
}

// Count is the number of gaps held; 0 for a nil GapSketch.
func (g *GapSketch) Count() int {
	if g == nil {
		return 0
	}
	return int(g.sk.GetCount())
}

// Sketch is the gaps' distribution with their exact count, sum, minimum
// and maximum. The caller must not modify it.
func (g *GapSketch) Sketch() *ddsketch.DDSketchWithExactSummaryStatistics { return g.sk }

// Moments are the gaps' count, mean and sum of squared deviations from
// the mean (Welford), for merging into a running standard deviation.
func (g *GapSketch) Moments() (n, mean, m2 float64) { return g.sk.GetCount(), g.mean, g.m2 }

// ForEach calls f for each bin of the distribution, in increasing order
// of value: the bin's value (within GapAccuracy of each gap in it) and
// how many gaps it holds. It does nothing for a nil GapSketch.
func (g *GapSketch) ForEach(f func(seconds float64, count int)) {
	if g == nil {
		return
	}
	g.sk.ForEach(func(value, count float64) bool {
		f(value, int(count+0.5))
		return false
	})
}

// AddGap records one inter-token gap: in ITL up to MaxITL of them, then
// in MoreITL.
func (r *Response) AddGap(d time.Duration) {
	if len(r.ITL) < MaxITL {
		r.ITL = append(r.ITL, d)
		return
	}
	if r.MoreITL == nil {
		r.MoreITL = newGapSketch()
	}
	r.MoreITL.add(d)
}
