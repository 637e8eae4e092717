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

func TestNVMLSourceConvertsUnits(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.energyMJ[0], lib.powerMW[0] = 123456, 250500
	src, err := newNVMLSource(lib, "gpu-host", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != SourceNVML || src.Method() != MethodCounter {
		t.Errorf("Name, Method = %s, %s", src.Name(), src.Method())
	}
	if d := src.Devices()[1]; d != (Device{Index: 1, UUID: "GPU-0001", Model: "NVIDIA A100-SXM4-40GB", Hostname: "gpu-host"}) {
		t.Errorf("device 1 = %+v", d)
	}
	rs := readOnce(t, src)
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

func TestNVMLSourcePowerOnlyWhenTheCounterIsNotSupported(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.energyErr[1] = errNVMLNotSupportedAsLib // an older GPU
	lib.powerMW[1] = 55_000
	logs := &logRecorder{}
	src, err := newNVMLSource(lib, "h", SourceOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodIntegrated {
		t.Errorf("Method = %s, want integrated", src.Method())
	}
	if len(logs.all()) != 1 || !strings.Contains(logs.all()[0], "gpu 1") {
		t.Errorf("logs.all() %q, want one line about gpu 1", logs.all())
	}
	rs := readOnce(t, src)
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 55 || rs[1].Err != nil {
		t.Errorf("power-only gpu: %+v", rs[1])
	}
	if rs[0].EnergyJ != 1 || rs[0].Err != nil {
		t.Errorf("gpu 0: %+v", rs[0])
	}
	// A power-only GPU whose power read fails has nothing to give.
	lib.powerErr[1] = errors.New("GPU is lost")
	if rs := readOnce(t, src); rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") {
		t.Errorf("power-only gpu without power: %+v", rs[1])
	}
}

func TestNVMLSourceDeviceFailingMidRun(t *testing.T) {
	lib := newFakeNVMLLib(3)
	src, err := newNVMLSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lib.energyErr[1] = errors.New("GetTotalEnergyConsumption: GPU is lost")
	rs := readOnce(t, src)
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") || !strings.Contains(rs[1].Err.Error(), "GPU is lost") {
		t.Errorf("gpu 1 error %v", rs[1].Err)
	}
	if rs[0].Err != nil || rs[0].EnergyJ != 1 || rs[2].Err != nil || rs[2].EnergyJ != 3 {
		t.Errorf("the other GPUs: %+v, %+v", rs[0], rs[2])
	}
	// Power failing on a GPU with a counter loses the power, not the reading.
	delete(lib.energyErr, 1)
	lib.powerErr[2] = errors.New("GetPowerUsage: unknown error")
	rs = readOnce(t, src)
	if rs[1].Err != nil || rs[2].Err != nil || !math.IsNaN(rs[2].PowerW) || rs[2].EnergyJ != 3 {
		t.Errorf("after recovery / without power: %+v, %+v", rs[1], rs[2])
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
	src, err := newNVMLSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{9_000_000, 50, 60} {
		lib.energyMJ[0] = v
		if rs := readOnce(t, src); rs[0].Err != nil || rs[0].EnergyJ != float64(v)/1000 {
			t.Errorf("counter %d mJ read as %+v", v, rs[0])
		}
	}
}

func TestOpenNVMLSource(t *testing.T) {
	lib := newFakeNVMLLib(2)
	lib.identErr[0] = errors.New("GetUUID: GPU is lost")
	src, err := openNVMLSource(func() (nvmlLib, error) { return lib, nil }, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Devices()) != 1 || src.Devices()[0].Index != 1 || src.Devices()[0].Hostname != localHostname() {
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
