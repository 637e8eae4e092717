package htmlreport

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/tokenwatt/tokenwatt/report"
)

// sweepFile is a sweep's own report in its directory (`loadgen sweep`,
// schema sweepSchema). The page reads only which runs are its points,
// in which order, and its frontier latency; every figure comes from the
// points' report.json.
const (
	sweepFile   = "sweep.json"
	sweepSchema = "tokenwatt.sweep/v1"
)

type sweepJSON struct {
	Schema          string `json:"schema"`
	SweepID         string `json:"sweep_id"`
	Load            string `json:"load"`
	FrontierLatency string `json:"frontier_latency"`
	StopReason      string `json:"stop_reason"`
	StopDetail      string `json:"stop_detail"`
	Points          []struct {
		RunID string `json:"run_id"`
		Dir   string `json:"dir"` // relative to the sweep's directory
	} `json:"points"`
}

// latency names one latency figure of a run: a distribution of
// report.json's latency_s and a statistic of it.
type latency struct{ dist, stat string }

var latencyDists = []string{"ttft", "itl", "tpot", "e2e", "e2e_from_sched"}

// parseLatency reads DIST_STAT: DIST one of latencyDists, STAT mean or
// a percentile of report.json (p50, p90, p95, p99, p99.9).
func parseLatency(s string) (latency, error) {
	bad := fmt.Errorf("latency %q: want DIST_STAT, DIST one of %s, STAT mean, p50, p90, p95, p99 or p99.9 (e.g. e2e_p99)", s, strings.Join(latencyDists, ", "))
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return latency{}, bad
	}
	l := latency{s[:i], s[i+1:]}
	ok := l.stat == "mean"
	for _, p := range report.ReportPercentiles {
		ok = ok || l.stat == report.PercentileKey(p)
	}
	if !ok || !slices.Contains(latencyDists, l.dist) {
		return latency{}, bad
	}
	return l, nil
}

func (l latency) String() string { return l.dist + "_" + l.stat }

