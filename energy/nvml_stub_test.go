//go:build linux && cgo

package energy

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

// These tests load a stand-in libnvidia-ml.so.1 (nvmlstub) in a child
// process and read it through go-nvml, as on a GPU host: this process
// never loads it.

// noCUDAVisible keeps the environment's CUDA_VISIBLE_DEVICES out of a
// child.
var noCUDAVisible = []string{"CUDA_VISIBLE_DEVICES="}

const migOfGPU0 = "MIG-4a5b0000-0000-5000-8000-000000000001"

// servingNode is an 8-GPU host whose model runs on GPU 0 (in MIG mode):
// 500 W against the others' 90 W idle.
func servingNode(procs int) nvmlstub.Node {
	gpus := make([]nvmlstub.GPU, 8)
	for i := range gpus {
		gpus[i] = nvmlstub.GPU{PowerW: 90}
	}
	gpus[0] = nvmlstub.GPU{PowerW: 500, Processes: procs, MIG: true, MIGDevices: []nvmlstub.MIGDevice{
		{UUID: "MIG-4a5b0000-0000-5000-8000-000000000000"}, {UUID: migOfGPU0, Processes: procs},
	}}
	return nvmlstub.Node{GPUs: gpus}
}

// openStubNVML opens the nvml source in a child that runs on the stub.
func openStubNVML(t *testing.T, opts SourceOptions) Source {
	t.Helper()
	opts.Interval = 200 * time.Millisecond // reads bounded by readTimeout: 500 ms
	src, _, err := OpenSource(t.Context(), SourceNVML, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// readRates reads src twice, gap apart, and gives each GPU's energy rate
// between the reads (NaN where either read has no energy) and the second
// readings.
func readRates(t *testing.T, src Source, gap time.Duration) ([]float64, []Reading) {
	t.Helper()
	first := mustRead(t, src)
	time.Sleep(gap)
	second := mustRead(t, src)
	w := make([]float64, len(second))
	for i := range second {
		w[i] = (second[i].EnergyJ - first[i].EnergyJ) / second[i].Time.Sub(first[i].Time).Seconds()
	}
	return w, second
}

// within reports whether got is within 2 % of want.
func within(got, want float64) bool { return math.Abs(got-want) <= 0.02*want }

func TestNVMLStubSelectsTheGPUsThatServeTheModel(t *testing.T) {
	for _, tc := range []struct {
		name, gpus, cuda string
		want             []int
		how              string
	}{
		{"auto", "", "", []int{0}, "compute processes"},
		{"index", "0", "", []int{0}, "--gpus"},
		{"uuid", nvmlstub.DefaultUUID(0), "", []int{0}, "--gpus"},
		{"mig uuid", migOfGPU0, "", []int{0}, "--gpus"},
		{"all", "all", "", []int{0, 1, 2, 3, 4, 5, 6, 7}, "all"},
		{"cuda visible devices", "auto", "2,3", []int{2, 3}, "CUDA_VISIBLE_DEVICES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := []string{"CUDA_VISIBLE_DEVICES=" + tc.cuda}
			nvmlstub.InChild(t, servingNode(1), env, func(t *testing.T, _ nvmlstub.Stub) {
				src := openStubNVML(t, SourceOptions{GPUs: tc.gpus, Hostname: "node-1"})
				devs := src.Devices()
				if !slices.Equal(indices(devs), tc.want) {
					t.Fatalf("GPUs %v, want %v", indices(devs), tc.want)
				}
				if sel := SelectionOf(src); sel.How != tc.how || sel.Warning != "" {
					t.Errorf("selection %+v, want %q without a warning", sel, tc.how)
				}
				for _, d := range devs {
					if d.UUID != nvmlstub.DefaultUUID(d.Index) || d.Hostname != "node-1" || d.PowerLimitW != 700 || d.Integrated || d.MIG != (d.Index == 0) {
						t.Errorf("device %+v", d)
					}
				}
				if src.Method() != MethodCounter {
					t.Errorf("method %s", src.Method())
				}
				if tc.name != "auto" {
					return
				}
				w, rs := readRates(t, src, 1500*time.Millisecond)
				if !within(w[0], 500) || !within(rs[0].PowerW, 500) || rs[0].Err != nil {
					t.Errorf("gpu 0 draws %.2f W by its counter, %.2f W by power (%v); want 500", w[0], rs[0].PowerW, rs[0].Err)
				}
			})
		})
	}
}

// With no compute process anywhere, auto counts every GPU and says which.
func TestNVMLStubAutoWithoutProcessesCountsAllWithAWarning(t *testing.T) {
	nvmlstub.InChild(t, servingNode(0), noCUDAVisible, func(t *testing.T, _ nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{})
		if len(src.Devices()) != 8 {
			t.Fatalf("GPUs %v, want all 8", indices(src.Devices()))
		}
		sel := SelectionOf(src)
		if sel.How != "all (no GPU runs a compute process)" {
			t.Errorf("chosen by %q", sel.How)
		}
		for i := range 8 {
			if !strings.Contains(sel.Warning, nvmlstub.DefaultUUID(i)) {
				t.Errorf("warning %q does not name gpu %d", sel.Warning, i)
			}
		}
	})
}

