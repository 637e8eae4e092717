package energy

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// scriptedSource replays readings, one round per Read.
type scriptedSource struct {
	method  string
	devices []Device // nil: as many zero Devices as the first round has readings
	rounds  [][]Reading
	err     []error
	i       int
}

func (s *scriptedSource) Name() string   { return "scripted" }
func (s *scriptedSource) Method() string { return s.method }
func (s *scriptedSource) Devices() []Device {
	if s.devices != nil {
		return s.devices
	}
	return make([]Device, len(s.rounds[0]))
}
func (s *scriptedSource) Close() error { return nil }
func (s *scriptedSource) Read(_ context.Context, dst []Reading) ([]Reading, error) {
	i := s.i
	s.i++
	if i < len(s.err) && s.err[i] != nil {
		return dst, s.err[i]
	}
	return append(dst, s.rounds[i]...), nil
}

func TestSamplerCounterNeverDecreases(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 60).Draw(t, "n")
		var rounds [][]Reading
		raw := rapid.Float64Range(0, 1e6).Draw(t, "start")
		prev := raw
		glitched := false // two like glitches in a row would be a re-based counter
		for k := range n {
			kind := rapid.IntRange(0, 9).Draw(t, "kind")
			if kind == 2 && glitched {
				kind = 3
			}
			glitched = kind == 2 && k > 0
			switch kind {
			case 0: // driver reload: counter restarts near zero
				raw = rapid.Float64Range(0, 10).Draw(t, "afterReset")
				prev = raw
			case 1: // a slightly low, non-monotonic read
				raw = prev * rapid.Float64Range(0.9, 1).Draw(t, "stepBack")
			case 2: // a glitch: a reading no GPU could draw, counted as nothing
				if k > 0 {
					raw = prev + rapid.Float64Range(1e7, 1e15).Draw(t, "glitch")
				}
			default:
				raw = prev + rapid.Float64Range(0, 500).Draw(t, "step")
				prev = raw
			}
			if k == 0 {
				prev = raw
			}
			rounds = append(rounds, []Reading{{Time: epoch.Add(time.Duration(k) * time.Second), EnergyJ: raw, PowerW: 1}})
		}
		wantTotal := referenceTotal(rounds)
		s := NewSampler(&scriptedSource{method: MethodCounter, rounds: rounds}, time.Second)
		last := 0.0
		s.OnTick(func(tk Tick) {
			if tk.EnergyJ < last {
				t.Fatalf("energy went back from %v to %v", last, tk.EnergyJ)
			}
			last = tk.EnergyJ
		})
		for range n {
			s.Read(context.Background())
		}
		if math.Abs(last-wantTotal) > 1e-6*math.Max(1, wantTotal) {
			t.Fatalf("total %v, want %v", last, wantTotal)
		}
	})
}

// referenceTotal is the sampler's rule, plainly, for readings one second
// apart whose steps are either small (at most a few hundred J) or absurd
// (1e7 J and more): an absurd jump counts nothing; a drop below half the
// high-water mark counts from the new zero once the next reading stays
// low too (a reset), and nothing if the next reading is back (a glitch);
// a pending drop at the end counts nothing yet.
func referenceTotal(rounds [][]Reading) float64 {
	var base, total float64
	var drop *float64
	for k, r := range rounds {
		raw := r[0].EnergyJ
		if k == 0 {
			base = raw
			continue
		}
		if drop != nil {
			if raw < base*resetFraction {
				total += *drop
				base = *drop
			}
			drop = nil
		}
		switch {
		case raw-base > 1e6: // held, and dropped by the next reading
		case raw > base:
			total += raw - base
			base = raw
		case raw < base*resetFraction:
			drop = &raw
		}
	}
	return total
}

