package htmlreport

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chart is one figure of the page: an SVG drawn by gonum/plot.
type chart struct {
	ID    string // the figure's HTML id, "chart-" and a name
	Title string
	Note  string // a line under the chart: what it shows, what it left out
	Wide  bool   // spans the page's width
	SVG   template.HTML
}

// Chart sizes, in points (1/72 in; the page scales them to its width).
const (
	smallW, smallH = 4.6 * vg.Inch, 3.1 * vg.Inch
	wideW, wideH   = 14 * vg.Inch, 3.4 * vg.Inch
)

// palette is Okabe and Ito's colour-blind-safe set; every series is
// drawn in a colour, never black, which is the axes' and the text's.
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, // blue
	{0xE6, 0x9F, 0x00, 0xff}, // orange
	{0x00, 0x9E, 0x73, 0xff}, // green
	{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	{0xCC, 0x79, 0xA7, 0xff}, // purple
	{0x56, 0xB4, 0xE9, 0xff}, // sky blue
}

func colorOf(i int) color.RGBA { return palette[i%len(palette)] }

func withAlpha(c color.RGBA, a uint8) color.NRGBA {
	return color.NRGBA{R: c.R, G: c.G, B: c.B, A: a}
}

// textFont is the charts' font: Liberation Sans, whose metrics gonum/plot
// lays the text out with; the page's style falls back to Arial and
// Helvetica, which share them, so nothing is fetched to show it.
var textFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

// newPlot is a plot with the report's fonts, a grid and axis labels.
func newPlot(xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	for _, st := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		size := st.Size
		*st = textFont
		st.Size = size
	}
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks{}, ticks{}
	g := plotter.NewGrid()
	g.Vertical.Color, g.Horizontal.Color = color.Gray{Y: 0xe4}, color.Gray{Y: 0xe4}
	p.Add(g)
	p.Legend.Top = true
	return p
}

// ticks are gonum/plot's default ticks, labelled with as few digits as
// their values need (250, not 250.00).
type ticks struct{}

func (ticks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// headroom raises the y axis's top by a third over the data's highest
// value, so that a legend at the top covers none of it.
func headroom(p *plot.Plot, top float64) {
	if top > 0 && !math.IsInf(top, 0) {
		p.Y.Max = math.Max(p.Y.Max, top*1.35)
	}
}

// svgOf draws p as an SVG element for the page: without the XML prelude
// (the SVG is inline).
func svgOf(p *plot.Plot, w, h vg.Length) (template.HTML, error) {
	c := vgsvg.New(w, h)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	s := b.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	// The SVG is gonum/plot's, its text escaped by it (html.EscapeString).
	return template.HTML(s), nil // #nosec G203 -- generated, escaped text
}

// unit is how a chart shows seconds.
type unit struct {
	name  string
	scale float64
}

// unitFor shows durations in milliseconds when most of them are under a
// second, else in seconds.
func unitFor(medians ...float64) unit {
	m := 0.0
	for _, v := range medians {
		m = math.Max(m, v)
	}
	if m < 1 {
		return unit{"ms", 1e3}
	}
	return unit{"s", 1}
}

// sorted returns the sample's values sorted, scaled.
func sorted(s *sample, scale float64) []float64 {
	v := make([]float64, len(s.vals))
	for i, x := range s.vals {
		v[i] = x * scale
	}
	slices.Sort(v)
	return v
}

// quantile is the value at rank ⌊q·(n−1)⌋ of sorted values.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return v[int(q*float64(len(v)-1))]
}

// cdfPoints are at most 1,000 points of the empirical CDF of sorted
// values v: (value, share of values at or below it, in %).
func cdfPoints(v []float64) plotter.XYs {
	n := len(v)
	m := min(n, 1000)
	pts := make(plotter.XYs, 0, m+1)
	pts = append(pts, plotter.XY{X: v[0], Y: 0})
	for k := range m {
		i := n - 1
		if m > 1 {
			i = int(math.Round(float64(k) * float64(n-1) / float64(m-1)))
		}
		pts = append(pts, plotter.XY{X: v[i], Y: 100 * float64(i+1) / float64(n)})
	}
	return pts
}

// series is one labelled sample of a chart (a run's, in a comparison),
// drawn in palette colour color.
type series struct {
	label string
	s     *sample
	color int
}