// The dcgm source's auto selection asks NVML which GPUs run a compute
// process, including one whose only process runs in a MIG instance.
func TestNVMLStubLocalGPUUsage(t *testing.T) {
	node := servingNode(1)
	node.GPUs[0].Processes = 0 // its process is listed on its MIG device only
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, _ nvmlstub.Stub) {
		usage, err := localGPUUsage()
		if err != nil {
			t.Fatal(err)
		}
		if len(usage) != 8 {
			t.Errorf("usage of %d GPUs, want 8", len(usage))
		}
		u := usage[nvmlstub.DefaultUUID(0)]
		if !u.Busy || !u.MIG || !slices.Contains(u.MIGUUIDs, migOfGPU0) || len(u.MIGUUIDs) != 2 {
			t.Errorf("gpu 0: %+v", u)
		}
		if u := usage[nvmlstub.DefaultUUID(3)]; u.Busy || u.MIG || len(u.MIGUUIDs) != 0 {
			t.Errorf("gpu 3: %+v", u)
		}
		// NVML was shut down: the source opens it afresh.
		src := openStubNVML(t, SourceOptions{})
		if !slices.Equal(indices(src.Devices()), []int{0}) {
			t.Errorf("auto chose %v, want [0]", indices(src.Devices()))
		}
	})
}

// A GPU without an energy counter is integrated from its power; the
// others keep their counters.
func TestNVMLStubGPUWithoutEnergyCounter(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}, {PowerW: 120, NoEnergyCounter: true}, {PowerW: 200}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, _ nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		for i, d := range src.Devices() {
			if d.Integrated != (i == 1) {
				t.Errorf("gpu %d integrated: %v", i, d.Integrated)
			}
		}
		if src.Method() != MethodMixed {
			t.Errorf("method %s, want mixed", src.Method())
		}
		w, rs := readRates(t, src, time.Second)
		if !math.IsNaN(rs[1].EnergyJ) || !within(rs[1].PowerW, 120) || rs[1].Err != nil {
			t.Errorf("gpu 1: %+v, want 120 W and no energy", rs[1])
		}
		if !within(w[0], 300) || !within(w[2], 200) {
			t.Errorf("counters' rates %.2f W, %.2f W; want 300, 200", w[0], w[2])
		}
	})
}

// A lost GPU fails alone, and answers again when it is back.
func TestNVMLStubLostGPU(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}, {PowerW: 300}, {PowerW: 200}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		before := mustRead(t, src)
		if err := stub.Lose(1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		rs := mustRead(t, src)
		if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "GPU is lost") || !strings.Contains(rs[1].Err.Error(), "gpu 1") {
			t.Errorf("lost gpu 1: %v", rs[1].Err)
		}
		for _, i := range []int{0, 2} {
			if rs[i].Err != nil || !(rs[i].EnergyJ > before[i].EnergyJ) {
				t.Errorf("gpu %d beside the lost one: %+v (before %+v)", i, rs[i], before[i])
			}
		}
		if err := stub.Heal(1); err != nil {
			t.Fatal(err)
		}
		if rs := mustRead(t, src); rs[1].Err != nil || !(rs[1].EnergyJ > before[1].EnergyJ) {
			t.Errorf("gpu 1 back: %+v", rs[1])
		}
	})
}

// A GPU hung before the source opens costs the others nothing: opening
// returns after its bound, without that GPU, and serves the rest.
func TestNVMLStubGPUHungAtOpen(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}, {PowerW: 300}, {PowerW: 200}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		nvmlOpenTimeout = 500 * time.Millisecond
		const hang = 6 * time.Second
		if err := stub.Hang(1, hang); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		if took := time.Since(start); took > hang*3/4 {
			t.Errorf("opening took %v with gpu 1 hung for %v", took, hang)
		}
		var idx []int
		for _, d := range src.Devices() {
			idx = append(idx, d.Index)
		}
		if !slices.Equal(idx, []int{0, 2}) {
			t.Fatalf("devices %v, want 0 and 2 (gpu 1 did not answer)", idx)
		}
		if rs := mustRead(t, src); rs[0].Err != nil || rs[1].Err != nil {
			t.Errorf("readings %+v", rs)
		}
		if err := stub.Heal(1); err != nil {
			t.Fatal(err)
		}
	})
}