func TestSamplerResetCountsFromNewZero(t *testing.T) {
	src := &scriptedSource{method: MethodCounter, rounds: [][]Reading{
		{{Time: epoch, EnergyJ: 5000}},
		{{Time: epoch.Add(time.Second), EnergyJ: 5300}},
		{{Time: epoch.Add(2 * time.Second), EnergyJ: 40}}, // reset: 40 J since the new zero
		{{Time: epoch.Add(3 * time.Second), EnergyJ: 39}}, // glitch: no energy
		{{Time: epoch.Add(4 * time.Second), EnergyJ: 100}},
	}}
	s := NewSampler(src, time.Second)
	var ticks []Tick
	s.OnTick(func(tk Tick) { ticks = append(ticks, tk) })
	for range 5 {
		s.Read(context.Background())
	}
	// The drop is held until the next reading, low too, shows a reset.
	want := []float64{0, 300, 300, 340, 400}
	for i, tk := range ticks {
		if tk.EnergyJ != want[i] {
			t.Errorf("tick %d: %v J, want %v", i, tk.EnergyJ, want[i])
		}
	}
	if !ticks[2].Samples[0].Held || ticks[2].Samples[0].Reset || !ticks[3].Samples[0].Reset || ticks[4].Samples[0].Reset {
		t.Error("held and reset flags wrong")
	}
}

func TestSamplerIntegratesPowerAndMarksGaps(t *testing.T) {
	down := errors.New("endpoint down")
	src := &scriptedSource{method: MethodIntegrated, rounds: [][]Reading{
		{{Time: epoch, PowerW: 100, EnergyJ: math.NaN()}, {Time: epoch, PowerW: 200, EnergyJ: math.NaN()}},
		{{Time: epoch.Add(time.Second), PowerW: 300, EnergyJ: math.NaN()}, {Time: epoch.Add(time.Second), Err: errors.New("GPU 1 fell off the bus")}},
		nil,
		{{Time: epoch.Add(3 * time.Second), PowerW: 300, EnergyJ: math.NaN()}, {Time: epoch.Add(3 * time.Second), PowerW: 200, EnergyJ: math.NaN()}},
	}, err: []error{nil, nil, down, nil}}
	s := NewSampler(src, time.Second)
	var ticks []Tick
	logs := &logRecorder{}
	s.OnTick(func(tk Tick) { ticks = append(ticks, tk) })
	s.SetLogger(logs.logger())
	for range 4 {
		s.Read(context.Background())
	}
	// GPU 0: trapezoids 200 J (0-1 s) + 600 J (1-3 s, across the failed
	// round). GPU 1: one trapezoid over its gap, 3 s at 200 W = 600 J.
	if got := ticks[3].Samples[0].EnergyJ; got != 800 {
		t.Errorf("GPU 0 energy %v, want 800", got)
	}
	if got := ticks[3].Samples[1].EnergyJ; got != 600 {
		t.Errorf("GPU 1 energy %v, want 600", got)
	}
	if !ticks[3].Samples[1].Gap || ticks[1].Samples[1].Err == "" || logs.count("endpoint down") != 1 {
		t.Errorf("gap/err marks: %+v, logs %q", ticks[3].Samples[1], logs.lines)
	}
	if !math.IsNaN(ticks[1].PowerW) || ticks[3].PowerW != 500 {
		t.Errorf("tick power %v, %v; want NaN (a device unknown), 500", ticks[1].PowerW, ticks[3].PowerW)
	}
}

