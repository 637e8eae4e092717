// Package exporter owns tokenwatt's Prometheus exposition: a run's
// metrics (docs/metrics.md) in one client_golang registry per run, fed
// from the same completion events as the records file; the one /metrics
// server both binaries use (exporter-toolkit's TLS and basic auth, its
// landing page); and the push client for runs that nothing can scrape.
//
// It must not depend on the load generator (loadgen, backends, report):
// the GPU-host daemon energy-exporter links it. The run library turns a
// record into an Observation.
package exporter

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// Namespace prefixes every tokenwatt metric.
const Namespace = "tokenwatt"

// nativeBucketFactor is the growth factor between native histogram
// buckets (docs/metrics.md, "Histograms"): about 5 % resolution on any
// quantile.
const nativeBucketFactor = 1.1

// Classic buckets, chosen for LLM serving: TTFT spans a cached prompt
// (milliseconds) to a long prefill behind a queue (minutes); ITL/TPOT
// spans speculative decoding (sub-millisecond) to an overloaded batch;
// E2E spans a short answer to a long reasoning trace.
var (
	ttftBuckets   = []float64{.005, .01, .02, .04, .06, .08, .1, .15, .2, .3, .4, .5, .75, 1, 1.5, 2, 3, 5, 7.5, 10, 20, 30, 60, 120}
	itlBuckets    = []float64{.0005, .001, .0025, .005, .0075, .01, .015, .02, .025, .03, .04, .05, .075, .1, .15, .2, .3, .5, 1, 2.5}
	e2eBuckets    = []float64{.1, .25, .5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600}
	energyBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}
	lagBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// ClassicBuckets are the classic bucket upper bounds of each latency and
// energy histogram, by full metric name: what a quantile read from the
// classic _bucket series (a Prometheus without native histograms, a
// push to VictoriaMetrics) can resolve.
func ClassicBuckets() map[string][]float64 {
	return map[string][]float64{
		Namespace + "_request_ttft_seconds":         ttftBuckets,
		Namespace + "_request_itl_seconds":          itlBuckets,
		Namespace + "_request_tpot_seconds":         itlBuckets,
		Namespace + "_request_duration_seconds":     e2eBuckets,
		Namespace + "_request_schedule_lag_seconds": lagBuckets,
		Namespace + "_request_energy_joules":        energyBuckets,
	}
}

// RunLabels identify a run; every tokenwatt metric carries them.
type RunLabels struct {
	RunID, Scenario, Model, Backend string
}

func (l RunLabels) constLabels() prometheus.Labels {
	return prometheus.Labels{"run_id": LabelValue(l.RunID), "scenario": LabelValue(l.Scenario),
		"model": LabelValue(l.Model), "backend": LabelValue(l.Backend)}
}

// MaxLabelValueBytes bounds the label values of a run's metrics. Every
// series carries the run's labels, so one absurd value (a server's
// 200,000-character model name) would otherwise make each scrape tens of
// megabytes.
const MaxLabelValueBytes = 256

// LabelValue is s as a label value: valid UTF-8 (invalid bytes become
// U+FFFD) and at most MaxLabelValueBytes long. A longer value keeps as
// many of its first bytes as fit, cut at a character boundary, followed
// by "…" (3 bytes). energy's GPU labels follow the same rule.
func LabelValue(s string) string { return termtext.LabelValue(s, MaxLabelValueBytes) }

// uuidsLabel applies LabelValue's rule to each of a space-separated list
// of GPU UUIDs, as energy's uuid label does, so that the lists still match
// the GPU series.
func uuidsLabel(s string) string {
	f := strings.Fields(s)
	for i := range f {
		f[i] = LabelValue(f[i])
	}
	return strings.Join(f, " ")
}

// RunOptions are a run's metric settings beyond its labels.
type RunOptions struct {
	Version         string // tokenwatt's version, on tokenwatt_run_info
	BenchmarkName   string // what ran (benchmark_name), on tokenwatt_run_info as benchmark
	Simulated       bool   // the target is tokenwatt's simulator, on tokenwatt_run_info
	CarbonIntensity float64
	// Settings, on tokenwatt_run_info, so that loadgen dump can fill the
	// summary's columns from Prometheus as the local summary does. An
	// empty Endpoint or EnergySource leaves its label empty (unknown).
	Endpoint    string  // without user:password
	RequestRate float64 // configured req/s; 0 is closed loop
	Concurrency int
	// Stages and Ramp are a load that changes over time, as --stages and
	// --ramp write them (labels stages and ramp, only when set); the rate
	// and concurrency labels are then empty, since no one value is the
	// run's.
	Stages, Ramp string
	Arrival      string
	Warmup       int
	EnergySource string // e.g. dcgm, nvml, scrape; "none" without energy
	EnergyMethod string // counter, integrated or mixed; empty without energy
	// GPUUUIDs are the measured GPUs' UUIDs, space-separated (label
	// gpu_uuids); empty without energy.
	GPUUUIDs string
	// Outcomes are every value of the outcome label, exported at 0 from
	// the start so that rate() and ratios work before the first failure.
	Outcomes []string
	// SLO is the run's SLO ("ttft=500ms,tpot=50ms"; label slo of
	// tokenwatt_run_info); with one, the SLO counters are exported.
	SLO string
	// Shard is the run's shard, "1/4" (label shard, only when set): the
	// rate, concurrency, warmup, stages and ramp labels are then the
	// shard's share, which loadgen dump sums over the shards.
	Shard string
}

