package energy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenwatt/tokenwatt/internal/appendfile"
)

// FileName is the samples file in a run's output directory: one JSON
// line per device reading, so that a run can be re-attributed offline.
// Its first line, whose keys start with "_", describes the source and
// its devices.
const FileName = "energy.jsonl"

// MeterOptions configure a Meter.
type MeterOptions struct {
	// Interval is the sampling interval.
	Interval time.Duration
	// Dir is where energy.jsonl is appended.
	Dir string
	// RunID names the run in energy.jsonl's header line.
	RunID string
	// Registerer, if not nil, gets the GPU collector (per-GPU energy,
	// power and idle baseline).
	Registerer prometheus.Registerer
	// Logger receives the sampler's warnings (a GPU not answering, a
	// counter reset); nil drops them.
	Logger *slog.Logger
}

// Meter measures a run's GPU energy: it samples a Source, writes the
// samples to energy.jsonl, measures the idle baseline, tracks peak power
// and attributes energy to requests, identified by an ID of the caller's
// choosing.
type Meter[ID any] struct {
	src      Source
	interval time.Duration
	sampler  *Sampler
	attr     *Attribution[ID]

	cancel  context.CancelFunc
	stopped chan struct{}

	fileMu  sync.Mutex
	file    *os.File
	w       *bufio.Writer
	enc     *json.Encoder
	fileErr error
	flushed time.Time // last flush of the samples file
	log     *slog.Logger

	mu        sync.Mutex
	idleGPU   []float64 // W per device; nil until measured
	idleTotal float64   // W; NaN until measured
	inWindow  bool
	peak      peakPower // tick power from BeginWindow to Finish
	lastTick  Tick
	prevTick  Tick
}

// StartMeter starts sampling src every opts.Interval into
// opts.Dir/energy.jsonl. The Meter owns src from then on: Stop closes it.
// On error src is left open for the caller to close.
func StartMeter[ID any](src Source, opts MeterOptions) (*Meter[ID], error) {
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	// A file cut mid-line by a killed run gets a newline first: this run's
	// header line must start a line, or its samples would read as the
	// killed run's.
	path := filepath.Join(opts.Dir, FileName)
	f, repaired, err := appendfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open energy samples file: %w", err)
	}
	e := &Meter[ID]{
		src: src, interval: opts.Interval, sampler: NewSampler(src, opts.Interval), attr: NewAttribution[ID](),
		stopped: make(chan struct{}), file: f, w: bufio.NewWriterSize(f, 64<<10), idleTotal: math.NaN(),
		log: opts.Logger,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if repaired {
		e.log.Warn(fmt.Sprintf("%s ended mid-line (a run killed while writing it): its cut line is left as it is, this run's samples start on a new line", path))
	}
	e.enc = json.NewEncoder(e.w)
	e.writeHeader(opts.RunID)
	e.sampler.OnTick(e.onTick)
	e.sampler.SetLogger(opts.Logger)
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(NewGPUCollector(e.sampler, GPUCollectorOptions{Idle: e.idlePower}))
	}

	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		defer close(e.stopped)
		e.sampler.Run(ctx)
	}()
	return e, nil
}

func (e *Meter[ID]) writeHeader(runID string) {
	type dev struct {
		GPU      int    `json:"gpu"`
		UUID     string `json:"uuid"`
		Model    string `json:"gpu_model"`
		Hostname string `json:"hostname"`
		// Integrated: this GPU's energy_j is its power's integral (a
		// mixed source's other GPUs have counters).
		Integrated bool `json:"integrated,omitempty"`
		// MIG: MIG mode is on; energy_j is the whole GPU's.
		MIG bool `json:"mig,omitempty"`
		// PowerLimitW is the enforced power limit the glitch rule uses
		// (before its floor); absent when unknown.
		PowerLimitW float64 `json:"power_limit_w,omitempty"`
	}
	var devs []dev
	for i, d := range e.src.Devices() {
		devs = append(devs, dev{d.Index, d.UUID, d.Model, d.Hostname, e.sampler.states[i].integrated, d.MIG, d.PowerLimitW})
	}
	hdr := map[string]any{
		"_run_id": runID, "_source": e.src.Name(), "_method": e.src.Method(),
		"_interval_s": e.interval.Seconds(), "_devices": devs,
	}
	if sel := SelectionOf(e.src); sel.How != "" {
		hdr["_gpu_selection"] = sel.How
	}
	if w := Warnings(e.src); len(w) > 0 {
		hdr["_warnings"] = w
	}
	e.write(hdr)
}

