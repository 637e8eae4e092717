package sweep

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

// Schema names the version of sweep.json's layout (docs/sweep.md): fields
// are only ever added within a version.
const Schema = "tokenwatt.sweep/v1"

// FileName is the sweep's report, in its directory OUT/<sweep_id>/.
const FileName = "sweep.json"

// Stop reasons: why a sweep ended.
const (
	StopRunning     = "running"     // the sweep is under way (or was killed): the points so far
	StopCompleted   = "completed"   // every planned point ran
	StopSaturated   = "saturated"   // a point saturated the server (Point.Saturation says how)
	StopInterrupted = "interrupted" // Ctrl-C, SIGTERM
	StopFailed      = "failed"      // a point could not run or its requests failed (StopDetail says why)
)

// Sweep is sweep.json: the points a sweep ran, their key figures, and
// the energy–latency frontier among them.
type Sweep struct {
	Schema  string `json:"schema"`
	SweepID string `json:"sweep_id"`
	// BenchmarkName is the first point's (what ran, with its load).
	BenchmarkName string `json:"benchmark_name"`
	Scenario      string `json:"scenario"`
	Simulated     bool   `json:"simulated"`
	// Started and Finished bound the whole sweep, idle baseline included.
	Started  *time.Time `json:"started"`
	Finished *time.Time `json:"finished"`
	// Load is what varies (rate or concurrency); Planned are its values
	// in the order they were to run (Points may stop short of them).
	Load    Load      `json:"load"`
	Planned []float64 `json:"planned"`
	// StopOnSaturation says whether a saturated point ends the sweep.
	StopOnSaturation bool `json:"stop_on_saturation"`
	// FrontierLatency names the latency the frontier weighs against
	// J/token, e.g. e2e_p99 (ParseLatency).
	FrontierLatency string `json:"frontier_latency"`
	// Idle is the idle baseline the first point measured and the others
	// reused; null when none was measured.
	Idle *Idle `json:"idle"`
	// StopReason is why the sweep ended (StopCompleted, ...); StopDetail
	// says more (the saturated point's reason, the error).
	StopReason string  `json:"stop_reason"`
	StopDetail string  `json:"stop_detail"`
	Points     []Point `json:"points"`
	// Frontier are the run ids of the points on the energy–latency
	// frontier, by rising latency (so by falling J/token).
	Frontier []string `json:"frontier"`
	// Summary is the summary.csv the points' rows went to.
	Summary string `json:"summary"`
}

// Idle is an idle baseline: the GPUs' power, Σ over them, measured by
// one run before its first request.
type Idle struct {
	PowerW float64 `json:"power_w"`
	RunID  string  `json:"run_id"`
}

// Point is one load point: its run and that run's key figures, as in its
// report.json (docs/report.md), where the rest is.
type Point struct {
	Index int    `json:"index"` // 0-based, in the order run
	RunID string `json:"run_id"`
	// Dir is the run's directory, relative to the sweep's.
	Dir string `json:"dir"`
	// Load is the point's rate (req/s) or concurrency, as planned.
	Load float64 `json:"load"`
	// Rate is the target rate (null in closed loop); Concurrency the
	// closed loop's requests in flight, or an open loop's cap (0: none).
	Rate        *float64 `json:"rate"`
	Concurrency int      `json:"concurrency"`
	// RunStopReason is the run's stop_reason (count, duration, ...).
	RunStopReason string          `json:"run_stop_reason"`
	Requests      report.Requests `json:"requests"`
	// Rates are the target and achieved rates and the run's warning when
	// it fell short of the target.
	Rates  report.Rates  `json:"rates"`
	Tokens report.Tokens `json:"tokens"`
	// Latency are the run's distributions (ttft, itl, tpot, e2e, ...),
	// seconds, as report.json's latency_s.
	Latency map[string]*report.Distribution `json:"latency_s"`
	// Energy is as report.json's energy (J/token, avg power, ...); null
	// without an energy source.
	Energy *report.ReportEnergy `json:"energy"`
	// ClientSaturated says whether the load generator limited the run.
	ClientSaturated *bool `json:"client_saturated"`
	// GoodputRPS are the requests per second that met the SLO (--slo);
	// null without one.
	GoodputRPS *float64 `json:"goodput_rps"`
	// LatencyS is the frontier's latency (Sweep.FrontierLatency) of
	// this point, seconds; JoulesPerOutputToken is energy's, repeated
	// here beside it. Either null: the point is on no frontier.
	LatencyS             *float64 `json:"frontier_latency_s"`
	JoulesPerOutputToken *float64 `json:"joules_per_output_token"`
	// Frontier says whether no other point beats this one on both
	// J/token and LatencyS.
	Frontier bool `json:"frontier"`
	// Saturation says why this point counts as saturated (Saturation);
	// empty when it does not.
	Saturation string `json:"saturation"`
}