// Run holds one run's metrics in its own registry. Observe feeds it from
// completed requests.
type Run struct {
	reg *prometheus.Registry

	requests     *prometheus.CounterVec
	ttft         prometheus.Histogram
	itl          prometheus.Histogram
	tpot         prometheus.Histogram
	duration     prometheus.Histogram
	scheduleLag  prometheus.Histogram
	promptTokens prometheus.Counter
	outputTokens prometheus.Counter
	runStart     prometheus.Gauge
	runEnd       prometheus.Gauge
	lastSend     prometheus.Gauge

	failedPromptTokens, failedOutputTokens prometheus.Counter
	energy                                 prometheus.Histogram
	attributed                             *prometheus.CounterVec
	saturated                              prometheus.Gauge
	clientCPU                              prometheus.Gauge
	recordsWriteErrors                     prometheus.Counter
	// With an SLO only: requests by SLO outcome (met, missed), and the
	// output tokens of those that met it.
	sloRequests *prometheus.CounterVec
	sloTokens   prometheus.Counter
	cl          prometheus.Labels
}

// NewRun creates a run's metrics and their registry, with the Go and
// process collectors beside them.
func NewRun(l RunLabels, o RunOptions) *Run {
	cl := l.constLabels()
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: name, Help: help, ConstLabels: cl,
			Buckets:                         buckets,
			NativeHistogramBucketFactor:     nativeBucketFactor,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		})
		f(h)
		return h
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: cl})
		f(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help, ConstLabels: cl})
		f(g)
		return g
	}

	m := &Run{reg: reg}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total", ConstLabels: cl,
		Help: "Measured requests completed, by outcome (ok, http_4xx, http_5xx, timeout, canceled, stream_error, connect_error).",
	}, []string{"outcome"})
	f(m.requests)
	for _, o := range o.Outcomes {
		m.requests.WithLabelValues(o)
	}
	m.ttft = hist("request_ttft_seconds", "Time to first token: first text-carrying chunk minus send.", ttftBuckets)
	m.itl = hist("request_itl_seconds", "Inter-token latency: each gap between consecutive text-carrying chunks.", itlBuckets)
	m.tpot = hist("request_tpot_seconds", "Time per output token: (last chunk - first chunk) / (output tokens - 1).", itlBuckets)
	m.duration = hist("request_duration_seconds", "End-to-end latency: last text-carrying chunk minus send.", e2eBuckets)
	m.scheduleLag = hist("request_schedule_lag_seconds", "Send minus intended send time (0 in closed-loop runs).", lagBuckets)
	m.energy = hist("request_energy_joules", "GPU energy attributed to the request, joules (prefill + decode).", energyBuckets)
	m.attributed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "attributed_energy_joules_total", ConstLabels: cl,
		Help: "Run-window GPU energy by phase: prefill and decode of requests, idle when none was in flight, joules.",
	}, []string{"phase"})
	f(m.attributed)
	m.promptTokens = counter("prompt_tokens_total", "Prompt tokens of successful measured requests, from the server's usage.")
	m.outputTokens = counter("output_tokens_total", "Output tokens of successful measured requests, from usage or counted chunks.")
	m.failedPromptTokens = counter("failed_prompt_tokens_total", "Prompt tokens of failed or canceled measured requests (not in throughput or J per token).")
	m.failedOutputTokens = counter("failed_output_tokens_total", "Output tokens of failed or canceled measured requests (not in throughput or J per token).")
	if o.SLO != "" {
		m.sloRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "slo_requests_total", ConstLabels: cl,
			Help: "Measured requests by SLO outcome (slo: met, missed; a failed request misses); the SLO is tokenwatt_run_info's slo label.",
		}, []string{"slo"})
		f(m.sloRequests)
		m.sloRequests.WithLabelValues("met")
		m.sloRequests.WithLabelValues("missed")
		m.sloTokens = counter("slo_output_tokens_total", "Output tokens of measured requests that met the SLO (goodput in tokens).")
	}
	m.recordsWriteErrors = counter("records_write_errors_total", "Write errors of the run's records.jsonl (a full disk): the first stops the run, so it is 0 or 1.")
	m.runStart = gauge("run_start_timestamp_seconds", "Unix time the run's measurement started (its first measured send, once known).")
	// Registered by End, with the end time.
	m.lastSend = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "run_last_send_timestamp_seconds", ConstLabels: cl,
		Help: "Unix time of the run's last measured send, for the achieved send rate; absent while it runs.",
	})
	// Registered by End, so that a running run exports no end time.
	m.runEnd = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "run_end_timestamp_seconds", ConstLabels: cl,
		Help: "Unix time the run ended (its last completion); absent while it runs.",
	})

	m.cl = cl
	infoLabels := prometheus.Labels{
		"run_id": cl["run_id"], "scenario": cl["scenario"], "model": cl["model"], "backend": cl["backend"],
		"version": LabelValue(o.Version), "simulated": boolLabel(o.Simulated),
		"endpoint": LabelValue(o.Endpoint), "arrival": LabelValue(o.Arrival),
		"energy_source": LabelValue(o.EnergySource), "energy_method": LabelValue(o.EnergyMethod),
		"gpu_uuids":   uuidsLabel(o.GPUUUIDs),
		"benchmark":   LabelValue(o.BenchmarkName),
		"rate":        strconv.FormatFloat(o.RequestRate, 'g', -1, 64),
		"concurrency": strconv.Itoa(o.Concurrency),
		"warmup":      strconv.Itoa(o.Warmup),
		"slo":         LabelValue(o.SLO),
	}
	if o.Stages != "" || o.Ramp != "" {
		infoLabels["rate"], infoLabels["concurrency"] = "", ""
	}
	if o.Stages != "" {
		infoLabels["stages"] = LabelValue(o.Stages)
	}
	if o.Ramp != "" {
		infoLabels["ramp"] = LabelValue(o.Ramp)
	}
	if o.Shard != "" {
		infoLabels["shard"] = LabelValue(o.Shard)
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "run_info",
		Help:        "Always 1; labels describe the run and its settings (endpoint, rate, concurrency, arrival, warmup, stages or ramp when the load changes over time, shard when the run is one of several shards, energy_source, energy_method, gpu_uuids: the measured GPUs, slo: the SLO, empty without one). simulated=\"true\" marks runs against tokenwatt's simulator (--sim, or a server or energy source found to be it).",
		ConstLabels: infoLabels,
	})
	info.Set(1)
	f(info)

	m.saturated = gauge("client_saturated", "1 while the load generator itself limits the run (behind its open-loop schedule, out of CPU, or kept waiting for a CPU), so latencies may describe the client; 0 otherwise.")
	m.clientCPU = gauge("client_cpu_utilization_ratio", "The load generator process's CPU time over the last second, as a share of the CPUs it may use (GOMAXPROCS).")
	carbon := gauge("carbon_intensity_grams_per_kwh", "Configured grid carbon intensity, g CO2eq per kWh, so emissions are a PromQL expression.")
	carbon.Set(o.CarbonIntensity)

	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func boolLabel(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TrackInFlight exports tokenwatt_requests_in_flight, read from f at
// every scrape. Call it once, before the registry is served.
func (m *Run) TrackInFlight(f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "requests_in_flight", ConstLabels: m.cl,
		Help: "Measured requests sent and not yet completed.",
	}, f))
}

