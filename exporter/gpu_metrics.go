package exporter

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// staleIntervals: a GPU whose last good reading is older than this many
// sampling intervals is left out of a scrape; its source is not
// answering (a hung driver call blocks the sampler, never the scrape).
const staleIntervals = 3

// GPUCollectorOptions configure a GPUCollector.
type GPUCollectorOptions struct {
	// Interval is the sampling interval; zero means one second.
	Interval time.Duration
	// Version is tokenwatt's version, on tokenwatt_energy_exporter_info.
	Version string
	// Logf receives a GPU's failures (once per streak of failed reads),
	// its recoveries and counter resets; nil drops them.
	Logf func(string, ...any)
}

// GPUCollector is a prometheus.Collector of per-GPU energy and power. Its
// own background sampler (Run) reads the Source; a scrape serves the
// latest sample and never waits on a GPU. A GPU whose last read failed,
// or whose last good read is older than three intervals, is left out of
// the scrape until it answers again.
//
// tokenwatt_gpu_energy_joules_total starts at the GPU's energy counter
// and stays monotonic across counter resets, the way Prometheus'
// increase() expects: a reading below half the previous one is a reset
// (driver reload) and counts from the new zero; a smaller step back is a
// non-monotonic read and adds nothing (the rule the Sampler applies).
// A GPU without a counter exports the trapezoid integral of its power
// from zero, over gaps of up to three intervals.
type GPUCollector struct {
	src        Source
	interval   time.Duration
	logf       func(string, ...any)
	now        func() time.Time
	energyDesc *prometheus.Desc
	powerDesc  *prometheus.Desc
	infoDesc   *prometheus.Desc
	info       prometheus.Metric
	buf        []Reading // the sampler's; only Run and sample touch it

	mu            sync.Mutex
	gpus          []gpuState
	sourceFailing bool
}

// gpuState is what the sampler knows of one GPU.
type gpuState struct {
	labels      []string // gpu, uuid, gpu_model, hostname
	name        string   // for log lines
	lastOK      time.Time
	failing     bool
	staleLogged bool

	counter  bool    // the GPU has given an energy counter
	raw      float64 // the counter's high-water mark
	total    float64 // what tokenwatt_gpu_energy_joules_total exports
	hasTotal bool
	power    float64 // latest power, NaN when unknown
	prevP    float64 // last good power and its time, for integration
	prevT    time.Time
	hasPrevP bool
}

// NewGPUCollector returns a collector of src's GPUs (src not nil: a
// GPU exporter without a source has nothing to say). Call Run to sample.
func NewGPUCollector(src Source, opts GPUCollectorOptions) *GPUCollector {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	gpuLabels := []string{"gpu", "uuid", "gpu_model", "hostname"}
	c := &GPUCollector{
		src:      src,
		interval: opts.Interval,
		logf:     opts.Logf,
		now:      time.Now,
		energyDesc: prometheus.NewDesc(Namespace+"_gpu_energy_joules_total",
			"GPU energy, joules: the energy counter of the driver (kept monotonic across its resets), or the trapezoid integral of sampled power for GPUs without one.",
			gpuLabels, nil),
		powerDesc: prometheus.NewDesc(Namespace+"_gpu_power_watts",
			"GPU power draw at the latest sample, watts.", gpuLabels, nil),
		infoDesc: prometheus.NewDesc(Namespace+"_energy_exporter_info",
			"Always 1; labels name the energy source, its energy method (counter or integrated) and tokenwatt's version.",
			[]string{"source", "method", "version"}, nil),
	}
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	c.info = prometheus.MustNewConstMetric(c.infoDesc, prometheus.GaugeValue, 1, src.Name(), src.Method(), opts.Version)
	for _, d := range src.Devices() {
		c.gpus = append(c.gpus, gpuState{
			labels: []string{strconv.Itoa(d.Index), validLabel(d.UUID), validLabel(d.Model), validLabel(d.Hostname)},
			name:   fmt.Sprintf("gpu %d (%s)", d.Index, d.UUID),
			power:  math.NaN(),
		})
	}
	return c
}

