//go:build linux && cgo

package energy

import (
	"errors"
	"math"
	"strings"
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

// The adapter's conversions, through the real go-nvml interface.
func TestNVMLLibraryAdapter(t *testing.T) {
	device := func(uuid string, mJ uint64, energyRet nvml.Return, mW uint32) *mock.Device {
		return &mock.Device{
			GetUUIDFunc:                   func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
			GetNameFunc:                   func() (string, nvml.Return) { return "Tesla P100-PCIE-16GB", nvml.SUCCESS },
			GetTotalEnergyConsumptionFunc: func() (uint64, nvml.Return) { return mJ, energyRet },
			GetPowerUsageFunc:             func() (uint32, nvml.Return) { return mW, nvml.SUCCESS },
		}
	}
	devices := []nvml.Device{
		device("GPU-a", 5_000_500, nvml.SUCCESS, 312_250),
		device("GPU-b", 0, nvml.ERROR_NOT_SUPPORTED, 40_000),
	}
	shutdown := 0
	lib := &mock.Interface{
		InitFunc:           func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:       func() nvml.Return { shutdown++; return nvml.SUCCESS },
		DeviceGetCountFunc: func() (int, nvml.Return) { return len(devices), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i >= len(devices) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devices[i], nvml.SUCCESS
		},
	}
	wrapped, err := initNVML(lib)
	if err != nil {
		t.Fatal(err)
	}
	src, err := newNVMLSource(wrapped, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodIntegrated || src.Devices()[1].UUID != "GPU-b" || src.Devices()[1].Model != "Tesla P100-PCIE-16GB" {
		t.Errorf("method %s, devices %+v", src.Method(), src.Devices())
	}
	rs := readOnce(t, src)
	if rs[0].EnergyJ != 5000.5 || rs[0].PowerW != 312.25 || rs[0].Err != nil {
		t.Errorf("gpu 0: %+v, want 5000.5 J, 312.25 W", rs[0])
	}
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 40 || rs[1].Err != nil {
		t.Errorf("gpu 1: %+v, want power only, 40 W", rs[1])
	}
	if _, err := wrapped.Energy(1); !errors.Is(err, errNVMLNotSupported) {
		t.Errorf("NOT_SUPPORTED maps to %v", err)
	}
	if len(lib.DeviceGetHandleByIndexCalls()) != 2 {
		t.Errorf("handles fetched %d times, want once per device", len(lib.DeviceGetHandleByIndexCalls()))
	}
	if err := src.Close(); err != nil || shutdown != 1 {
		t.Errorf("Close: %v, Shutdown called %d times", err, shutdown)
	}
	// After Close nothing reaches the library (it would kill the process).
	if err := src.Close(); err != nil || shutdown != 1 {
		t.Errorf("second Close: %v, Shutdown called %d times", err, shutdown)
	}
	if rs := readOnce(t, src); rs[0].Err == nil {
		t.Errorf("read after Close: %+v, want an error", rs[0])
	}
}
