package energy

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// namespace prefixes every tokenwatt metric.
const namespace = "tokenwatt"

// staleIntervals: a GPU whose last good reading is older than this many
// sampling intervals, plus one bounded read (readTimeout), is left out
// of a scrape; its source is not answering (a hung driver call blocks
// the sampler, never the scrape). The read bound is added so that a tick
// held up by one hung GPU, up to that bound, leaves the others fresh.
const staleIntervals = 3

// maxSampleAge is how old a good reading may be and still be exported.
func maxSampleAge(interval time.Duration) time.Duration {
	return interval*staleIntervals + readTimeout(interval)
}

// GPUCollectorOptions configure a GPUCollector.
type GPUCollectorOptions struct {
	// Info adds tokenwatt_energy_exporter_info{source,method,version},
	// the energy-exporter's identity. A run's registry leaves it out:
	// tokenwatt_run_info and the summary name its source.
	Info bool
	// Version is tokenwatt's version, on the info metric.
	Version string
	// Idle, when set, gives each GPU's idle baseline in watts (in the
	// sampler's device order; nil or short while unmeasured), exported as
	// tokenwatt_gpu_idle_power_watts.
	Idle func() []float64
}

// GPUCollector is a prometheus.Collector of per-GPU energy and power,
// read from a Sampler's latest tick: a scrape never touches the Source,
// so it never waits on a GPU. A GPU whose last read failed, or whose last
// good read is older than three sampling intervals and one bounded read (the
// interval, at least 0.5 s, at most 5 s), is left out of the
// scrape until it answers again (the sampler logs failures; the
// collector logs, through the sampler's logger, a GPU going stale).
//
// Health is always exported, as node_exporter does per collector:
// tokenwatt_gpu_up per GPU of the source (0 while its series are left
// out) and tokenwatt_energy_source_up for the source as a whole, so that
// a GPU or a source that stops answering is an alert, not a gap.
//
// tokenwatt_gpu_energy_joules_total is the sampler's corrected total:
// energy since sampling started, monotonic across the driver counter's
// resets and without its glitches, or the trapezoid integral of power for
// GPUs without a counter. Its absolute value means nothing outside this
// process; increase() and rate() over it are what matter. A restart
// starts it again from zero, which PromQL reads as a counter reset and
// handles.
type GPUCollector struct {
	sampler    *Sampler
	opts       GPUCollectorOptions
	now        func() time.Time
	labels     [][]string // per device: gpu, uuid, gpu_model, hostname
	energyDesc *prometheus.Desc
	powerDesc  *prometheus.Desc
	idleDesc   *prometheus.Desc
	infoDesc   *prometheus.Desc
	upDesc     *prometheus.Desc
	sourceDesc *prometheus.Desc
	gpuInfo    *prometheus.Desc
	limitDesc  *prometheus.Desc

	mu          sync.Mutex
	staleLogged []time.Time // per device, the sample time last logged as stale
}

// NewGPUCollector returns a collector of s's GPUs. Run s (Sampler.Run)
// for it to have anything to say.
func NewGPUCollector(s *Sampler, opts GPUCollectorOptions) *GPUCollector {
	gpuLabels := []string{"gpu", "uuid", "gpu_model", "hostname"}
	c := &GPUCollector{
		sampler: s,
		opts:    opts,
		now:     time.Now,
		energyDesc: prometheus.NewDesc(namespace+"_gpu_energy_joules_total",
			"GPU energy since sampling started, joules: the driver's energy counter corrected for its resets and glitches, or the trapezoid integral of sampled power for GPUs without one. Read it with increase() or rate().",
			gpuLabels, nil),
		powerDesc: prometheus.NewDesc(namespace+"_gpu_power_watts",
			"GPU power draw at the latest sample, watts.", gpuLabels, nil),
		idleDesc: prometheus.NewDesc(namespace+"_gpu_idle_power_watts",
			"GPU idle baseline: mean power over the quiet period before the run, watts.", gpuLabels, nil),
		infoDesc: prometheus.NewDesc(namespace+"_energy_exporter_info",
			"Always 1; labels name the energy source, its energy method (counter, integrated or mixed) and tokenwatt's version.",
			[]string{"source", "method", "version"}, nil),
		upDesc: prometheus.NewDesc(namespace+"_gpu_up",
			"1 when the GPU's latest reading succeeded and is at most three sampling intervals and one bounded read old, else 0; its energy and power series are left out while it is 0.",
			gpuLabels, nil),
		sourceDesc: prometheus.NewDesc(namespace+"_energy_source_up",
			"1 when the energy source answered the latest read as a whole (its GPUs may still fail one by one: see tokenwatt_gpu_up), 0 when that read failed (a remote endpoint or the DCGM host engine down) or no read has ended within three sampling intervals and one bounded read.",
			[]string{"source"}, nil),
		gpuInfo: prometheus.NewDesc(namespace+"_gpu_info",
			"Always 1, per GPU: mig=\"true\" when MIG mode is on (its energy is the whole GPU's, every instance included); method is counter, or integrated for a GPU without an energy counter.",
			append(slices.Clone(gpuLabels), "mig", "method"), nil),
		limitDesc: prometheus.NewDesc(namespace+"_gpu_power_limit_watts",
			"The GPU's enforced power limit when sampling started, watts (the glitch rule's bound); absent when the source does not know it.",
			gpuLabels, nil),
		staleLogged: make([]time.Time, len(s.Devices())),
	}
	for _, d := range s.Devices() {
		c.labels = append(c.labels, []string{strconv.Itoa(d.Index), validLabel(d.UUID), validLabel(d.Model), validLabel(d.Hostname)})
	}
	return c
}

