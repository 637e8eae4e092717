//go:build linux && cgo

package energy

import (
	"math"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

// The glitch rule as on a GPU host: the stand-in driver's energy counter
// reads a billion joules too many once, through go-nvml and the nvml
// source; the sampler drops it, logs it once and counts no reset.
func TestSamplerDropsAnNVMLCounterGlitch(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		s := NewSampler(src, 200*time.Millisecond)
		logs := &logRecorder{}
		s.SetLogger(logs.logger())
		var samples []Sample
		s.OnTick(func(tk Tick) { samples = append(samples, tk.Samples[0]) })
		s.Read(t.Context())
		s.Read(t.Context())
		if err := stub.Glitch(0); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			s.Read(t.Context())
		}
		for i, smp := range samples {
			if smp.Err != "" || smp.Reset || smp.Held != (i == 2) {
				t.Errorf("sample %d: %+v", i, smp)
			}
		}
		first, last := samples[0], samples[len(samples)-1]
		if got, want := last.EnergyJ, last.RawJ-first.RawJ; math.Abs(got-want) > 1e-9*math.Max(1, last.RawJ) {
			t.Errorf("energy %v J, want the counter's own %v J", got, want)
		}
		if n := logs.count("a glitch, dropped"); n != 1 || len(logs.all()) != 1 {
			t.Errorf("logs %q, want the glitch once", logs.all())
		}
	})
}
