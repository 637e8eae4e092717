package energy

import (
	"context"
	"errors"
	"math"
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
		var wantTotal float64
		prev := raw
		for k := range n {
			switch rapid.IntRange(0, 9).Draw(t, "kind") {
			case 0: // driver reload: counter restarts near zero
				raw = rapid.Float64Range(0, 10).Draw(t, "afterReset")
				if k > 0 && raw < prev*resetFraction {
					wantTotal += raw
					prev = raw
				} else if k > 0 && raw >= prev {
					wantTotal += raw - prev
					prev = raw
				}
			case 1: // a slightly low, non-monotonic read
				raw = prev * rapid.Float64Range(0.9, 1).Draw(t, "glitch")
			default:
				raw = prev + rapid.Float64Range(0, 500).Draw(t, "step")
				if k > 0 {
					wantTotal += raw - prev
				}
				prev = raw
			}
			if k == 0 {
				prev = raw
			}
			rounds = append(rounds, []Reading{{Time: epoch.Add(time.Duration(k) * time.Second), EnergyJ: raw, PowerW: 1}})
		}
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
	want := []float64{0, 300, 340, 340, 400}
	for i, tk := range ticks {
		if tk.EnergyJ != want[i] {
			t.Errorf("tick %d: %v J, want %v", i, tk.EnergyJ, want[i])
		}
	}
	if !ticks[2].Samples[0].Reset || ticks[3].Samples[0].Reset {
		t.Error("reset flags wrong")
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

func TestIdlePower(t *testing.T) {
	a := Tick{Time: epoch, Samples: []Sample{{EnergyJ: 0}, {EnergyJ: 10}}}
	b := Tick{Time: epoch.Add(10 * time.Second), Samples: []Sample{{EnergyJ: 600}, {EnergyJ: 710}}}
	per, total := IdlePower(a, b)
	if per[0] != 60 || per[1] != 70 || total != 130 {
		t.Fatalf("idle power %v total %v", per, total)
	}
}