// A mixed source: the GPU without a counter is integrated, the other
// keeps its counter.
func TestSamplerIntegratesPerDevice(t *testing.T) {
	nan := math.NaN()
	src := &scriptedSource{method: MethodMixed, devices: []Device{{Index: 0}, {Index: 1, Integrated: true}}, rounds: [][]Reading{
		{{Time: epoch, EnergyJ: 1000, PowerW: 300}, {Time: epoch, EnergyJ: nan, PowerW: 100}},
		{{Time: epoch.Add(time.Second), EnergyJ: 1300, PowerW: 300}, {Time: epoch.Add(time.Second), EnergyJ: nan, PowerW: 200}},
		{{Time: epoch.Add(2 * time.Second), EnergyJ: 1500, PowerW: 300}, {Time: epoch.Add(2 * time.Second), EnergyJ: nan, PowerW: 200}},
	}}
	s := NewSampler(src, time.Second)
	if s.Method() != MethodMixed {
		t.Errorf("method %q, want mixed", s.Method())
	}
	var ticks []Tick
	s.OnTick(func(tk Tick) { ticks = append(ticks, tk) })
	for range 3 {
		s.Read(context.Background())
	}
	for i, want := range [][2]float64{{0, 0}, {300, 150}, {500, 350}} {
		got := ticks[i].Samples
		if got[0].EnergyJ != want[0] || got[1].EnergyJ != want[1] || got[0].Err != "" || got[1].Err != "" {
			t.Errorf("tick %d: counter GPU %v J (err %q), integrated GPU %v J (err %q); want %v",
				i, got[0].EnergyJ, got[0].Err, got[1].EnergyJ, got[1].Err, want)
		}
	}
	if !math.IsNaN(ticks[2].Samples[1].RawJ) || ticks[2].Samples[0].RawJ != 1500 {
		t.Errorf("raw counters %v, %v; want 1500 and NaN", ticks[2].Samples[0].RawJ, ticks[2].Samples[1].RawJ)
	}
}

// limitedGPU is a GPU with a 700 W power limit: a counter step above
// 2100 W over its interval is implausible.
var limitedGPU = []Device{{Index: 0, UUID: "GPU-0", PowerLimitW: 700}}

// sampleRounds reads one round per reading of a one-GPU source, a second
// apart, and returns the ticks and the log.
func sampleRounds(t *testing.T, devs []Device, readings ...Reading) ([]Sample, *logRecorder) {
	t.Helper()
	src := &scriptedSource{method: MethodCounter, devices: devs}
	for k, r := range readings {
		r.Time = epoch.Add(time.Duration(k) * time.Second)
		src.rounds = append(src.rounds, []Reading{r})
	}
	s := NewSampler(src, time.Second)
	logs := &logRecorder{}
	s.SetLogger(logs.logger())
	var got []Sample
	s.OnTick(func(tk Tick) { got = append(got, tk.Samples[0]) })
	for range readings {
		s.Read(context.Background())
	}
	return got, logs
}

func energies(ss []Sample) []float64 {
	var e []float64
	for _, s := range ss {
		e = append(e, s.EnergyJ)
	}
	return e
}

func counter(j float64) Reading        { return Reading{EnergyJ: j, PowerW: 300} }
func counterNoPower(j float64) Reading { return Reading{EnergyJ: j, PowerW: math.NaN()} }

func TestSamplerDropsACounterGlitch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readings []Reading
		want     []float64
		held     int // the held reading's index
	}{
		{"up then back", []Reading{counter(1000), counter(1300), counter(1e12), counter(1900), counter(2200)},
			[]float64{0, 300, 300, 900, 1200}, 2},
		{"back slightly low", []Reading{counter(1000), counter(1300), counter(5e6), counter(1290), counter(1600)},
			[]float64{0, 300, 300, 300, 600}, 2},
		{"at the counter's first move", []Reading{counter(1000), counter(1e12), counter(1300)},
			[]float64{0, 0, 300}, 1},
		{"an invalid reading between", []Reading{counter(1000), counter(1e12), counter(math.NaN()), counter(1600)},
			[]float64{0, 0, 0, 600}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, logs := sampleRounds(t, limitedGPU, tc.readings...)
			if e := energies(got); !slices.Equal(e, tc.want) {
				t.Errorf("energy %v, want %v", e, tc.want)
			}
			for i, s := range got {
				if s.Reset || s.Held != (i == tc.held) {
					t.Errorf("sample %d: reset %v held %v", i, s.Reset, s.Held)
				}
			}
			if n := logs.count("a glitch, dropped"); n != 1 || len(logs.all()) != 1 {
				t.Errorf("logs %q, want the glitch once", logs.all())
			}
		})
	}
}