// FromReport is a point's figures from its run's report.json. The
// caller sets Index, Dir and Load.
func FromReport(rep *report.Report) Point {
	p := Point{RunID: rep.RunID, Rate: rep.Rates.Target, Concurrency: rep.Settings.Concurrency,
		RunStopReason: rep.StopReason, Requests: rep.Requests, Rates: rep.Rates, Tokens: rep.Tokens,
		Latency: rep.Latency, Energy: rep.Energy, ClientSaturated: rep.Client.Saturated,
		GoodputRPS: goodput(rep)}
	if rep.Energy != nil {
		p.JoulesPerOutputToken = rep.Energy.JoulesPerOutputToken
	}
	return p
}

// goodput is the run's SLO goodput, requests per second within the SLO.
//
// goodput is a point's SLO goodput in requests per second (report.json's
// slo.goodput_requests_per_s), nil without --slo.
func goodput(rep *report.Report) *float64 {
	if rep.SLO != nil {
		return rep.SLO.GoodputRequestsPerSecond
	}
	return nil
}

// Latency names one latency figure of a run: a distribution of
// report.json's latency_s (ttft, itl, tpot, e2e, e2e_from_sched) and a
// statistic of it (mean, p50, p90, p95, p99, p99.9).
type Latency struct {
	Dist, Stat string
}

// Latencies are the distributions a Latency may name.
var Latencies = []string{"ttft", "itl", "tpot", "e2e", "e2e_from_sched"}

// ParseLatency reads --frontier-latency: DIST_STAT, e.g. e2e_p99,
// ttft_p50, tpot_mean.
func ParseLatency(s string) (Latency, error) {
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return Latency{}, fmt.Errorf("%q: want DIST_STAT, DIST one of %s, STAT mean or p50, p90, p95, p99, p99.9 (e.g. e2e_p99)", s, strings.Join(Latencies, ", "))
	}
	l := Latency{Dist: s[:i], Stat: s[i+1:]}
	if !slices.Contains(Latencies, l.Dist) {
		return Latency{}, fmt.Errorf("%q: %q is none of %s", s, l.Dist, strings.Join(Latencies, ", "))
	}
	ok := l.Stat == "mean"
	for _, p := range report.ReportPercentiles {
		ok = ok || l.Stat == report.PercentileKey(p)
	}
	if !ok {
		return Latency{}, fmt.Errorf("%q: %q is not mean, p50, p90, p95, p99 or p99.9", s, l.Stat)
	}
	return l, nil
}

func (l Latency) String() string { return l.Dist + "_" + l.Stat }

