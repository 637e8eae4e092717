package energy

import (
	"fmt"
	"math"
	"time"
)

// resetFraction tells a counter reset from a step back: a reading below
// this fraction of the previous one is a reset (driver reload, GPU reset)
// and counts from the new zero; a smaller step back is a non-monotonic
// read and counts as no energy. Either way energy never goes negative.
const resetFraction = 0.5

// glitchFactor bounds what a reading may claim: a counter step implying
// more than this many times the GPU's power limit over its interval, or a
// power reading above it, is no GPU's draw (DESIGN: "a jump no GPU could
// draw"). Boost and transients stay well inside it.
const glitchFactor = 3

// defaultPowerLimitW stands in for a power limit the source does not
// know. It is above the board power of every GPU shipping today (B200
// 1000 W, GB200 1200 W, MI355X 1400 W), so that an unknown limit never
// turns real energy into a glitch, while the glitches seen in the field,
// counters jumping by orders of magnitude, are still caught.
const defaultPowerLimitW = 1500

// minPowerLimitW floors a known power limit for the glitch rule. The
// limit is read once, at start, and an administrator may raise it later
// (nvidia-smi -pl): a 150 W cap raised to 700 W must not turn real energy
// into glitches. The glitches seen in the field are orders of magnitude
// above any of this.
const minPowerLimitW = 500

// unknownAge is how old the value of a device's first reading may be.
// A source may serve a counter it read long before (dcgm-exporter
// collects every 30 s by default), so the counter's first move may hold
// up to that much more energy than the time since the first reading.
const unknownAge = time.Minute

// deviceState corrects one device's readings into a monotonic total.
type deviceState struct {
	integrated bool    // no counter: energy is the integral of power
	limitW     float64 // the power limit the glitch rule uses
	limitKnown bool    // limitW is the device's own, not defaultPowerLimitW

	started bool
	base    float64   // the counter's high-water mark
	baseT   time.Time // when the counter first read base
	since   time.Time // the last good reading before baseT
	lastT   time.Time // the last good reading
	held    *heldStep // an implausible jump, until the next reading tells what it was
	total   float64
	failing bool

	// power's trapezoid integral: integrated devices' energy, and a
	// re-based counter's held interval
	powerJ     float64
	basePowerJ float64 // powerJ at baseT
	hasP       bool
	prevP      float64
	prevPT     time.Time
	powerBad   bool // the last power reading was implausible (logged once a streak)

	notes []string // what the last update has to tell, for the log
}

// heldStep is a counter jump too large for the GPU to have drawn, or a
// drop that looks like a reset: one reading cannot tell either from a
// glitch, the next one can.
type heldStep struct {
	raw    float64
	t      time.Time
	from   time.Time // the last good reading before it (its since, if it is real)
	powerJ float64   // the power integral at t
	hasP   bool      // power was known by then
	drop   bool      // a drop below resetFraction of the high-water mark
}

func newDeviceState(d Device, integrated bool) deviceState {
	s := deviceState{integrated: integrated, limitW: max(d.PowerLimitW, minPowerLimitW), limitKnown: true}
	if !usable(d.PowerLimitW) || d.PowerLimitW == 0 {
		s.limitW, s.limitKnown = defaultPowerLimitW, false
	}
	return s
}

// usable tells a real reading from a library's garbage (NaN, ±Inf, or
// below zero).
func usable(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 }

// update folds a reading into the state and returns the corrected sample.
// What it has to tell is in d.notes until the next update.
func (d *deviceState) update(gpu int, r Reading) Sample {
	d.notes = d.notes[:0]
	s := Sample{Time: r.Time, GPU: gpu, RawJ: math.NaN(), PowerW: math.NaN()}
	if r.Err != nil {
		d.failing = true
		s.Err = r.Err.Error()
		s.EnergyJ = d.total
		return s
	}
	s.Gap, d.failing = d.failing, false
	s.PowerW = d.power(r.PowerW)
	d.integrate(s.PowerW, r.Time)
	if d.integrated {
		d.total = d.powerJ
	} else {
		s.RawJ = r.EnergyJ
		d.count(&s, r.EnergyJ, r.Time)
	}
	s.EnergyJ = d.total
	return s
}

// power is p if it is a power the GPU could draw, else NaN.
func (d *deviceState) power(p float64) float64 {
	if !usable(p) {
		return math.NaN()
	}
	if p > glitchFactor*d.limitW {
		if !d.powerBad {
			d.note("power reading of %.0f W is above %s: ignored", p, d.ceiling())
		}
		d.powerBad = true
		return math.NaN()
	}
	d.powerBad = false
	return p
}

// integrate adds the trapezoid from the last known power to p at t.
func (d *deviceState) integrate(p float64, t time.Time) {
	if math.IsNaN(p) {
		return
	}
	if d.hasP {
		d.powerJ += (d.prevP + p) / 2 * max(t.Sub(d.prevPT).Seconds(), 0)
	}
	d.hasP, d.prevP, d.prevPT = true, p, t
}