// A hung GPU costs the others no reading: a read returns within about
// its timeout, the hung GPU failed, and the source closes without
// waiting for the hung call.
func TestNVMLStubHungGPU(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}, {PowerW: 300}, {PowerW: 200}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		before := mustRead(t, src)
		const hang = 4 * time.Second
		if err := stub.Hang(1, hang); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			start := time.Now()
			rs := mustRead(t, src)
			// The bound is readTimeout (500 ms); a busy machine may add a
			// little, never the hang.
			if took := time.Since(start); took > hang*3/4 {
				t.Errorf("read took %v with gpu 1 hung for %v", took, hang)
			}
			if !errors.As(rs[1].Err, new(errReadTimeout)) {
				t.Errorf("hung gpu 1: %+v", rs[1])
			}
			for _, i := range []int{0, 2} {
				if rs[i].Err != nil || !(rs[i].EnergyJ > before[i].EnergyJ) {
					t.Errorf("gpu %d beside the hung one: %+v", i, rs[i])
				}
			}
		}
		if err := stub.Heal(1); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * hang)
		for rs := mustRead(t, src); rs[1].Err != nil; rs = mustRead(t, src) {
			if time.Now().After(deadline) {
				t.Fatalf("gpu 1 still failing %v after it stopped hanging: %v", 3*hang, rs[1].Err)
			}
			time.Sleep(200 * time.Millisecond)
		}

		// Closing while a call hangs: Close returns at once, and NVML is
		// shut down only when the hung call is back.
		if err := stub.Hang(1, time.Second); err != nil {
			t.Fatal(err)
		}
		mustRead(t, src)
		start := time.Now()
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Errorf("Close waited %v for the hung call", took)
		}
		// The hung call returns into a closed source, and only then is
		// NVML shut down, once.
		deadline = time.Now().Add(10 * time.Second)
		for {
			shutdowns, err := stub.Shutdowns()
			if err != nil {
				t.Fatal(err)
			}
			if len(shutdowns) > 0 {
				time.Sleep(200 * time.Millisecond) // a second shutdown would show by now
				if shutdowns, _ = stub.Shutdowns(); len(shutdowns) != 1 || shutdowns[0] != 0 {
					t.Errorf("NVML shut down %d times, with %v calls hanging; want once, with none", len(shutdowns), shutdowns)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("NVML was never shut down after the hung call returned")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// An energy read that fails at start for another reason than
// NOT_SUPPORTED is retried: the counter is used once it answers.
func TestNVMLStubEnergyFailingAtStart(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 300}, {PowerW: 250}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		if err := stub.FailEnergy(1, nvmlstub.Unknown); err != nil {
			t.Fatal(err)
		}
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		if d := src.Devices()[1]; d.Integrated || src.Method() != MethodCounter {
			t.Errorf("gpu 1 %+v, method %s; want a counter", d, src.Method())
		}
		if rs := mustRead(t, src); rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "Unknown Error") {
			t.Errorf("gpu 1 while its counter fails: %+v", rs[1])
		}
		if err := stub.Heal(1); err != nil {
			t.Fatal(err)
		}
		w, rs := readRates(t, src, time.Second)
		if rs[1].Err != nil || !within(w[1], 250) {
			t.Errorf("gpu 1 once its counter answers: %.2f W (%+v), want 250", w[1], rs[1])
		}
	})
}

// Power is NVML_FI_DEV_POWER_INSTANT where the driver has it (GetPowerUsage
// is a one-second mean on Ampere and later), else GetPowerUsage.
func TestNVMLStubInstantPower(t *testing.T) {
	node := nvmlstub.Node{GPUs: []nvmlstub.GPU{{PowerW: 90}, {PowerW: 90, NoInstantPower: true}}}
	nvmlstub.InChild(t, node, noCUDAVisible, func(t *testing.T, stub nvmlstub.Stub) {
		src := openStubNVML(t, SourceOptions{GPUs: "all"})
		for i := range 2 {
			if err := stub.SetPower(i, 500); err != nil {
				t.Fatal(err)
			}
		}
		rs := mustRead(t, src)
		if rs[0].PowerW != 500 {
			t.Errorf("gpu 0 just after going to 500 W reads %.3f W; want the instant 500", rs[0].PowerW)
		}
		if p := rs[1].PowerW; !(p >= 90 && p <= 500) {
			t.Errorf("gpu 1 (no instant field) reads %.3f W; want its 1 s mean", p)
		}
	})
}