// maxLabelValueBytes bounds a GPU label value (uuid, gpu_model, hostname,
// from a GPU library or a remote exporter), as exporter.LabelValue bounds
// a run's: every series of the GPU carries them, so one absurd value would
// make every scrape huge.
const maxLabelValueBytes = 256

// validLabel makes a library's or a remote exporter's string a label
// value: valid UTF-8, which Collect's metrics need (invalid bytes become
// U+FFFD), and at most maxLabelValueBytes long. A longer value keeps as
// many of its first bytes as fit, cut at a character boundary, followed
// by "…": exporter.LabelValue's rule, so a run's gpu_uuids still match
// these uuid labels.
func validLabel(s string) string { return termtext.LabelValue(s, maxLabelValueBytes) }

// Describe implements prometheus.Collector.
func (c *GPUCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.energyDesc
	ch <- c.powerDesc
	ch <- c.upDesc
	ch <- c.sourceDesc
	ch <- c.gpuInfo
	ch <- c.limitDesc
	if c.opts.Idle != nil {
		ch <- c.idleDesc
	}
	if c.opts.Info {
		ch <- c.infoDesc
	}
}

// Collect implements prometheus.Collector: the latest sample of every
// GPU that is answering, every GPU's and the source's health, and the
// idle baselines.
func (c *GPUCollector) Collect(ch chan<- prometheus.Metric) {
	if c.opts.Info {
		ch <- prometheus.MustNewConstMetric(c.infoDesc, prometheus.GaugeValue, 1,
			c.sampler.src.Name(), c.sampler.Method(), c.opts.Version)
	}
	tick := c.sampler.Latest()
	readAt, readErr := c.sampler.LastRead()
	maxAge := maxSampleAge(c.sampler.interval)
	now := c.now()
	sourceUp := readErr == nil && !readAt.IsZero() && now.Sub(readAt) <= maxAge
	ch <- prometheus.MustNewConstMetric(c.sourceDesc, prometheus.GaugeValue, gauge01(sourceUp), c.sampler.src.Name())
	up := make([]bool, len(c.labels))
	for i, smp := range tick.Samples {
		if smp.Err != "" || c.stale(i, smp, now.Sub(smp.Time), maxAge) {
			continue
		}
		up[i] = true
		ch <- prometheus.MustNewConstMetric(c.energyDesc, prometheus.CounterValue, smp.EnergyJ, c.labels[i]...)
		if usable(smp.PowerW) {
			ch <- prometheus.MustNewConstMetric(c.powerDesc, prometheus.GaugeValue, smp.PowerW, c.labels[i]...)
		}
	}
	for i, l := range c.labels {
		ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, gauge01(up[i]), l...)
		d := c.sampler.devices[i]
		method := MethodCounter
		if c.sampler.states[i].integrated {
			method = MethodIntegrated
		}
		ch <- prometheus.MustNewConstMetric(c.gpuInfo, prometheus.GaugeValue, 1, append(slices.Clone(l), strconv.FormatBool(d.MIG), method)...)
		if usable(d.PowerLimitW) && d.PowerLimitW > 0 {
			ch <- prometheus.MustNewConstMetric(c.limitDesc, prometheus.GaugeValue, d.PowerLimitW, l...)
		}
	}
	if c.opts.Idle == nil {
		return
	}
	for i, w := range c.opts.Idle() {
		if i < len(c.labels) && usable(w) {
			ch <- prometheus.MustNewConstMetric(c.idleDesc, prometheus.GaugeValue, w, c.labels[i]...)
		}
	}
}

// gauge01 is a boolean gauge's value.
func gauge01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// stale tells whether device i's good sample is too old to export, and
// logs it once per sample.
func (c *GPUCollector) stale(i int, smp Sample, age, maxAge time.Duration) bool {
	if age <= maxAge {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.staleLogged[i].Equal(smp.Time) {
		c.staleLogged[i] = smp.Time
		c.sampler.logf("energy: %s: no reading for %v (the %s source is not answering); omitted from /metrics until it answers",
			deviceName(c.sampler.devices[i]), age.Round(time.Millisecond), c.sampler.src.Name())
	}
	return true
}