// count folds a counter reading into the total.
func (d *deviceState) count(s *Sample, raw float64, t time.Time) {
	switch {
	case !usable(raw):
		s.Err = "invalid energy reading"
		return
	case !d.started:
		d.started = true
		d.setBase(raw, t, t.Add(-unknownAge))
		d.lastT = t
		return
	}
	if h := d.held; h != nil {
		d.held = nil
		if h.drop {
			d.settleDrop(s, h, raw)
		} else {
			d.settle(h, raw, t)
		}
	}
	switch {
	case raw > d.base && !d.plausible(raw-d.base, t.Sub(d.since)):
		// Not a good reading until the next one says so: lastT stays.
		d.held = &heldStep{raw: raw, t: t, from: d.lastT, powerJ: d.powerJ, hasP: d.hasP}
		s.Held = true
		return
	case raw > d.base:
		d.total += raw - d.base
		d.setBase(raw, t, d.lastT)
	case raw < d.base*resetFraction:
		// A reset, or a single bogus low reading: the next reading tells.
		d.held = &heldStep{raw: raw, t: t, from: d.lastT, drop: true}
		s.Held = true
		return
	}
	d.lastT = t
}

// settleDrop decides what a held drop was, from the reading after it: a
// glitch if the counter is back above the reset threshold (the caller
// then counts raw against the old high-water mark), else a reset, which
// counts from the new zero and is marked on this sample.
func (d *deviceState) settleDrop(s *Sample, h *heldStep, raw float64) {
	if raw >= d.base*resetFraction {
		d.note("energy counter read %.0f J between %.0f J and %.0f J: a glitch, dropped", h.raw, d.base, raw)
		return
	}
	s.Reset = true
	// The counter restarted after the last good reading.
	if d.plausible(h.raw, h.t.Sub(d.lastT)) {
		d.note("energy counter went back from %.0f J to %.0f J: a reset (driver reload?); counting from the new zero", d.base, h.raw)
		d.total += h.raw
	} else {
		d.note("energy counter went back from %.0f J to %.0f J: a reset (driver reload?), but more than the GPU could have drawn since its last reading; counting from that reading", d.base, h.raw)
	}
	d.setBase(h.raw, h.t, d.lastT)
	d.lastT = h.t
}

// settle decides what a held jump was, from the reading after it: a
// glitch if the counter is back where it was, a re-based counter if it
// stays where it jumped, else a glitch followed by something the caller
// judges afresh.
func (d *deviceState) settle(h *heldStep, raw float64, t time.Time) {
	jump := fmt.Sprintf("energy counter jumped from %.0f J to %.0f J (%s over %v, above %s)",
		d.base, h.raw, impliedPower(h.raw-d.base, h.t.Sub(d.since)), h.t.Sub(d.since).Round(time.Millisecond), d.ceiling())
	switch {
	case d.near(raw, d.base, t.Sub(d.since)):
		d.note("%s and came back to %.0f J: a glitch, dropped", jump, raw)
	case d.near(raw, h.raw, t.Sub(h.t)):
		gained := 0.0
		if h.hasP {
			gained = max(h.powerJ-d.basePowerJ, 0)
		}
		d.total += gained
		how := fmt.Sprintf("counted from sampled power (%.0f J)", gained)
		if !h.hasP {
			how = "not counted (no power reading)"
		}
		d.note("%s and stayed there (%.0f J now): the counter was re-based; the %v before the jump is %s",
			jump, raw, h.t.Sub(d.baseT).Round(time.Millisecond), how)
		d.base, d.baseT, d.since, d.basePowerJ = h.raw, h.t, h.from, h.powerJ
		d.lastT = h.t
	default:
		d.note("%s, then read %.0f J: the jump is dropped as a glitch", jump, raw)
	}
}

// setBase makes raw the counter's high-water mark, first read at t, the
// good reading before being at since.
func (d *deviceState) setBase(raw float64, t, since time.Time) {
	d.base, d.baseT, d.since, d.basePowerJ = raw, t, since, d.powerJ
}

// plausible tells whether the GPU could have drawn energyJ within dt.
func (d *deviceState) plausible(energyJ float64, dt time.Duration) bool {
	return energyJ <= glitchFactor*d.limitW*max(dt.Seconds(), 0)
}

// near tells whether a counter reading is within what the GPU could draw
// over dt of the value v, either way (a non-monotonic read is slightly
// low).
func (d *deviceState) near(raw, v float64, dt time.Duration) bool {
	return d.plausible(math.Abs(raw-v), dt)
}

// ceiling names the power bound in log lines.
func (d *deviceState) ceiling() string {
	if d.limitKnown {
		return fmt.Sprintf("%dx its %.0f W power limit", glitchFactor, d.limitW)
	}
	return fmt.Sprintf("%dx %.0f W (its power limit is unknown)", glitchFactor, d.limitW)
}

// impliedPower is the power of energy over dt, for log lines.
func impliedPower(energyJ float64, dt time.Duration) string {
	if dt <= 0 {
		return "unbounded power"
	}
	return fmt.Sprintf("%.4g W", energyJ/dt.Seconds())
}

func (d *deviceState) note(format string, args ...any) {
	d.notes = append(d.notes, fmt.Sprintf(format, args...))
}