// of is the figure in a report; nil when not measured.
func (l latency) of(rep *report.Report) *float64 {
	d := rep.Latency[l.dist]
	if d == nil || d.Count == 0 {
		return nil
	}
	v := d.Mean
	if l.stat != "mean" {
		var ok bool
		if v, ok = d.Percentiles[l.stat]; !ok {
			return nil
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// sweepPoint is one point of a sweep: its run's report and the two
// figures the frontier weighs.
type sweepPoint struct {
	dir      string
	rep      *report.Report
	lat, jpt *float64 // seconds; J per output token
	frontier bool
}

// load is the point's load: its target rate, else its concurrency.
func (p *sweepPoint) load() (float64, string) {
	if p.rep.Rates.Target != nil {
		return *p.rep.Rates.Target, fmt.Sprintf("%.4g/s", *p.rep.Rates.Target)
	}
	if c := p.rep.Settings.Concurrency; c > 0 {
		return float64(c), fmt.Sprintf("c%d", c)
	}
	return 0, "seq"
}

// frontier marks the points that no other point beats on both J per
// output token and latency (each at most this one's, one lower).
func frontier(pts []*sweepPoint) {
	has := func(p *sweepPoint) bool { return p.lat != nil && p.jpt != nil }
	for _, p := range pts {
		p.frontier = has(p)
		for _, q := range pts {
			if q == p || !p.frontier || !has(q) {
				continue
			}
			if *q.lat <= *p.lat && *q.jpt <= *p.jpt && (*q.lat < *p.lat || *q.jpt < *p.jpt) {
				p.frontier = false
			}
		}
	}
}

// sweepPoints reads a sweep's points: those sweep.json lists, in its
// order, or without one every run directory in dir that has a
// report.json, by rising load. It returns sweep.json too (nil without).
func sweepPoints(dir string) ([]*sweepPoint, *sweepJSON, error) {
	var sj *sweepJSON
	b, err := os.ReadFile(filepath.Join(dir, sweepFile))
	switch {
	case err == nil:
		sj = new(sweepJSON)
		if err := json.Unmarshal(b, sj); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", filepath.Join(dir, sweepFile), err)
		}
		if sj.Schema != sweepSchema {
			return nil, nil, fmt.Errorf("read %s: schema %q, want %q", filepath.Join(dir, sweepFile), sj.Schema, sweepSchema)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, err
	}
	var dirs []string
	if sj != nil {
		for _, p := range sj.Points {
			d := p.Dir
			if d == "" {
				d = p.RunID
			}
			if !filepath.IsAbs(d) {
				d = filepath.Join(dir, d)
			}
			dirs = append(dirs, d)
		}
	} else {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range ents {
			d := filepath.Join(dir, e.Name())
			if e.IsDir() && isRunDir(d) {
				if _, err := os.Stat(filepath.Join(d, report.ReportFileName)); err == nil {
					dirs = append(dirs, d)
				}
			}
		}
	}
	var pts []*sweepPoint
	for _, d := range dirs {
		rep, err := report.ReadReport(filepath.Join(d, report.ReportFileName))
		if err != nil {
			return nil, nil, err
		}
		pts = append(pts, &sweepPoint{dir: d, rep: rep})
	}
	if len(pts) == 0 {
		return nil, nil, fmt.Errorf("%s: not a run directory (it has no %s), and no run directory with a %s in it", dir, recordsFile, report.ReportFileName)
	}
	if sj == nil {
		slices.SortStableFunc(pts, func(a, b *sweepPoint) int {
			// Open-loop points first, then closed-loop, each by rising load.
			ra, rb := a.rep.Rates.Target != nil, b.rep.Rates.Target != nil
			if ra != rb {
				if ra {
					return -1
				}
				return 1
			}
			la, _ := a.load()
			lb, _ := b.load()
			return cmp.Compare(la, lb)
		})
	}
	return pts, sj, nil
}

// sweepPage is a sweep's page: throughput and J per output token against
// latency, one point per run, the frontier marked.
func sweepPage(dir, lat string) (*page, error) {
	pts, sj, err := sweepPoints(dir)
	if err != nil {
		return nil, err
	}
	if lat == "" && sj != nil {
		lat = sj.FrontierLatency
	}
	l, err := parseLatency(orDefault(lat, DefaultLatency))
	if err != nil {
		return nil, err
	}
	for _, p := range pts {
		p.lat = l.of(p.rep)
		if p.rep.Energy != nil {
			p.jpt = p.rep.Energy.JoulesPerOutputToken
		}
	}
	frontier(pts)
	name := filepath.Base(filepath.Clean(dir))
	if sj != nil && sj.SweepID != "" {
		name = sj.SweepID
	}
	p := &page{Title: "tokenwatt sweep " + name, Heading: "Sweep " + name,
		Sub: fmt.Sprintf("%d points; the energy–latency frontier is the points no other beats on both J per output token and %s.", len(pts), l)}
	if sj == nil {
		p.Notes = append(p.Notes, fmt.Sprintf("No %s: the points are the run directories in %s, by rising load.", sweepFile, dir))
	} else if sj.StopReason != "" {
		p.Notes = append(p.Notes, strings.TrimSpace("The sweep stopped: "+sj.StopReason+". "+sj.StopDetail))
	}
	t := &table{Head: []string{"run", "load", "sent (req/s)", "output tokens/s", l.String(), "J per output token", "power avg (W)", "frontier"}}
	for _, pt := range pts {
		p.Simulated = p.Simulated || pt.rep.Simulated
		_, ld := pt.load()
		var avg *float64
		if pt.rep.Energy != nil {
			avg = pt.rep.Energy.AvgPowerW
		}
		fr := ""
		if pt.frontier {
			fr = "★"
		}
		t.Rows = append(t.Rows, []string{pt.rep.RunID, ld, fmtNum(pt.rep.Rates.Send), fmtNum(pt.rep.Tokens.OutputPerSecond),
			fmtSeconds(pt.lat), fmtNum(pt.jpt), fmtNum(avg), fr})
	}
	p.Table = t
	var meds []float64
	for _, pt := range pts {
		if pt.lat != nil {
			meds = append(meds, *pt.lat)
		}
	}
	if len(meds) == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("No point measured %s: no curves.", l))
		return p, nil
	}
	u := unitFor(meds...)
	xlabel := fmt.Sprintf("%s (%s)", l, u.name)
	c, err := sweepChart("chart-sweep-throughput", "Throughput against latency", xlabel, "output tokens / s", u, pts,
		func(pt *sweepPoint) *float64 { return pt.rep.Tokens.OutputPerSecond }, false)
	if err != nil {
		return nil, err
	}
	if c != nil {
		p.Charts = append(p.Charts, c)
	}
	c, err = sweepChart("chart-sweep-energy", "Energy per output token against latency", xlabel, "J per output token", u, pts,
		func(pt *sweepPoint) *float64 { return pt.jpt }, true)
	if err != nil {
		return nil, err
	}
	if c != nil {
		p.Charts = append(p.Charts, c)
	} else {
		p.Notes = append(p.Notes, "No point measured energy: no energy–latency curve.")
	}
	return p, nil
}

// sweepChart draws y against the latency, one labelled point per run
// joined in load order, the frontier's points ringed (and, on the
// energy chart, joined by a dashed line); nil when no point has both.
func sweepChart(id, title, xlabel, ylabel string, u unit, pts []*sweepPoint, y func(*sweepPoint) *float64, frontierLine bool) (*chart, error) {
	var xy, fr plotter.XYs
	var labels []string
	for _, pt := range pts {
		v := y(pt)
		if pt.lat == nil || v == nil {
			continue
		}
		q := plotter.XY{X: *pt.lat * u.scale, Y: *v}
		xy = append(xy, q)
		_, ld := pt.load()
		labels = append(labels, ld)
		if pt.frontier {
			fr = append(fr, q)
		}
	}
	if len(xy) == 0 {
		return nil, nil
	}
	p := newPlot(xlabel, ylabel)
	p.Y.Min = 0
	// Room for the labels right of the points, and for the legend.
	lo, hi, top := xy[0].X, xy[0].X, xy[0].Y
	for _, q := range xy {
		lo, hi, top = math.Min(lo, q.X), math.Max(hi, q.X), math.Max(top, q.Y)
	}
	pad := math.Max(hi-lo, math.Abs(hi)*0.05) * 0.08
	p.X.Min, p.X.Max = lo-pad, hi+pad
	if frontierLine {
		headroom(p, top)
	}
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return nil, err
	}
	line.Color, line.Width = colorOf(0), vg.Points(1.4)
	points.Color, points.Radius, points.Shape = colorOf(0), vg.Points(3), draw.CircleGlyph{}
	p.Add(line, points)
	p.Legend.Add("points, by load", line, points)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font = textFont
		lb.TextStyle[i].Font.Size = vg.Points(9)
	}
	lb.Offset = vg.Point{X: vg.Points(5), Y: vg.Points(3)}
	p.Add(lb)
	if len(fr) > 0 {
		slices.SortFunc(fr, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		ring, err := plotter.NewScatter(fr)
		if err != nil {
			return nil, err
		}
		ring.Color, ring.Radius, ring.Shape = colorOf(3), vg.Points(6), draw.RingGlyph{}
		if frontierLine && len(fr) > 1 {
			fl, err := plotter.NewLine(fr)
			if err != nil {
				return nil, err
			}
			fl.Color, fl.Width, fl.Dashes = colorOf(3), vg.Points(1.2), []vg.Length{vg.Points(5), vg.Points(3)}
			p.Add(fl)
		}
		p.Add(ring)
		p.Legend.Add("energy–latency frontier", ring)
	}
	// Throughput rises with latency, J per token falls: the legend goes
	// where the curve is not.
	p.Legend.Top = frontierLine
	p.Legend.XOffs = -vg.Points(6)
	if !frontierLine {
		p.Legend.YOffs = vg.Points(8)
	}
	svg, err := svgOf(p, smallW, smallH)
	if err != nil {
		return nil, err
	}
	return &chart{ID: id, Title: title, SVG: svg,
		Note: "Each point is one run, labelled with its load (requests per second, or cN: N in flight); ringed points are on the frontier."}, nil
}