// energyLine is one sample in energy.jsonl.
type energyLine struct {
	TUnix   float64  `json:"t_unix"`
	GPU     int      `json:"gpu"`
	EnergyJ float64  `json:"energy_j"`
	RawJ    *float64 `json:"raw_energy_j"`
	PowerW  *float64 `json:"power_w"`
	Gap     bool     `json:"gap,omitempty"`
	Reset   bool     `json:"reset,omitempty"`
	Held    bool     `json:"held,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func (e *Meter[ID]) onTick(t Tick) {
	for _, s := range t.Samples {
		e.write(energyLine{TUnix: float64(s.Time.UnixNano()) / 1e9, GPU: s.GPU, EnergyJ: s.EnergyJ,
			RawJ: finite(s.RawJ), PowerW: finite(s.PowerW), Gap: s.Gap, Reset: s.Reset, Held: s.Held, Error: s.Err})
	}
	e.flushEvery(time.Second)
	e.attr.AddSample(t.Time, t.EnergyJ)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prevTick, e.lastTick = e.lastTick, t
	if !e.inWindow {
		return
	}
	p := t.PowerW
	if math.IsNaN(p) && !e.prevTick.Time.IsZero() {
		if dt := t.Time.Sub(e.prevTick.Time).Seconds(); dt > 0 {
			p = (t.EnergyJ - e.prevTick.EnergyJ) / dt
		}
	}
	if !math.IsNaN(p) {
		t0, _ := e.attr.Window()
		e.peak.add(t.Time, p, t0)
	}
}

// flushEvery flushes the samples file when d has passed since the last
// flush, so that a crash loses at most that much of it, as with records.
func (e *Meter[ID]) flushEvery(d time.Duration) {
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	if now := time.Now(); e.fileErr == nil && now.Sub(e.flushed) >= d {
		e.setFileErr(e.w.Flush())
		e.flushed = now
	}
}

func (e *Meter[ID]) write(v any) {
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	if e.fileErr == nil {
		e.setFileErr(e.enc.Encode(v))
	}
}

// setFileErr keeps the samples file's first write error and says so at
// once: no more samples are written, while the run's energy figures,
// computed from the samples in memory, are unaffected. Called with
// fileMu held.
func (e *Meter[ID]) setFileErr(err error) {
	if err == nil || e.fileErr != nil {
		return
	}
	e.fileErr = err
	e.log.Warn(fmt.Sprintf("energy samples file %s: %v; no more samples are written to it (the run's energy figures are unaffected)", e.file.Name(), err))
}

// idlePower is the per-GPU idle baseline, nil until measured.
func (e *Meter[ID]) idlePower() []float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.idleGPU
}

// latest returns the most recent tick.
func (e *Meter[ID]) latest() Tick {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastTick
}

// waitTick waits until a tick at or after t has arrived, or timeout.
func (e *Meter[ID]) waitTick(ctx context.Context, t time.Time, timeout time.Duration) (Tick, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if tk := e.latest(); !tk.Time.IsZero() && !tk.Time.Before(t) {
			return tk, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return e.latest(), false
		}
		select {
		case <-time.After(e.interval / 4):
		case <-ctx.Done():
		}
	}
}

// MeasureIdle measures the idle baseline: mean power over d from now,
// before the run sends anything.
func (e *Meter[ID]) MeasureIdle(ctx context.Context, d time.Duration) error {
	patience := 3*e.interval + 2*time.Second
	from, ok := e.waitTick(ctx, time.Now(), patience)
	if !ok {
		return fmt.Errorf("idle baseline: no energy reading from %s within %v", e.src.Name(), patience)
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	to, ok := e.waitTick(ctx, from.Time.Add(d), patience)
	if !ok {
		return fmt.Errorf("idle baseline: energy readings from %s stopped", e.src.Name())
	}
	per, total := IdlePower(from, to)
	e.mu.Lock()
	e.idleGPU, e.idleTotal = per, total
	e.mu.Unlock()
	return nil
}

// SetIdle sets the idle baseline to one measured before, instead of
// MeasureIdle: perGPU is watts per device, in the source's order (as
// Idle returns them), e.g. a sweep's first run's for its later runs.
func (e *Meter[ID]) SetIdle(perGPU []float64) error {
	if n := len(e.src.Devices()); len(perGPU) != n {
		return fmt.Errorf("idle baseline: %d GPUs measured before, %d now", len(perGPU), n)
	}
	total := 0.0
	for _, w := range perGPU {
		total += w
	}
	e.mu.Lock()
	e.idleGPU, e.idleTotal = slices.Clone(perGPU), total
	e.mu.Unlock()
	return nil
}

// Idle is the idle baseline, watts per device in the source's order;
// nil until measured (MeasureIdle) or set (SetIdle).
func (e *Meter[ID]) Idle() []float64 { return slices.Clone(e.idlePower()) }

// BeginWindow starts tracking peak power: call it when measurement
// starts (before the warm-up, which the peak leaves out).
func (e *Meter[ID]) BeginWindow() {
	e.mu.Lock()
	e.inWindow = true
	e.mu.Unlock()
}

// Add registers a completed request, sent at span.Send, first text at
// span.First and done at span.Done; its share comes back from Advance or
// Finish once final.
func (e *Meter[ID]) Add(span Span, id ID) { e.attr.Add(span, id) }

// Advance attributes energy as far as it is final and returns the
// requests whose shares became final. oldestInFlight is the earliest
// intended send time of a request sent but not yet added (zero: none).
func (e *Meter[ID]) Advance(oldestInFlight time.Time) []Released[ID] {
	return e.attr.Advance(oldestInFlight)
}

// Finish waits (briefly) for a sample after the last completion, so the
// window's end is measured, not extrapolated, then releases every
// request. Call it once no request is in flight.
func (e *Meter[ID]) Finish() []Released[ID] {
	if _, t1 := e.attr.Window(); !t1.IsZero() {
		e.waitTick(context.Background(), t1, 3*e.interval+2*time.Second)
	}
	e.mu.Lock()
	e.inWindow = false
	e.mu.Unlock()
	return e.attr.Finish()
}

// Totals are the energy attributed so far, by phase, in joules.
func (e *Meter[ID]) Totals() (prefill, decode, idle float64) { return e.attr.Totals() }

// Stop ends sampling and closes the samples file and the source.
func (e *Meter[ID]) Stop() error {
	e.cancel()
	<-e.stopped
	e.fileMu.Lock()
	defer e.fileMu.Unlock()
	err := e.fileErr
	if ferr := e.w.Flush(); err == nil {
		err = ferr
	}
	if cerr := e.file.Close(); err == nil {
		err = cerr
	}
	if serr := e.src.Close(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("energy: %w", err)
	}
	return nil
}

// Summary is what the CSV summary needs from the energy
// measurement (the run's own counts supply the rest).
type Summary struct {
	Source, Method string
	GPUs           int
	EnergyJ        float64 // Σ requests + idle over the window = E(T1) − E(T0)
	IdlePowerW     float64 // NaN when no baseline was measured
	PeakPowerW     float64 // highest tick power in the run window (see Meter.Summary); NaN when unknown
}

// Summary reports the run's energy; call it after Finish.
//
// Its peak power is the highest tick power among the ticks from the run
// window's start T0 (the first at or after it) to the first tick at or
// after its end T1 (Finish waits for that one and stops tracking): each
// tick's power is the sum of the GPUs' sampled power, each GPU's reading
// whatever its source gives (nvmlDeviceGetPowerUsage and DCGM's field 155
// are the driver's one-second average on Ampere and later GPUs except the
// A100, instantaneous on older ones), or, where some GPU's power is
// unknown, the energy since the previous tick over its interval. The
// warm-up, before T0, is left out.
func (e *Meter[ID]) Summary() Summary {
	pre, dec, idle := e.attr.Totals()
	t0, _ := e.attr.Window()
	e.mu.Lock()
	defer e.mu.Unlock()
	peak := math.NaN()
	if !t0.IsZero() {
		peak = e.peak.since(t0)
	}
	return Summary{
		Source: e.src.Name(), Method: e.src.Method(), GPUs: len(e.src.Devices()),
		EnergyJ: pre + dec + idle, IdlePowerW: e.idleTotal, PeakPowerW: peak,
	}
}