func TestSamplerCountsAReBasedCounterFromPower(t *testing.T) {
	got, logs := sampleRounds(t, limitedGPU, counter(1000), counter(1300), counter(5e6), counter(5e6+300), counter(5e6+600))
	// The held second (1300 J -> 5e6 J) is 300 W x 1 s from power, then
	// the counter counts from its new base.
	if e := energies(got); !slices.Equal(e, []float64{0, 300, 300, 900, 1200}) {
		t.Errorf("energy %v", e)
	}
	if !got[2].Held || got[3].Held || got[3].Reset || got[4].Reset {
		t.Errorf("flags: %+v", got)
	}
	if n := logs.count("re-based; the 1s before the jump is counted from sampled power (300 J)"); n != 1 || len(logs.all()) != 1 {
		t.Errorf("logs %q, want the re-base once", logs.all())
	}

	got, logs = sampleRounds(t, limitedGPU, counterNoPower(1000), counterNoPower(1300), counterNoPower(5e6), counterNoPower(5e6+300))
	if e := energies(got); !slices.Equal(e, []float64{0, 300, 300, 600}) {
		t.Errorf("without power: energy %v, want the held second uncounted", e)
	}
	if logs.count("not counted (no power reading)") != 1 {
		t.Errorf("logs %q", logs.all())
	}
}

func TestSamplerResets(t *testing.T) {
	got, logs := sampleRounds(t, limitedGPU, counter(5e6), counter(5e6+300), counter(40), counter(340))
	if e := energies(got); !slices.Equal(e, []float64{0, 300, 300, 640}) || !got[2].Held || got[2].Reset || !got[3].Reset {
		t.Errorf("driver reload: energy %v, held %v, reset flags %v %v", e, got[2].Held, got[2].Reset, got[3].Reset)
	}
	if logs.count("a reset (driver reload?); counting from the new zero") != 1 || len(logs.all()) != 1 {
		t.Errorf("logs %q", logs.all())
	}
	// A "new zero" the GPU could not have reached since the last reading
	// counts nothing.
	got, logs = sampleRounds(t, limitedGPU, counter(5e9), counter(5e9+300), counter(2e9), counter(2e9+300))
	if e := energies(got); !slices.Equal(e, []float64{0, 300, 300, 600}) || !got[3].Reset {
		t.Errorf("implausible reset: energy %v", e)
	}
	if logs.count("more than the GPU could have drawn since its last reading") != 1 {
		t.Errorf("logs %q", logs.all())
	}
	// A single bogus low reading, followed by a return, is a glitch: not
	// a reset, and the energy across it is counted once.
	got, logs = sampleRounds(t, limitedGPU, counter(1e6), counter(1e6+300), counter(0), counter(1e6+600), counter(1e6+900))
	if e := energies(got); !slices.Equal(e, []float64{0, 300, 300, 600, 900}) || slices.ContainsFunc(got, func(s Sample) bool { return s.Reset }) {
		t.Errorf("a zero between two good readings: energy %v, samples %+v", e, got)
	}
	if logs.count("a glitch, dropped") != 1 || logs.count("reset") != 0 {
		t.Errorf("logs %q, want one glitch and no reset", logs.all())
	}
}

