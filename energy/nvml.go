package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// errNVMLNotSupported is NVML's NOT_SUPPORTED: the GPU lacks the feature
// (older GPUs have no energy counter).
var errNVMLNotSupported = errors.New("not supported")

// nvmlLib is the part of NVML the nvml source uses, by device index.
// nvml_lib.go implements it with go-nvml once Init has succeeded; tests
// fake it. Calls for different devices may run at once.
type nvmlLib interface {
	DeviceCount() (int, error)
	// Identify is a device's UUID and name.
	Identify(i int) (uuid, name string, err error)
	// Energy is the device's energy counter, millijoules.
	Energy(i int) (mJ uint64, err error)
	// Power is GetPowerUsage, milliwatts: on Ampere and later a mean
	// over the last second.
	Power(i int) (mW uint32, err error)
	// InstantPower is the field NVML_FI_DEV_POWER_INSTANT, milliwatts;
	// errNVMLNotSupported where the driver lacks it.
	InstantPower(i int) (mW uint32, err error)
	// PowerLimit is the enforced power limit, milliwatts.
	PowerLimit(i int) (mW uint32, err error)
	// Usage is whether a compute process runs on the device (or on one
	// of its MIG devices), its MIG mode and MIG devices' UUIDs. With an
	// error it holds what could be read.
	Usage(i int) (gpuUsage, error)
	// Shutdown releases NVML. It does not wait for calls in flight.
	Shutdown() error
}

// nvmlSource reads GPU energy through NVML.
type nvmlSource struct {
	lib     nvmlLib
	devices []Device
	index   []int  // each device's NVML index
	counter []bool // the device has an energy counter; else power only
	method  string
}

// openNVMLSource initialises NVML through open and builds the source.
func openNVMLSource(open func() (nvmlLib, error), opts SourceOptions) (Source, error) {
	lib, err := open()
	if err != nil {
		return nil, err
	}
	src, err := newNVMLSource(lib, localHostname(), opts)
	if err != nil {
		_ = lib.Shutdown()
		return nil, err
	}
	return src, nil
}

// newNVMLSource finds the GPUs and whether each has an energy counter:
// one that answers NOT_SUPPORTED gives power only, and the source's
// method is then integrated.
func newNVMLSource(lib nvmlLib, hostname string, opts SourceOptions) (*nvmlSource, error) {
	n, err := lib.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("nvml: count GPUs: %s", oneLine(err.Error()))
	}
	s := &nvmlSource{lib: lib, method: MethodCounter}
	for i := range n {
		uuid, name, err := lib.Identify(i)
		if err != nil {
			opts.logf("nvml: gpu %d skipped: %s", i, oneLine(err.Error()))
			continue
		}
		_, err = lib.Energy(i)
		counter := !errors.Is(err, errNVMLNotSupported)
		if !counter {
			opts.logf("nvml: gpu %d (%s) has no energy counter; its energy is integrated from power", i, name)
			s.method = MethodIntegrated
		}
		s.index = append(s.index, i)
		s.counter = append(s.counter, counter)
		s.devices = append(s.devices, Device{Index: i, UUID: uuid, Model: name, Hostname: hostname})
	}
	if len(s.devices) == 0 {
		return nil, errors.New("nvml: no GPU found (nvidia-smi lists the GPUs the driver sees)")
	}
	return s, nil
}

// readGPUUsage is what NVML says of every GPU, by UUID, for another
// source's auto selection.
func readGPUUsage(lib nvmlLib) (map[string]gpuUsage, error) {
	n, err := lib.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("nvml: count GPUs: %s", oneLine(err.Error()))
	}
	usage := make(map[string]gpuUsage, n)
	for i := range n {
		uuid, _, err := lib.Identify(i)
		if err != nil {
			continue
		}
		usage[uuid], _ = lib.Usage(i)
	}
	return usage, nil
}

func (s *nvmlSource) Name() string      { return SourceNVML }
func (s *nvmlSource) Method() string    { return s.method }
func (s *nvmlSource) Devices() []Device { return s.devices }
func (s *nvmlSource) Close() error      { return s.lib.Shutdown() }

// Read reads each GPU's energy counter and power. A counter that went
// back is passed through as read: the sampler tells resets from glitches.
func (s *nvmlSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	for k, i := range s.index {
		r := Reading{EnergyJ: math.NaN(), PowerW: math.NaN()}
		var energyErr error
		if s.counter[k] {
			mJ, err := s.lib.Energy(i)
			if err == nil {
				r.EnergyJ = float64(mJ) / 1000
			}
			energyErr = err
		}
		mW, powerErr := s.lib.Power(i)
		if powerErr == nil {
			r.PowerW = float64(mW) / 1000
		}
		r.Time = time.Now()
		switch {
		case energyErr != nil && !errors.Is(energyErr, errNVMLNotSupported):
			// The counter was there and now fails: the GPU is not answering.
			r.Err = fmt.Errorf("nvml: gpu %d: energy: %s", i, oneLine(energyErr.Error()))
		case math.IsNaN(r.EnergyJ) && powerErr != nil:
			r.Err = fmt.Errorf("nvml: gpu %d: power: %s", i, oneLine(powerErr.Error()))
		}
		dst = append(dst, r)
	}
	return dst, nil
}
