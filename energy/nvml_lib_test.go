//go:build linux && cgo

package energy

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// go-nvml's mocks panic on any method a test did not set: a mock with
// only InitFunc proves that nothing else is called after a failed Init.
func TestInitNVMLFailureCallsNothingElse(t *testing.T) {
	for _, tc := range []struct {
		ret  nvml.Return
		want []string
	}{
		{nvml.ERROR_LIBRARY_NOT_FOUND, []string{"nvml: libnvidia-ml.so.1 not found", "install the NVIDIA driver"}},
		{nvml.ERROR_DRIVER_NOT_LOADED, []string{"nvml: cannot initialise NVML", "NVIDIA driver loaded"}},
	} {
		t.Run(tc.ret.Error(), func(t *testing.T) {
			lib := &mock.Interface{InitFunc: func() nvml.Return { return tc.ret }}
			got, err := initNVML(lib)
			if got != nil || err == nil {
				t.Fatalf("initNVML = %v, %v; want an error", got, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

// mockGPU is a go-nvml mock device with every call the adapter makes.
func mockGPU(uuid string, mJ uint64, energyRet nvml.Return, mW uint32) *mock.Device {
	return &mock.Device{
		GetUUIDFunc:                   func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
		GetNameFunc:                   func() (string, nvml.Return) { return "Tesla P100-PCIE-16GB", nvml.SUCCESS },
		GetTotalEnergyConsumptionFunc: func() (uint64, nvml.Return) { return mJ, energyRet },
		GetPowerUsageFunc:             func() (uint32, nvml.Return) { return mW, nvml.SUCCESS },
		GetEnforcedPowerLimitFunc:     func() (uint32, nvml.Return) { return 250_000, nvml.SUCCESS },
		GetFieldValuesFunc: func(v []nvml.FieldValue) nvml.Return {
			v[0].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
			return nvml.SUCCESS
		},
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
		GetMigModeFunc:                 func() (int, int, nvml.Return) { return 0, 0, nvml.ERROR_NOT_SUPPORTED },
	}
}

// mockNVML is a go-nvml mock library of devices.
func mockNVML(devices ...nvml.Device) (*mock.Interface, *int) {
	shutdown := 0
	return &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { shutdown++; return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devices), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i >= len(devices) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devices[i], nvml.SUCCESS
		},
	}, &shutdown
}

// The adapter's conversions, through the real go-nvml interface.
func TestNVMLLibraryAdapter(t *testing.T) {
	lib, shutdown := mockNVML(mockGPU("GPU-a", 5_000_500, nvml.SUCCESS, 312_250), mockGPU("GPU-b", 0, nvml.ERROR_NOT_SUPPORTED, 40_000))
	wrapped, err := initNVML(lib)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newNVMLSource(wrapped, SourceOptions{GPUs: GPUsAll})
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodMixed || src.Devices()[1].UUID != "GPU-b" || src.Devices()[1].Model != "Tesla P100-PCIE-16GB" || src.Devices()[1].PowerLimitW != 250 {
		t.Errorf("method %s, devices %+v", src.Method(), src.Devices())
	}
	rs := mustRead(t, src)
	if rs[0].EnergyJ != 5000.5 || rs[0].PowerW != 312.25 || rs[0].Err != nil {
		t.Errorf("gpu 0: %+v, want 5000.5 J, 312.25 W", rs[0])
	}
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 40 || rs[1].Err != nil {
		t.Errorf("gpu 1: %+v, want power only, 40 W", rs[1])
	}
	if _, err := wrapped.Energy(1); !errors.Is(err, errNVMLNotSupported) {
		t.Errorf("NOT_SUPPORTED maps to %v", err)
	}
	if _, err := wrapped.InstantPower(1); !errors.Is(err, errNVMLNotSupported) {
		t.Errorf("a field NOT_SUPPORTED maps to %v", err)
	}
	if len(lib.DeviceGetHandleByIndexCalls()) != 2 {
		t.Errorf("handles fetched %d times, want once per device", len(lib.DeviceGetHandleByIndexCalls()))
	}
	if err := src.Close(); err != nil || *shutdown != 1 {
		t.Errorf("Close: %v, Shutdown called %d times", err, *shutdown)
	}
	// After Close nothing reaches the library (it would kill the process).
	if err := src.Close(); err != nil || *shutdown != 1 {
		t.Errorf("second Close: %v, Shutdown called %d times", err, *shutdown)
	}
	if rs := mustRead(t, src); rs[0].Err == nil {
		t.Errorf("read after Close: %+v, want an error", rs[0])
	}
}

// The instantaneous power field, whatever number type the driver gives.
func TestNVMLLibraryInstantPower(t *testing.T) {
	for _, tc := range []struct {
		typ   nvml.ValueType
		value [8]byte
	}{
		{nvml.VALUE_TYPE_UNSIGNED_INT, [8]byte{0x40, 0xe2, 0x01, 0x00}}, // 123456
		{nvml.VALUE_TYPE_UNSIGNED_LONG_LONG, [8]byte{0x40, 0xe2, 0x01}},
		{nvml.VALUE_TYPE_DOUBLE, [8]byte{0, 0, 0, 0, 0, 0x24, 0xfe, 0x40}}, // 123456.0
	} {
		dev := mockGPU("GPU-a", 0, nvml.SUCCESS, 0)
		dev.GetFieldValuesFunc = func(v []nvml.FieldValue) nvml.Return {
			if v[0].FieldId != nvml.FI_DEV_POWER_INSTANT {
				return nvml.ERROR_INVALID_ARGUMENT
			}
			v[0].ValueType, v[0].Value, v[0].NvmlReturn = uint32(tc.typ), tc.value, uint32(nvml.SUCCESS)
			return nvml.SUCCESS
		}
		lib, _ := mockNVML(dev)
		wrapped, err := initNVML(lib)
		if err != nil {
			t.Fatal(err)
		}
		if mW, err := wrapped.InstantPower(0); mW != 123456 || err != nil {
			t.Errorf("type %d: %d mW, %v", tc.typ, mW, err)
		}
	}
}

// In MIG mode without privileges the GPU lists no process; its MIG
// devices list their own.
func TestNVMLLibraryUsageOfAMIGGPU(t *testing.T) {
	instance := func(uuid string, procs int) *mock.Device {
		return &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				return make([]nvml.ProcessInfo, procs), nvml.SUCCESS
			},
		}
	}
	migs := map[int]nvml.Device{0: instance("MIG-0", 0), 3: instance("MIG-3", 1)}
	dev := mockGPU("GPU-a", 0, nvml.SUCCESS, 0)
	dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NO_PERMISSION }
	dev.GetMigModeFunc = func() (int, int, nvml.Return) { return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS }
	dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	dev.GetMigDeviceHandleByIndexFunc = func(k int) (nvml.Device, nvml.Return) {
		if m, ok := migs[k]; ok {
			return m, nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	lib, _ := mockNVML(dev, mockGPU("GPU-b", 0, nvml.SUCCESS, 0))
	wrapped, err := initNVML(lib)
	if err != nil {
		t.Fatal(err)
	}
	u, err := wrapped.Usage(0)
	if err != nil || !u.Busy || !u.MIG || !slices.Equal(u.MIGUUIDs, []string{"MIG-0", "MIG-3"}) {
		t.Errorf("MIG GPU: %+v, %v", u, err)
	}
	if u, err := wrapped.Usage(1); err != nil || u.Busy || u.MIG || u.MIGUUIDs != nil {
		t.Errorf("GPU without MIG: %+v, %v", u, err)
	}
}

// Shutdown does not wait for a call hung in the driver, and NVML shuts
// down only once that call is back: no call reaches a closed library.
func TestNVMLLibraryShutdownWithACallInFlight(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{})
	dev := mockGPU("GPU-a", 7000, nvml.SUCCESS, 0)
	dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
		close(entered)
		<-release
		return 7000, nvml.SUCCESS
	}
	lib, shutdown := mockNVML(dev)
	var mu sync.Mutex
	lib.ShutdownFunc = func() nvml.Return {
		mu.Lock()
		defer mu.Unlock()
		*shutdown++
		return nvml.SUCCESS
	}
	wrapped, err := initNVML(lib)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := wrapped.Energy(0)
		done <- err
	}()
	<-entered
	if err := wrapped.Shutdown(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if *shutdown != 0 {
		t.Errorf("NVML shut down under a call in flight")
	}
	mu.Unlock()
	if _, err := wrapped.Power(0); !errors.Is(err, errNVMLClosed) {
		t.Errorf("call after Shutdown: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the call in flight: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if *shutdown != 1 {
		t.Errorf("NVML shut down %d times once the call was back, want 1", *shutdown)
	}
}
