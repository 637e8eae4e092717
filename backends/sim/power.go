package sim

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SimulatedGPUModel is the gpu_model label of the simulator's GPUs.
const SimulatedGPUModel = "tokenwatt-sim (simulated)"

// powerMeter is the simulated GPUs' energy counter. Power is piecewise
// constant between changes of the running-sequence count, so the counter
// is integrated exactly at each change and extended to the instant it is
// read: no sampling error.
//
//	E(t) = IdleWatts·(t − start) + WattsPerSeq·∫running dt + JoulesPerToken·tokens
type powerMeter struct {
	idleW, perSeqW, perTokenJ float64
	now                       func() time.Time // the clock; tests replace it

	mu         sync.Mutex
	start      time.Time // t0 of E(t)
	last       time.Time // the last change of running
	running    int
	seqSeconds float64 // ∫running dt over [start, last]
	tokens     uint64
}

func newPowerMeter(cfg Config, now func() time.Time) *powerMeter {
	t := now()
	return &powerMeter{idleW: cfg.IdleWatts, perSeqW: cfg.WattsPerSeq, perTokenJ: cfg.JoulesPerToken,
		now: now, start: t, last: t}
}

// setRunning records that running sequences are decoding from now on.
func (m *powerMeter) setRunning(running int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The clock is read under the lock so that changes and reads are
	// stamped in the order they happen and intervals are never negative.
	t := m.now()
	m.seqSeconds += float64(m.running) * t.Sub(m.last).Seconds()
	m.last, m.running = t, running
}

// addToken counts one generated token.
func (m *powerMeter) addToken() {
	m.mu.Lock()
	m.tokens++
	m.mu.Unlock()
}

// read returns the total energy since start and the instantaneous power,
// over all GPUs. The power excludes JoulesPerToken, whose energy arrives
// in steps, one per token, rather than at a rate.
func (m *powerMeter) read() (joules, watts float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.now()
	seqSeconds := m.seqSeconds + float64(m.running)*t.Sub(m.last).Seconds()
	joules = m.idleW*t.Sub(m.start).Seconds() + m.perSeqW*seqSeconds + m.perTokenJ*float64(m.tokens)
	watts = m.idleW + m.perSeqW*float64(m.running)
	return joules, watts
}

// EnergyJoules is the simulated GPUs' total energy, all GPUs together,
// since the server was created: what the per-GPU
// tokenwatt_gpu_energy_joules_total series sum to.
func (s *Server) EnergyJoules() float64 {
	j, _ := s.power.read()
	return j
}

// powerCollector exports the simulated GPUs exactly as tokenwatt's
// energy-exporter exports real ones, values computed at scrape time.
// Energy and power are split evenly across the GPUs.
type powerCollector struct {
	meter         *powerMeter
	energy, power *prometheus.Desc
	gpuLabels     [][]string // gpu, uuid, gpu_model, hostname per GPU
}

func newPowerCollector(meter *powerMeter, cfg Config) *powerCollector {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	labels := []string{"gpu", "uuid", "gpu_model", "hostname"}
	c := &powerCollector{
		meter: meter,
		energy: prometheus.NewDesc("tokenwatt_gpu_energy_joules_total",
			"Cumulative GPU energy consumption in joules (simulated by tokenwatt-sim).", labels, nil),
		power: prometheus.NewDesc("tokenwatt_gpu_power_watts",
			"GPU power draw in watts (simulated by tokenwatt-sim).", labels, nil),
	}
	for i := range cfg.GPUs {
		c.gpuLabels = append(c.gpuLabels, []string{strconv.Itoa(i), simGPUUUID(cfg.Seed, i), SimulatedGPUModel, host})
	}
	return c
}

// simGPUUUID is the uuid label of the i-th simulated GPU: SIM-<seed>-<i>.
func simGPUUUID(seed int64, i int) string {
	return fmt.Sprintf("SIM-%d-%d", seed, i)
}

func (c *powerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.energy
	ch <- c.power
}

func (c *powerCollector) Collect(ch chan<- prometheus.Metric) {
	// One read for all series, so that they describe the same instant.
	joules, watts := c.meter.read()
	n := float64(len(c.gpuLabels))
	for _, l := range c.gpuLabels {
		ch <- prometheus.MustNewConstMetric(c.energy, prometheus.CounterValue, joules/n, l...)
		ch <- prometheus.MustNewConstMetric(c.power, prometheus.GaugeValue, watts/n, l...)
	}
}

// registerPower registers the simulated GPUs' series and the info series
// that says which source they come from.
func registerPower(reg prometheus.Registerer, meter *powerMeter, cfg Config) error {
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "tokenwatt_energy_exporter_info",
		Help:        "Always 1: the energy source behind the tokenwatt_gpu_* series.",
		ConstLabels: prometheus.Labels{"source": "sim", "method": "counter", "simulated": "true"}})
	info.Set(1)
	for _, c := range []prometheus.Collector{newPowerCollector(meter, cfg), info} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	return nil
}