// The rule bounds power, not steps: a long gap allows the energy of its
// whole length.
func TestSamplerGlitchThresholdScalesWithTheInterval(t *testing.T) {
	lost := Reading{Err: errors.New("GPU is lost")}
	readings := []Reading{counter(1000), counter(1300)}
	for range 9 {
		readings = append(readings, lost)
	}
	// 700 W for the 10 s since the last reading: 7000 J, over 3x the
	// limit for one second, plausible for ten.
	readings = append(readings, counter(8300), counter(8600))
	got, logs := sampleRounds(t, limitedGPU, readings...)
	if e := energies(got); e[11] != 7300 || e[12] != 7600 || !got[11].Gap || got[11].Held {
		t.Errorf("after a 10 s gap: energy %v, sample %+v", e, got[11])
	}
	if logs.count("jumped") != 0 {
		t.Errorf("logs %q", logs.all())
	}
	got, _ = sampleRounds(t, limitedGPU, counter(1000), counter(1300), counter(8300))
	if !got[2].Held || got[2].EnergyJ != 300 {
		t.Errorf("the same step in one second: %+v, want held", got[2])
	}
	// A low limit read at start is floored at 500 W: a 150 W cap raised
	// to 700 W later (nvidia-smi -pl) still counts (1400 J over the 2 s
	// since the reading before the counter last moved), 3100 J does not.
	got, _ = sampleRounds(t, []Device{{PowerLimitW: 150}}, counter(1000), counter(1700), counter(3100), counter(6200))
	if e := energies(got); got[2].Held || e[2] != 2100 || !got[3].Held {
		t.Errorf("150 W limit raised to 700 W: %+v", got)
	}
	// Without a known limit the ceiling is 3 x 1500 W.
	got, _ = sampleRounds(t, []Device{{}}, counter(1000), counter(1300), counter(8300), counter(8300+4600*2))
	if got[2].Held || !got[3].Held {
		t.Errorf("unknown limit: %+v", got)
	}
}

func TestSamplerInvalidReadings(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	got, logs := sampleRounds(t, limitedGPU,
		Reading{EnergyJ: 1000, PowerW: 300},
		Reading{EnergyJ: nan, PowerW: 300},
		Reading{EnergyJ: -5, PowerW: -5},
		Reading{EnergyJ: inf, PowerW: inf},
		Reading{EnergyJ: 1600, PowerW: nan},
		Reading{EnergyJ: 1900, PowerW: 1e7}, // no GPU draws 10 MW
		Reading{EnergyJ: 2200, PowerW: 3e6},
		Reading{EnergyJ: 2500, PowerW: 310},
	)
	if e := energies(got); !slices.Equal(e, []float64{0, 0, 0, 0, 600, 900, 1200, 1500}) {
		t.Errorf("energy %v", e)
	}
	for i, s := range got {
		invalid := i >= 1 && i <= 3
		if (s.Err == "invalid energy reading") != invalid || s.Reset || s.Held {
			t.Errorf("sample %d: %+v", i, s)
		}
		if knownPower := i <= 1 || i == 7; math.IsNaN(s.PowerW) == knownPower {
			t.Errorf("sample %d: power %v", i, s.PowerW)
		}
	}
	if n := logs.count("above 3x its 700 W power limit: ignored"); n != 1 || len(logs.all()) != 1 {
		t.Errorf("logs %q, want the implausible power once a streak", logs.all())
	}
}

// A power-only GPU's implausible power is not integrated.
func TestSamplerIgnoresImplausiblePower(t *testing.T) {
	nan := math.NaN()
	src := &scriptedSource{method: MethodIntegrated, devices: []Device{{PowerLimitW: 700}}, rounds: [][]Reading{
		{{Time: epoch, EnergyJ: nan, PowerW: 100}},
		{{Time: epoch.Add(time.Second), EnergyJ: nan, PowerW: 1e9}},
		{{Time: epoch.Add(2 * time.Second), EnergyJ: nan, PowerW: 300}},
	}}
	s := NewSampler(src, time.Second)
	var last Tick
	s.OnTick(func(tk Tick) { last = tk })
	for range 3 {
		s.Read(context.Background())
	}
	if last.EnergyJ != 400 { // (100+300)/2 x 2 s
		t.Errorf("energy %v, want 400", last.EnergyJ)
	}
}

func TestIdlePower(t *testing.T) {
	a := Tick{Time: epoch, Samples: []Sample{{EnergyJ: 0}, {EnergyJ: 10}}}
	b := Tick{Time: epoch.Add(10 * time.Second), Samples: []Sample{{EnergyJ: 600}, {EnergyJ: 710}}}
	per, total := IdlePower(a, b)
	if per[0] != 60 || per[1] != 70 || total != 130 {
		t.Fatalf("idle power %v total %v", per, total)
	}
}