// sampleNote says when a chart drew a sample of the values.
func sampleNote(what string, ss ...series) string {
	var parts []string
	for _, x := range ss {
		if x.s.sampled() {
			l := ""
			if len(ss) > 1 {
				l = x.label + ": "
			}
			parts = append(parts, fmt.Sprintf("%sa uniform sample of %d of %d %s", l, len(x.s.vals), x.s.n, what))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "Drawn from " + strings.Join(parts, "; ") + "."
}

// cdfChart overlays the empirical CDFs of the series (one per run; the
// page's key names their colours); nil when none has a value. seconds
// says the values are durations.
func cdfChart(id, title, axis string, seconds bool, ss []series, note string) (*chart, error) {
	var keep []series
	var medians []float64
	for _, x := range ss {
		if len(x.s.vals) > 0 {
			keep = append(keep, x)
			medians = append(medians, quantile(sorted(x.s, 1), 0.5))
		}
	}
	if len(keep) == 0 {
		return nil, nil
	}
	u := unit{"", 1}
	label := axis
	if seconds {
		u = unitFor(medians...)
		label = fmt.Sprintf("%s (%s)", axis, u.name)
	}
	p := newPlot(label, "requests at or below (%)")
	if strings.HasPrefix(axis, "ITL") {
		p.Y.Label.Text = "gaps at or below (%)"
	}
	p.Y.Min, p.Y.Max = 0, 100
	for _, x := range keep {
		l, err := plotter.NewLine(cdfPoints(sorted(x.s, u.scale)))
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = colorOf(x.color), vg.Points(1.6)
		p.Add(l)
	}
	svg, err := svgOf(p, smallW, smallH)
	if err != nil {
		return nil, err
	}
	what := "requests"
	if strings.HasPrefix(axis, "ITL") {
		what = "gaps"
	}
	return &chart{ID: id, Title: title, SVG: svg, Note: strings.TrimSpace(note + " " + sampleNote(what, keep...))}, nil
}

// histChart is the histogram of one sample: 40 bins from its least
// value; a far tail (the largest value over twice the 99.9th percentile)
// is cut at that percentile and counted in the note.
func histChart(id, title, axis string, s *sample, what string) (*chart, error) {
	if len(s.vals) == 0 {
		return nil, nil
	}
	v := sorted(s, 1)
	u := unitFor(quantile(v, 0.5))
	v = sorted(s, u.scale)
	note := ""
	if hi := quantile(v, 0.999); v[len(v)-1] > 2*hi && hi > v[0] {
		cut := len(v) - 1
		for cut >= 0 && v[cut] > hi {
			cut--
		}
		note = fmt.Sprintf("%d %s above %.4g %s (the 99.9th percentile) are not drawn; the largest is %.4g %s.",
			len(v)-1-cut, what, hi, u.name, v[len(v)-1], u.name)
		v = v[:cut+1]
	}
	p := newPlot(fmt.Sprintf("%s (%s)", axis, u.name), what)
	h, err := plotter.NewHist(plotter.Values(v), 40)
	if err != nil {
		return nil, err
	}
	h.FillColor, h.LineStyle.Color = withAlpha(colorOf(0), 0xcc), colorOf(0)
	h.LineStyle.Width = vg.Points(0.5)
	p.Add(h)
	svg, err := svgOf(p, smallW, smallH)
	if err != nil {
		return nil, err
	}
	return &chart{ID: id, Title: title, SVG: svg, Note: strings.TrimSpace(note + " " + sampleNote(what, series{s: s}))}, nil
}

// steps draws binned values as a step line from x=0, one step per bin
// of width w; NaN bins break it into several lines.
func steps(vals []float64, w float64, c color.Color, width vg.Length) ([]*plotter.Line, error) {
	var lines []*plotter.Line
	var cur plotter.XYs
	flush := func() error {
		if len(cur) > 0 {
			l, err := plotter.NewLine(cur)
			if err != nil {
				return err
			}
			l.Color, l.Width = c, width
			lines = append(lines, l)
		}
		cur = nil
		return nil
	}
	for i, v := range vals {
		if math.IsNaN(v) {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur = append(cur, plotter.XY{X: float64(i) * w, Y: v}, plotter.XY{X: float64(i+1) * w, Y: v})
	}
	return lines, flush()
}

// band is the area between two step curves over bins of width w.
func band(lower, upper []float64, w float64, fill color.Color) (*plotter.Polygon, error) {
	var ring plotter.XYs
	for i, v := range upper {
		ring = append(ring, plotter.XY{X: float64(i) * w, Y: v}, plotter.XY{X: float64(i+1) * w, Y: v})
	}
	for i := len(lower) - 1; i >= 0; i-- {
		ring = append(ring, plotter.XY{X: float64(i+1) * w, Y: lower[i]}, plotter.XY{X: float64(i) * w, Y: lower[i]})
	}
	pg, err := plotter.NewPolygon(ring)
	if err != nil {
		return nil, err
	}
	pg.Color, pg.LineStyle.Width = fill, 0
	return pg, nil
}

// inFlightChart is the requests in flight over the run, time-averaged
// per bin.
func inFlightChart(r *runData) (*chart, error) {
	w := r.binWidth()
	p := newPlot("time since the first request (s)", "requests in flight")
	p.Y.Min = 0
	zero := make([]float64, len(r.inFlight))
	a, err := band(zero, r.inFlight, w, withAlpha(colorOf(0), 0x55))
	if err != nil {
		return nil, err
	}
	lines, err := steps(r.inFlight, w, colorOf(0), vg.Points(1.2))
	if err != nil {
		return nil, err
	}
	p.Add(a)
	for _, l := range lines {
		p.Add(l)
	}
	p.X.Min, p.X.Max = 0, r.t1-r.t0
	svg, err := svgOf(p, wideW, wideH)
	if err != nil {
		return nil, err
	}
	return &chart{ID: "chart-inflight", Title: "Requests in flight", Wide: true, SVG: svg,
		Note: fmt.Sprintf("Every request, whatever its outcome, from its send to its end; mean over %.3g s bins.", w)}, nil
}

// powerChart is the GPUs' power over the run (from energy.jsonl) with
// the energy attributed to requests underneath, prefill and decode
// stacked; nil without either.
func powerChart(r *runData) (*chart, error) {
	if !r.hasPower && !r.hasAttribution {
		return nil, nil
	}
	w := r.energyBinWidth()
	p := newPlot("time since the first request (s)", "power (W)")
	p.Y.Min = 0
	var notes []string
	if r.hasAttribution {
		zero := make([]float64, len(r.prefillW))
		top := make([]float64, len(r.prefillW))
		for i := range top {
			top[i] = r.prefillW[i] + r.decodeW[i]
		}
		dec, err := band(r.prefillW, top, w, withAlpha(colorOf(2), 0x99))
		if err != nil {
			return nil, err
		}
		pre, err := band(zero, r.prefillW, w, withAlpha(colorOf(1), 0xcc))
		if err != nil {
			return nil, err
		}
		p.Add(dec, pre)
		p.Legend.Add("decode (attributed)", dec)
		p.Legend.Add("prefill (attributed)", pre)
		notes = append(notes, "The shaded areas are the energy attributed to requests (docs/energy.md), each request's prefill share spread evenly over its [send, first token] and its decode share over [first token, end]: over the run they add up to the attributed energy, while a single bin may show a little more or less than was drawn in it. Between them and the line is the energy no request was in flight for (idle).")
	}
	if r.hasPower {
		lines, err := steps(r.powerW, w, colorOf(0), vg.Points(1.4))
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			p.Add(l)
		}
		if len(lines) > 0 {
			p.Legend.Add("GPU power", lines[0])
		}
		notes = append(notes, "The line is the measured GPUs' power from energy.jsonl: the energy they drew in each bin over its width.")
	}
	if r.rep != nil && r.rep.Energy != nil && r.rep.Energy.IdlePowerW != nil {
		idle := *r.rep.Energy.IdlePowerW
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: idle}, {X: r.t1 - r.t0, Y: idle}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Width, l.Dashes = colorOf(3), vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("idle baseline", l)
	}
	top := 0.0
	for i := range r.prefillW {
		top = math.Max(top, r.prefillW[i]+r.decodeW[i])
	}
	for _, v := range r.powerW {
		if !math.IsNaN(v) {
			top = math.Max(top, v)
		}
	}
	if r.rep != nil && r.rep.Energy != nil && r.rep.Energy.IdlePowerW != nil {
		top = math.Max(top, *r.rep.Energy.IdlePowerW)
	}
	headroom(p, top)
	p.X.Min, p.X.Max = 0, r.t1-r.t0
	svg, err := svgOf(p, wideW, wideH)
	if err != nil {
		return nil, err
	}
	notes = append(notes, fmt.Sprintf("Mean over %.3g s bins.", w))
	return &chart{ID: "chart-power", Title: "GPU power and the energy attributed to requests", Wide: true, SVG: svg,
		Note: strings.Join(notes, " ")}, nil
}

// jptChart is each successful request's energy per output token against
// its output tokens; nil without attributed energy.
func jptChart(r *runData) (*chart, error) {
	if len(r.points.vals) == 0 {
		return nil, nil
	}
	pts := make(plotter.XYs, len(r.points.vals))
	for i, q := range r.points.vals {
		pts[i] = plotter.XY{X: q.tokens, Y: q.jPerToken}
	}
	p := newPlot("output tokens of the request", "J per output token")
	p.Y.Min = 0
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle.Color, sc.GlyphStyle.Radius, sc.GlyphStyle.Shape = withAlpha(colorOf(0), 0x90), vg.Points(2.2), draw.CircleGlyph{}
	p.Add(sc)
	svg, err := svgOf(p, smallW, smallH)
	if err != nil {
		return nil, err
	}
	note := "Each successful request's attributed energy (prefill and decode) over its output tokens; the idle energy is no request's."
	if r.points.sampled() {
		note += fmt.Sprintf(" A uniform sample of %d of %d requests.", len(r.points.vals), r.points.n)
	}
	return &chart{ID: "chart-jpt", Title: "Energy per output token, per request", SVG: svg, Note: note}, nil
}
