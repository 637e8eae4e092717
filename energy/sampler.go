package energy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"
)

// Sample is one device's reading after correction.
type Sample struct {
	Time    time.Time // when it was read; for a failed read, when the failure was seen
	GPU     int       // index into the source's Devices
	EnergyJ float64   // energy since the sampler's first reading of this device; never decreases
	RawJ    float64   // the counter as read; NaN for power-only sources or failed reads
	PowerW  float64   // NaN when unknown
	Gap     bool      // reads failed before this one; the energy in between is spread over the gap
	Reset   bool      // the counter went back: counted from the new zero
	Held    bool      // an implausible counter jump, not counted until the next reading tells a glitch (dropped) from a re-based counter
	Err     string    // this read failed; EnergyJ holds the last good value
}

// Tick is one round of readings, every device at about the same time.
type Tick struct {
	Time    time.Time // the latest device read time
	EnergyJ float64   // Σ devices' EnergyJ
	PowerW  float64   // Σ devices' PowerW; NaN when any is unknown
	Samples []Sample
}

// Sampler reads a Source at a fixed interval, corrects each device's
// counter (resets, non-monotonic reads, glitches, power-only integration;
// see deviceState) and hands every Tick to its consumers, in order, from
// its own goroutine. It is the only reader of its Source: a run's Meter
// and the energy-exporter's GPUCollector both read its ticks.
//
// Each device is measured by its own method: a device marked Integrated,
// or every device of a source whose Method is MethodIntegrated, by the
// trapezoid integral of its power; the others by their counters. So a
// MethodMixed source keeps the counters it has.
type Sampler struct {
	src      Source
	interval time.Duration
	method   string
	devices  []Device
	states   []deviceState
	now      func() time.Time // the clock for reads that carry no time
	consumer []func(Tick)
	log      *slog.Logger

	// What has been logged, so that a failure is told once per streak
	// of failed reads and its end once.
	sourceDown bool
	deviceDown []bool

	mu      sync.Mutex
	latest  Tick
	readAt  time.Time // when the latest read of the source ended
	readErr error     // its error: the source failed as a whole
}

// NewSampler returns a sampler of src every interval.
func NewSampler(src Source, interval time.Duration) *Sampler {
	devs := src.Devices()
	s := &Sampler{
		src: src, interval: interval, method: src.Method(), devices: devs,
		states: make([]deviceState, len(devs)), deviceDown: make([]bool, len(devs)),
		now: time.Now, log: slog.New(slog.DiscardHandler),
	}
	for i, d := range devs {
		// A source that is integrated as a whole need not mark its devices.
		s.states[i] = newDeviceState(d, d.Integrated || s.method == MethodIntegrated)
	}
	return s
}

// OnTick adds a consumer of ticks. Call before Run.
func (s *Sampler) OnTick(f func(Tick)) { s.consumer = append(s.consumer, f) }

// SetLogger sets where the sampler tells of trouble, as warnings: the
// source or a device failing and answering again, a counter reset, a
// glitch or re-base, implausible power, a GPU gone stale in the
// collector. Call it before Run; nil discards.
func (s *Sampler) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	s.log = l
}

// logf logs a warning.
func (s *Sampler) logf(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) }

// Devices are the source's devices.
func (s *Sampler) Devices() []Device { return s.devices }

// Method is the source's energy method: MethodCounter, MethodIntegrated
// or MethodMixed.
func (s *Sampler) Method() string { return s.method }

// Latest is the last tick (zero Time before the first). It never waits
// on the source.
func (s *Sampler) Latest() Tick {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// LastRead tells when the latest read of the source ended (zero before
// the first) and its error: nil when the source answered as a whole,
// though some of its GPUs may have failed (their samples say so). A read
// that is still waiting on the source is not in it. It never waits on
// the source.
func (s *Sampler) LastRead() (at time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readAt, s.readErr
}

// Run samples until ctx ends, then reads once more so that the last tick
// is at or after the moment it was stopped.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.Read(ctx)
	for {
		select {
		case <-t.C:
			s.Read(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(s.interval, time.Second))
			s.Read(final)
			cancel()
			return
		}
	}
}

// Read takes one round of readings now and hands the tick on. Run calls
// it; it is exported for a read at a chosen moment (the end of a run).
// A read that ctx ended is dropped: stopping is no device's failure.
func (s *Sampler) Read(ctx context.Context) {
	readings, err := s.src.Read(ctx, make([]Reading, 0, len(s.devices)))
	if ctx.Err() != nil {
		return
	}
	now := s.now()
	if err == nil && len(readings) != len(s.devices) {
		err = fmt.Errorf("%s source returned %d readings for %d GPUs", s.src.Name(), len(readings), len(s.devices))
	}
	switch {
	case err != nil:
		if !s.sourceDown {
			s.logf("energy: %s: %s; no GPU readings until it answers", s.src.Name(), oneLine(err.Error()))
			s.sourceDown = true
		}
		readings = make([]Reading, len(s.devices))
		for i := range readings {
			readings[i] = Reading{Time: now, Err: err}
		}
	case s.sourceDown:
		s.logf("energy: %s answers again", s.src.Name())
		s.sourceDown = false
	}
	tick := Tick{Samples: make([]Sample, len(readings))}
	for i, r := range readings {
		if r.Time.IsZero() {
			r.Time = now
		}
		smp := s.states[i].update(i, r)
		s.logDevice(i, r, err != nil)
		tick.Samples[i] = smp
		tick.EnergyJ += smp.EnergyJ
		tick.PowerW += smp.PowerW // NaN poisons the sum, as documented
		if r.Time.After(tick.Time) {
			tick.Time = r.Time
		}
	}
	s.mu.Lock()
	s.latest, s.readAt, s.readErr = tick, now, err
	s.mu.Unlock()
	for _, f := range s.consumer {
		f(tick)
	}
}

// logDevice tells of device i's failure (not when the whole source
// failed: that is told once for all), its recovery, and what correcting
// its reading had to tell (resets, glitches, implausible power).
func (s *Sampler) logDevice(i int, r Reading, sourceFailed bool) {
	name := deviceName(s.devices[i])
	switch {
	case r.Err != nil && !sourceFailed && !s.deviceDown[i]:
		s.logf("energy: %s: %s; no readings until it answers", name, oneLine(r.Err.Error()))
		s.deviceDown[i] = true
	case r.Err == nil && s.deviceDown[i]:
		s.logf("energy: %s answers again", name)
		s.deviceDown[i] = false
	}
	for _, n := range s.states[i].notes {
		s.logf("energy: %s: %s", name, n)
	}
}

// deviceName names a device in log lines.
func deviceName(d Device) string { return fmt.Sprintf("gpu %d (%s)", d.Index, d.UUID) }

// IdlePower is each device's mean power between two ticks, and their sum:
// the idle baseline when the ticks bracket a quiet period.
func IdlePower(from, to Tick) (perGPU []float64, total float64) {
	dt := to.Time.Sub(from.Time).Seconds()
	if dt <= 0 || len(from.Samples) != len(to.Samples) {
		return nil, math.NaN()
	}
	perGPU = make([]float64, len(to.Samples))
	for i := range to.Samples {
		perGPU[i] = (to.Samples[i].EnergyJ - from.Samples[i].EnergyJ) / dt
		total += perGPU[i]
	}
	return perGPU, total
}
