package energy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// fakeNVMLLib is nvmlLib with GPUs whose counters a test sets.
type fakeNVMLLib struct {
	names      []string
	identErr   map[int]error
	energyMJ   map[int]uint64
	energyErr  map[int]error
	powerMW    map[int]uint32
	powerErr   map[int]error
	instantMW  map[int]uint32
	instantErr map[int]error
	limitMW    map[int]uint32
	usage      map[int]gpuUsage
	usageErr   map[int]error
	shutdowns  int
}

// newFakeNVMLLib has n idle A100s, with energy counters (1, 2, … J), a
// 1 s mean power of 100 W, no instantaneous power field and a 400 W limit.
func newFakeNVMLLib(n int) *fakeNVMLLib {
	f := &fakeNVMLLib{identErr: map[int]error{}, energyMJ: map[int]uint64{}, energyErr: map[int]error{},
		powerMW: map[int]uint32{}, powerErr: map[int]error{}, instantMW: map[int]uint32{}, instantErr: map[int]error{},
		limitMW: map[int]uint32{}, usage: map[int]gpuUsage{}, usageErr: map[int]error{}}
	for i := range n {
		f.names = append(f.names, "NVIDIA A100-SXM4-40GB")
		f.energyMJ[i], f.powerMW[i], f.limitMW[i] = uint64(1000*(i+1)), 100_000, 400_000
		f.instantErr[i] = fmt.Errorf("GetFieldValues(POWER_INSTANT): %w", errNVMLNotSupported)
	}
	return f
}

func (f *fakeNVMLLib) DeviceCount() (int, error) { return len(f.names), nil }
func (f *fakeNVMLLib) Identify(i int) (string, string, error) {
	if err := f.identErr[i]; err != nil {
		return "", "", err
	}
	return fmt.Sprintf("GPU-%04d", i), f.names[i], nil
}
func (f *fakeNVMLLib) Energy(i int) (uint64, error)       { return f.energyMJ[i], f.energyErr[i] }
func (f *fakeNVMLLib) Power(i int) (uint32, error)        { return f.powerMW[i], f.powerErr[i] }
func (f *fakeNVMLLib) InstantPower(i int) (uint32, error) { return f.instantMW[i], f.instantErr[i] }
func (f *fakeNVMLLib) PowerLimit(i int) (uint32, error)   { return f.limitMW[i], nil }
func (f *fakeNVMLLib) Usage(i int) (gpuUsage, error)      { return f.usage[i], f.usageErr[i] }
func (f *fakeNVMLLib) Shutdown() error                    { f.shutdowns++; return nil }

var errNVMLNotSupportedAsLib = fmt.Errorf("GetTotalEnergyConsumption: %w", errNVMLNotSupported)

// allGPUs chooses every GPU, whatever the environment's
// CUDA_VISIBLE_DEVICES.
var allGPUs = SourceOptions{GPUs: GPUsAll, Hostname: "h"}

func TestNVMLSourceConvertsUnits(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.energyMJ[0], lib.powerMW[0] = 123456, 250500
	src, err := newNVMLSource(lib, SourceOptions{GPUs: GPUsAll, Hostname: "gpu-host"})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != SourceNVML || src.Method() != MethodCounter {
		t.Errorf("Name, Method = %s, %s", src.Name(), src.Method())
	}
	if d := src.Devices()[1]; d != (Device{Index: 1, UUID: "GPU-0001", Model: "NVIDIA A100-SXM4-40GB", Hostname: "gpu-host", PowerLimitW: 400}) {
		t.Errorf("device 1 = %+v", d)
	}
	rs := mustRead(t, src)
	if rs[0].EnergyJ != 123.456 || rs[0].PowerW != 250.5 || rs[0].Err != nil || rs[0].Time.IsZero() {
		t.Errorf("gpu 0: %+v, want 123.456 J, 250.5 W", rs[0])
	}
	if rs[1].EnergyJ != 2 || rs[1].PowerW != 100 {
		t.Errorf("gpu 1: %+v, want 2 J, 100 W", rs[1])
	}
	if err := src.Close(); err != nil || lib.shutdowns != 1 {
		t.Errorf("Close: %v, shut down %d times", err, lib.shutdowns)
	}
}