// TrackCapWaits exports tokenwatt_cap_waits_total, read from f at every
// scrape: open-loop sends that waited for an in-flight slot because the
// --concurrency cap was full. Call it once, before the registry is served.
func (m *Run) TrackCapWaits(f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: Namespace, Name: "cap_waits_total", ConstLabels: m.cl,
		Help: "Open-loop measured sends that waited for an in-flight slot (the --concurrency cap was full).",
	}, f))
}

// Target is what a run's schedule asks for at a moment (the runner's).
type Target struct {
	Stage       int     // index of the stage; -1: none
	Rate        float64 // open-loop requests per second; 0: closed loop or nothing scheduled
	Concurrency int     // closed loop: in flight; open loop: the cap (0: none)
}

// TrackTarget exports what the schedule asks for, read from f at every
// scrape: tokenwatt_target_rate and tokenwatt_target_concurrency, and,
// for a run with stages or a ramp (staged), tokenwatt_stage. Gauges
// rather than a stage label on the request series, which would multiply
// every histogram's series by the stages. Call it once, before the
// registry is served.
func (m *Run) TrackTarget(staged bool, f func() Target) {
	gauge := func(name, help string, v func(Target) float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: name, ConstLabels: m.cl, Help: help,
		}, func() float64 { return v(f()) }))
	}
	gauge("target_rate", "The open-loop request rate the schedule asks for now, requests per second (a ramp's current value); 0 in closed loop, before the measured requests and after scheduling ends.",
		func(t Target) float64 { return t.Rate })
	gauge("target_concurrency", "The requests in flight the closed loop keeps now, or the open loop's in-flight cap (0: none); 0 before the measured requests and after scheduling ends.",
		func(t Target) float64 { return float64(t.Concurrency) })
	if staged {
		gauge("stage", "Index (0-based) of the stage being scheduled, as in records' stage; -1 before the first stage (warm-up, idle baseline) and after the last.",
			func(t Target) float64 { return float64(t.Stage) })
	}
}