// validLabel makes a library's string a valid label value (UTF-8), which
// Collect's metrics need.
func validLabel(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// Run samples the source every interval until ctx ends. The source is
// then free to Close once Run has returned.
func (c *GPUCollector) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	c.sample(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sample(ctx)
		}
	}
}

// sample reads every GPU once and folds the readings in.
func (c *GPUCollector) sample(ctx context.Context) {
	readings, err := c.src.Read(ctx, c.buf[:0])
	c.buf = readings[:0]
	if ctx.Err() != nil {
		return // stopping: a canceled read is no GPU's fault
	}
	if err == nil && len(readings) != len(c.gpus) {
		err = fmt.Errorf("%s source returned %d readings for %d GPUs", c.src.Name(), len(readings), len(c.gpus))
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if !c.sourceFailing {
			c.logf("energy: %s: %s; GPUs omitted from /metrics until it answers", c.src.Name(), oneLine(err.Error()))
		}
		c.sourceFailing = true
		for i := range c.gpus {
			c.gpus[i].failing = true
		}
		return
	}
	if c.sourceFailing {
		c.logf("energy: %s answers again", c.src.Name())
		c.sourceFailing = false
	}
	for i, r := range readings {
		c.gpus[i].update(r, now, c.interval*staleIntervals, c.logf)
	}
}

// update folds one reading in; now is when it arrived.
func (g *gpuState) update(r Reading, now time.Time, maxGap time.Duration, logf func(string, ...any)) {
	if r.Err != nil {
		if !g.failing {
			logf("energy: %s: %s; omitted from /metrics until it answers", g.name, oneLine(r.Err.Error()))
		}
		g.failing = true
		return
	}
	if g.failing {
		logf("energy: %s answers again", g.name)
	}
	g.failing, g.staleLogged, g.lastOK = false, false, now
	t := r.Time
	if t.IsZero() {
		t = now
	}
	p := r.PowerW
	powerOK := !math.IsNaN(p) && !math.IsInf(p, 0) && p >= 0
	switch e := r.EnergyJ; {
	case !math.IsNaN(e) && !math.IsInf(e, 0) && e >= 0:
		switch {
		case !g.counter:
			// The first counter value: the total starts there (or goes
			// on from the integral of power read before it).
			if !g.hasTotal {
				g.total = e
			}
			g.counter, g.hasTotal, g.raw = true, true, e
		case e >= g.raw:
			g.total += e - g.raw
			g.raw = e
		case e < g.raw*resetFraction:
			logf("energy: %s: energy counter went back from %.0f J to %.0f J: a reset (driver reload?); counting from the new zero", g.name, g.raw, e)
			g.total += e
			g.raw = e
		}
	case !g.counter && powerOK:
		if dt := t.Sub(g.prevT); g.hasPrevP && dt > 0 && dt <= maxGap {
			g.total += (g.prevP + p) / 2 * dt.Seconds()
		}
		g.hasTotal = true
	}
	g.power = math.NaN()
	if powerOK {
		g.power, g.prevP, g.prevT, g.hasPrevP = p, p, t, true
	}
}

// Describe implements prometheus.Collector.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.energyDesc
	ch <- c.powerDesc
	ch <- c.infoDesc
}

// Collect implements prometheus.Collector: the latest sample of every
// GPU that is answering.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- c.info
	maxAge := c.interval * staleIntervals
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.gpus {
		g := &c.gpus[i]
		if g.failing || g.lastOK.IsZero() {
			continue
		}
		if age := now.Sub(g.lastOK); age > maxAge {
			if !g.staleLogged {
				c.logf("energy: %s: no reading for %v (the %s source is not answering); omitted from /metrics until it answers", g.name, age.Round(time.Millisecond), c.src.Name())
				g.staleLogged = true
			}
			continue
		}
		if g.hasTotal {
			ch <- prometheus.MustNewConstMetric(c.energyDesc, prometheus.CounterValue, g.total, g.labels...)
		}
		if !math.IsNaN(g.power) {
			ch <- prometheus.MustNewConstMetric(c.powerDesc, prometheus.GaugeValue, g.power, g.labels...)
		}
	}
}