// Only the GPU without a counter is integrated; the source's method is
// then mixed, or integrated when no GPU has one.
func TestNVMLSourcePowerOnlyWhenTheCounterIsNotSupported(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.energyErr[1] = errNVMLNotSupportedAsLib // an older GPU
	lib.powerMW[1] = 55_000
	logs := &logRecorder{}
	opts := allGPUs
	opts.Logger = logs.logger()
	src, err := newNVMLSource(lib, opts)
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodMixed || src.Devices()[0].Integrated || !src.Devices()[1].Integrated {
		t.Errorf("Method = %s, devices %+v; want mixed, gpu 1 integrated", src.Method(), src.Devices())
	}
	if len(logs.all()) != 1 || !strings.Contains(logs.all()[0], "gpu 1") {
		t.Errorf("logs.all() %q, want one line about gpu 1", logs.all())
	}
	rs := mustRead(t, src)
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 55 || rs[1].Err != nil {
		t.Errorf("power-only gpu: %+v", rs[1])
	}
	if rs[0].EnergyJ != 1 || rs[0].Err != nil {
		t.Errorf("gpu 0: %+v", rs[0])
	}
	// A power-only GPU whose power read fails has nothing to give.
	lib.powerErr[1] = errors.New("GPU is lost")
	if rs := mustRead(t, src); rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") {
		t.Errorf("power-only gpu without power: %+v", rs[1])
	}

	lib.energyErr[0] = errNVMLNotSupportedAsLib
	if src, err := newNVMLSource(lib, allGPUs); err != nil || src.Method() != MethodIntegrated {
		t.Errorf("no counter anywhere: %v, method %v", err, src.Method())
	}
}

func TestNVMLSourceDeviceFailingMidRun(t *testing.T) {
	lib := newFakeNVMLLib(3)
	src, err := newNVMLSource(lib, allGPUs)
	if err != nil {
		t.Fatal(err)
	}
	lib.energyErr[1] = errors.New("GetTotalEnergyConsumption: GPU is lost")
	rs := mustRead(t, src)
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") || !strings.Contains(rs[1].Err.Error(), "GPU is lost") {
		t.Errorf("gpu 1 error %v", rs[1].Err)
	}
	if rs[0].Err != nil || rs[0].EnergyJ != 1 || rs[2].Err != nil || rs[2].EnergyJ != 3 {
		t.Errorf("the other GPUs: %+v, %+v", rs[0], rs[2])
	}
	// Power failing on a GPU with a counter loses the power, not the reading.
	delete(lib.energyErr, 1)
	lib.powerErr[2] = errors.New("GetPowerUsage: unknown error")
	rs = mustRead(t, src)
	if rs[1].Err != nil || rs[2].Err != nil || !math.IsNaN(rs[2].PowerW) || rs[2].EnergyJ != 3 {
		t.Errorf("after recovery / without power: %+v, %+v", rs[1], rs[2])
	}
}

// A counter whose first read fails for another reason than NOT_SUPPORTED
// is taken for a counter and read again at every read; should its first
// answer be NOT_SUPPORTED after all, the reading says what to do.
func TestNVMLSourceCounterFailingAtStart(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.energyErr[1] = errors.New("GetTotalEnergyConsumption: Timeout")
	src, err := newNVMLSource(lib, allGPUs)
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodCounter || src.Devices()[1].Integrated {
		t.Errorf("method %s, gpu 1 %+v", src.Method(), src.Devices()[1])
	}
	if rs := mustRead(t, src); rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "Timeout") {
		t.Errorf("gpu 1 while failing: %+v", rs[1])
	}
	delete(lib.energyErr, 1)
	if rs := mustRead(t, src); rs[1].Err != nil || rs[1].EnergyJ != 2 {
		t.Errorf("gpu 1 answering: %+v", rs[1])
	}

	lib.energyErr[0] = errors.New("GetTotalEnergyConsumption: Timeout")
	src, err = newNVMLSource(lib, allGPUs)
	if err != nil {
		t.Fatal(err)
	}
	lib.energyErr[0] = errNVMLNotSupportedAsLib
	if rs := mustRead(t, src); rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "restart") {
		t.Errorf("gpu 0 found without counter: %+v", rs[0])
	}
}

// Power is the instantaneous field where it answered at start, else (and
// whenever it fails) GetPowerUsage.
func TestNVMLSourceInstantPower(t *testing.T) {
	lib := newFakeNVMLLib(2)
	delete(lib.instantErr, 0)
	lib.instantMW[0] = 612_345
	src, err := newNVMLSource(lib, allGPUs)
	if err != nil {
		t.Fatal(err)
	}
	delete(lib.instantErr, 1) // too late: decided at start
	lib.instantMW[1] = 1
	if rs := mustRead(t, src); rs[0].PowerW != 612.345 || rs[1].PowerW != 100 {
		t.Errorf("power %.3f W, %.3f W; want the instant 612.345 W, the mean 100 W", rs[0].PowerW, rs[1].PowerW)
	}
	lib.instantErr[0] = errors.New("GetFieldValues: Unknown Error")
	if rs := mustRead(t, src); rs[0].PowerW != 100 || rs[0].Err != nil {
		t.Errorf("instant field failing: %+v, want GetPowerUsage's 100 W", rs[0])
	}
}

// indices are the devices' indices.
func indices(devs []Device) []int {
	var idx []int
	for _, d := range devs {
		idx = append(idx, d.Index)
	}
	return idx
}