// SetClientSaturation exports the client's state over the last
// monitoring window; a negative cpu is unknown and leaves its gauge.
func (m *Run) SetClientSaturation(saturated bool, cpu float64) {
	v := 0.0
	if saturated {
		v = 1
	}
	m.saturated.Set(v)
	if cpu >= 0 {
		m.clientCPU.Set(cpu)
	}
}

// RecordsWriteError counts a write error of the run's records file.
func (m *Run) RecordsWriteError() { m.recordsWriteErrors.Inc() }

// Registry is the run's registry, for serving and pushing.
func (m *Run) Registry() *prometheus.Registry { return m.reg }

// Start sets the run's start timestamp.
func (m *Run) Start(t time.Time) { m.runStart.Set(unix(t)) }

// End sets the run's window once it is known: its first measured send and
// last completion, and its last measured send. A zero start keeps the
// timestamp set by Start; a zero lastSend exports none.
func (m *Run) End(start, end, lastSend time.Time) {
	if !start.IsZero() {
		m.runStart.Set(unix(start))
	}
	m.runEnd.Set(unix(end))
	// Registering twice (End called again) is harmless: keep the first.
	_ = m.reg.Register(m.runEnd)
	if !lastSend.IsZero() {
		m.lastSend.Set(unix(lastSend))
		_ = m.reg.Register(m.lastSend)
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Observation is what the run's metrics take from one completed request:
// its record's values, nil where the record has none.
type Observation struct {
	Outcome         string
	TTFT, TPOT, E2E *float64
	ITL             []float64
	// MoreITL, when set, calls its argument for the gaps left out of ITL
	// (a record lists at most backends.MaxITL), grouped by value: each
	// value and how many gaps have it.
	MoreITL                    func(func(seconds float64, count int))
	ScheduleLag                float64
	PromptTokens, OutputTokens *int
	EnergyJ                    *float64
	// SLOMet is whether the request met the run's SLO; nil without one.
	SLOMet *bool
}

// Observe records one completed request. Like the local summary, the
// latency histograms and token counters take successful requests only
// (a failed request's tokens go to the failed_* counters); the schedule
// lag and the attributed energy are every request's.
func (m *Run) Observe(r *Observation) {
	m.requests.WithLabelValues(r.Outcome).Inc()
	m.scheduleLag.Observe(r.ScheduleLag)
	if m.sloRequests != nil && r.SLOMet != nil {
		if *r.SLOMet {
			m.sloRequests.WithLabelValues("met").Inc()
			if r.OutputTokens != nil {
				m.sloTokens.Add(float64(*r.OutputTokens))
			}
		} else {
			m.sloRequests.WithLabelValues("missed").Inc()
		}
	}
	if r.EnergyJ != nil {
		m.energy.Observe(*r.EnergyJ)
	}
	if r.Outcome != OutcomeOK {
		if r.PromptTokens != nil {
			m.failedPromptTokens.Add(float64(*r.PromptTokens))
		}
		if r.OutputTokens != nil {
			m.failedOutputTokens.Add(float64(*r.OutputTokens))
		}
		return
	}
	if r.TTFT != nil {
		m.ttft.Observe(*r.TTFT)
	}
	for _, gap := range r.ITL {
		m.itl.Observe(gap)
	}
	if r.MoreITL != nil {
		r.MoreITL(func(gap float64, n int) {
			for range n {
				m.itl.Observe(gap)
			}
		})
	}
	if r.TPOT != nil {
		m.tpot.Observe(*r.TPOT)
	}
	if r.E2E != nil {
		m.duration.Observe(*r.E2E)
	}
	if r.PromptTokens != nil {
		m.promptTokens.Add(float64(*r.PromptTokens))
	}
	if r.OutputTokens != nil {
		m.outputTokens.Add(float64(*r.OutputTokens))
	}
}

// OutcomeOK is the outcome label of a successful request.
const OutcomeOK = "ok"

// AddAttributedEnergy adds joules of run-window GPU energy to phase
// (prefill, decode or idle).
func (m *Run) AddAttributedEnergy(phase string, joules float64) {
	m.attributed.WithLabelValues(phase).Add(joules)
}