// Of is the figure in a run's distributions; nil when not measured.
func (l Latency) Of(d map[string]*report.Distribution) *float64 {
	dist := d[l.Dist]
	if dist == nil || dist.Count == 0 {
		return nil
	}
	v := dist.Mean
	if l.Stat != "mean" {
		var ok bool
		if v, ok = dist.Percentiles[l.Stat]; !ok {
			return nil
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// SaturationShare is the share below which a figure counts as fallen
// short: a rate target not reached (report.RateTargetShare), SLO goodput
// below the best earlier point's, a concurrency's throughput gain below
// its rise.
const SaturationShare = report.RateTargetShare

// Saturation says why cur, run after earlier, shows the server
// saturated; "" when it does not. Its rules, in order:
//
//   - an open-loop point whose achieved rate fell short of its target
//     (below 95 %: report.json's rates.warning says so and why);
//   - SLO goodput below 95 % of the best earlier point's (only when both
//     have goodput: runs with --slo);
//   - a closed-loop point whose completion rate rose by less than 5 % of
//     the rise of its concurrency over the previous point's (4 → 8 in
//     flight, +100 %, must add more than 5 % requests per second): more
//     requests in flight only wait longer.
func Saturation(earlier []Point, cur *Point) string {
	if cur.Rates.Warning != "" {
		return cur.Rates.Warning
	}
	best := -1
	for i := range earlier {
		if g := earlier[i].GoodputRPS; g != nil && (best < 0 || *g > *earlier[best].GoodputRPS) {
			best = i
		}
	}
	if best >= 0 && cur.GoodputRPS != nil && *cur.GoodputRPS < SaturationShare**earlier[best].GoodputRPS {
		b := earlier[best]
		return fmt.Sprintf("SLO goodput fell to %.4g req/s, below %.0f %% of the %.4g req/s at %s",
			*cur.GoodputRPS, 100*SaturationShare, *b.GoodputRPS, b.RunID)
	}
	if cur.Rate == nil && len(earlier) > 0 {
		prev := earlier[len(earlier)-1]
		if prev.Rate == nil && prev.Concurrency > 0 && cur.Concurrency > prev.Concurrency &&
			prev.Rates.Completion != nil && cur.Rates.Completion != nil && *prev.Rates.Completion > 0 {
			rise := float64(cur.Concurrency)/float64(prev.Concurrency) - 1
			gain := *cur.Rates.Completion / *prev.Rates.Completion - 1
			if gain < (1-SaturationShare)*rise {
				return fmt.Sprintf("concurrency %d → %d (%+.0f %%) raised the completion rate by %+.1f %% (%.4g → %.4g req/s): the server is saturated, more requests in flight only wait",
					prev.Concurrency, cur.Concurrency, 100*rise, 100*gain, *prev.Rates.Completion, *cur.Rates.Completion)
			}
		}
	}
	return ""
}

// FrontierOf marks the points on the energy–latency frontier: those with
// both figures that no other point beats, that is, none has J/token and
// latency each at most this one's and one of them lower. It returns their
// indices by rising latency (then J/token).
func FrontierOf(points []Point) []int {
	has := func(p *Point) bool { return p.LatencyS != nil && p.JoulesPerOutputToken != nil }
	var idx []int
	for i := range points {
		p := &points[i]
		p.Frontier = false
		if !has(p) {
			continue
		}
		beaten := false
		for j := range points {
			q := &points[j]
			if j == i || !has(q) {
				continue
			}
			lq, jq, lp, jp := *q.LatencyS, *q.JoulesPerOutputToken, *p.LatencyS, *p.JoulesPerOutputToken
			if lq <= lp && jq <= jp && (lq < lp || jq < jp) {
				beaten = true
				break
			}
		}
		if !beaten {
			p.Frontier = true
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := &points[a], &points[b]
		if c := cmpFloat(*pa.LatencyS, *pb.LatencyS); c != 0 {
			return c
		}
		return cmpFloat(*pa.JoulesPerOutputToken, *pb.JoulesPerOutputToken)
	})
	return idx
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Update sets every point's frontier latency (s.FrontierLatency) and
// J/token, and the frontier.
func (s *Sweep) Update(l Latency) {
	s.FrontierLatency = l.String()
	for i := range s.Points {
		p := &s.Points[i]
		p.LatencyS = l.Of(p.Latency)
		p.JoulesPerOutputToken = nil
		if p.Energy != nil {
			p.JoulesPerOutputToken = p.Energy.JoulesPerOutputToken
		}
	}
	s.Frontier = []string{}
	for _, i := range FrontierOf(s.Points) {
		s.Frontier = append(s.Frontier, s.Points[i].RunID)
	}
}

// Write writes s as indented JSON to path, atomically (a temporary file
// renamed into place): a reader never sees half of it.
func Write(path string, s *Sweep) error {
	s.Schema = Schema
	return report.WriteJSON(path, s)
}

// Read reads a sweep.json, refusing another schema.
func Read(path string) (*Sweep, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Sweep
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("read %s: schema %q, want %q", path, s.Schema, Schema)
	}
	return &s, nil
}