func TestNVMLSourceSelection(t *testing.T) {
	lib := newFakeNVMLLib(4)
	lib.usage[2] = gpuUsage{Busy: true, MIG: true, MIGUUIDs: []string{"MIG-a", "MIG-b"}}
	lib.usageErr[3] = errors.New("GetComputeRunningProcesses: No Permission")
	none := ""
	for _, tc := range []struct {
		name, gpus, cuda string
		want             []int
		how              string
	}{
		{"auto", "", none, []int{2}, "compute processes"},
		{"list", "3,GPU-0001", none, []int{1, 3}, "--gpus"},
		{"mig", "MIG-b", none, []int{2}, "--gpus"},
		{"all", "all", none, []int{0, 1, 2, 3}, "all"},
		{"cuda", "auto", "GPU-0000,3", []int{0, 3}, "CUDA_VISIBLE_DEVICES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logRecorder{}
			src, err := newNVMLSource(lib, SourceOptions{GPUs: tc.gpus, CUDAVisibleDevices: &tc.cuda, Logger: logs.logger()})
			if err != nil {
				t.Fatal(err)
			}
			if got := indices(src.Devices()); !slices.Equal(got, tc.want) || src.Selection().How != tc.how {
				t.Errorf("chose %v by %q, want %v by %q", got, src.Selection().How, tc.want, tc.how)
			}
			if len(src.gpus) != len(tc.want) || len(mustRead(t, src)) != len(tc.want) {
				t.Errorf("reads %d GPUs", len(src.gpus))
			}
			for _, d := range src.Devices() {
				if d.MIG != (d.Index == 2) {
					t.Errorf("gpu %d MIG %v", d.Index, d.MIG)
				}
			}
			if l := logs.all(); len(l) != 1 || !strings.Contains(l[0], "gpu 3") || !strings.Contains(l[0], "No Permission") {
				t.Errorf("logs %q, want one line on gpu 3's processes", l)
			}
		})
	}
	for _, tc := range []struct {
		opts SourceOptions
		want string
	}{
		{SourceOptions{GPUs: "7"}, "nvml: --gpus 7: no such GPU (this source has 0 GPU-0000, 1 GPU-0001, 2 GPU-0002, 3 GPU-0003)"},
		{SourceOptions{GPUs: "0,,1"}, "nvml: --gpus \"0,,1\": empty entry"},
		{SourceOptions{Selector: `pod="vllm-0"`}, `nvml: --gpu-selector "pod=\"vllm-0\"": label selectors choose a scrape source's GPUs`},
	} {
		if _, err := newNVMLSource(lib, tc.opts); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestReadGPUUsage(t *testing.T) {
	lib := newFakeNVMLLib(3)
	lib.identErr[1] = errors.New("GetUUID: GPU is lost")
	lib.usage[2] = gpuUsage{Busy: true, MIG: true, MIGUUIDs: []string{"MIG-x"}}
	u, err := readGPUUsage(lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 2 || u["GPU-0000"].Busy || !u["GPU-0002"].Busy || !slices.Equal(u["GPU-0002"].MIGUUIDs, []string{"MIG-x"}) {
		t.Errorf("usage %+v", u)
	}
}

func TestNVMLSourcePassesADecreasingCounterThrough(t *testing.T) {
	lib := newFakeNVMLLib(1)
	src, err := newNVMLSource(lib, allGPUs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{9_000_000, 50, 60} {
		lib.energyMJ[0] = v
		if rs := mustRead(t, src); rs[0].Err != nil || rs[0].EnergyJ != float64(v)/1000 {
			t.Errorf("counter %d mJ read as %+v", v, rs[0])
		}
	}
}

func TestOpenNVMLSource(t *testing.T) {
	t.Setenv("NODE_NAME", "node-7")
	lib := newFakeNVMLLib(2)
	lib.identErr[0] = errors.New("GetUUID: GPU is lost")
	src, err := openNVMLSource(func() (nvmlLib, error) { return lib, nil }, SourceOptions{GPUs: GPUsAll})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Devices()) != 1 || src.Devices()[0].Index != 1 || src.Devices()[0].Hostname != "node-7" {
		t.Errorf("devices %+v", src.Devices())
	}
	empty := newFakeNVMLLib(0)
	if _, err := openNVMLSource(func() (nvmlLib, error) { return empty, nil }, SourceOptions{}); err == nil || empty.shutdowns != 1 {
		t.Errorf("no GPUs: err %v, shut down %d times", err, empty.shutdowns)
	}
	initErr := errors.New("nvml: libnvidia-ml.so.1 not found")
	if _, err := openNVMLSource(func() (nvmlLib, error) { return nil, initErr }, SourceOptions{}); !errors.Is(err, initErr) {
		t.Errorf("failed Init: %v", err)
	}
}
