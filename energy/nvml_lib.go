//go:build linux && cgo

package energy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlLibrary is nvmlLib on go-nvml. It exists only after Init
// succeeded, which is what keeps every other NVML call safe. Its calls
// may run at once (one per device), and Shutdown never waits for them:
// a call hung in the driver would hold it for as long as it hangs.
type nvmlLibrary struct {
	lib nvml.Interface

	mu      sync.Mutex
	handles map[int]nvml.Device
	calls   int  // library calls in flight
	closed  bool // Shutdown was called: no call may start
}

var errNVMLClosed = errors.New("nvml: source closed")

// The dcgm source's auto selection asks NVML which GPUs run a compute
// process.
func init() {
	localGPUUsage = nvmlGPUUsage
}

// nvmlGPUUsage opens NVML for a moment to read every GPU's usage.
func nvmlGPUUsage() (map[string]gpuUsage, error) {
	lib, err := openNVMLLib()
	if err != nil {
		return nil, err
	}
	defer lib.Shutdown()
	return readGPUUsage(lib)
}

// openNVMLLib loads libnvidia-ml.so.1 and initialises NVML.
func openNVMLLib() (nvmlLib, error) {
	// go-nvml turns every dlopen failure into LIBRARY_NOT_FOUND; dlerror
	// says why (the library, or one it needs, is missing or of the
	// wrong kind).
	if err := loadLibrary(nvmlLibName); err != nil {
		return nil, nvmlLoadError(err)
	}
	return initNVML(nvml.New())
}

// initNVML initialises lib and wraps it; on failure nothing else of lib
// is called.
func initNVML(lib nvml.Interface) (nvmlLib, error) {
	switch ret := lib.Init(); ret {
	case nvml.SUCCESS:
		return &nvmlLibrary{lib: lib, handles: map[int]nvml.Device{}}, nil
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return nil, nvmlLoadError(fmt.Errorf("%s not found", nvmlLibName))
	default:
		return nil, fmt.Errorf("nvml: cannot initialise NVML: %s (is the NVIDIA driver loaded? nvidia-smi should list the GPUs)", oneLine(ret.Error()))
	}
}

// nvmlLoadError says what to install when libnvidia-ml.so.1 does not load.
func nvmlLoadError(err error) error {
	const fix = "install the NVIDIA driver, which provides it (in a container, run with the NVIDIA Container Toolkit, e.g. docker run --gpus all)"
	if libraryMissing(nvmlLibName, err) {
		return fmt.Errorf("nvml: %s not found: %s", nvmlLibName, fix)
	}
	return fmt.Errorf("nvml: %s cannot be loaded: %s: %s", nvmlLibName, oneLine(err.Error()), fix)
}

// nvmlErr turns a failed Return into an error; NOT_SUPPORTED becomes
// errNVMLNotSupported.
func nvmlErr(op string, ret nvml.Return) error {
	switch ret {
	case nvml.SUCCESS:
		return nil
	case nvml.ERROR_NOT_SUPPORTED:
		return fmt.Errorf("%s: %w", op, errNVMLNotSupported)
	}
	return fmt.Errorf("%s: %s", op, ret.Error())
}

// call runs f unless the library is closed. NVML shuts down when the
// last call in flight returns after Shutdown (at once when there is
// none), so that no call ever reaches a library that was shut down.
func (l *nvmlLibrary) call(f func() error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errNVMLClosed
	}
	l.calls++
	l.mu.Unlock()
	err := f()
	l.mu.Lock()
	l.calls--
	last := l.closed && l.calls == 0
	l.mu.Unlock()
	if last {
		_ = l.lib.Shutdown() // Shutdown already returned; nobody waits for this
	}
	return err
}

func (l *nvmlLibrary) Shutdown() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	idle := l.calls == 0
	l.mu.Unlock()
	if !idle {
		return nil // the last call in flight shuts NVML down
	}
	return nvmlErr("Shutdown", l.lib.Shutdown())
}

func (l *nvmlLibrary) DeviceCount() (n int, err error) {
	err = l.call(func() error {
		var ret nvml.Return
		n, ret = l.lib.DeviceGetCount()
		return nvmlErr("DeviceGetCount", ret)
	})
	return n, err
}

// device is GPU i's handle; call it within call.
func (l *nvmlLibrary) device(i int) (nvml.Device, error) {
	l.mu.Lock()
	d, ok := l.handles[i]
	l.mu.Unlock()
	if ok {
		return d, nil
	}
	d, ret := l.lib.DeviceGetHandleByIndex(i)
	if err := nvmlErr("DeviceGetHandleByIndex", ret); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.handles[i] = d
	l.mu.Unlock()
	return d, nil
}

// onDevice runs f with GPU i's handle, within call.
func (l *nvmlLibrary) onDevice(i int, f func(d nvml.Device) error) error {
	return l.call(func() error {
		d, err := l.device(i)
		if err != nil {
			return err
		}
		return f(d)
	})
}

func (l *nvmlLibrary) Identify(i int) (uuid, name string, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		var ret nvml.Return
		if uuid, ret = d.GetUUID(); ret != nvml.SUCCESS {
			return nvmlErr("GetUUID", ret)
		}
		name, ret = d.GetName()
		return nvmlErr("GetName", ret)
	})
	if err != nil {
		return "", "", err
	}
	return uuid, name, nil
}

func (l *nvmlLibrary) Energy(i int) (mJ uint64, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		var ret nvml.Return
		mJ, ret = d.GetTotalEnergyConsumption()
		return nvmlErr("GetTotalEnergyConsumption", ret)
	})
	return mJ, err
}

func (l *nvmlLibrary) Power(i int) (mW uint32, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		var ret nvml.Return
		mW, ret = d.GetPowerUsage()
		return nvmlErr("GetPowerUsage", ret)
	})
	return mW, err
}

func (l *nvmlLibrary) InstantPower(i int) (mW uint32, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		v := []nvml.FieldValue{{FieldId: nvml.FI_DEV_POWER_INSTANT}}
		if err := nvmlErr("GetFieldValues", d.GetFieldValues(v)); err != nil {
			return err
		}
		if err := nvmlErr("GetFieldValues(POWER_INSTANT)", nvml.Return(v[0].NvmlReturn)); err != nil {
			return err
		}
		x, ok := fieldNumber(v[0])
		if !ok || x < 0 || x > math.MaxUint32 {
			return fmt.Errorf("GetFieldValues(POWER_INSTANT): value of type %d unusable", v[0].ValueType)
		}
		mW = uint32(x)
		return nil
	})
	return mW, err
}

// fieldNumber is a field value as a number, whatever its type.
func fieldNumber(v nvml.FieldValue) (float64, bool) {
	b := v.Value[:]
	switch nvml.ValueType(v.ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		return math.Float64frombits(binary.NativeEndian.Uint64(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(binary.NativeEndian.Uint32(b)), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return float64(binary.NativeEndian.Uint64(b)), true
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(binary.NativeEndian.Uint64(b))), true
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(binary.NativeEndian.Uint32(b))), true
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(binary.NativeEndian.Uint16(b)), true
	}
	return 0, false
}

func (l *nvmlLibrary) PowerLimit(i int) (mW uint32, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		var ret nvml.Return
		mW, ret = d.GetEnforcedPowerLimit()
		return nvmlErr("GetEnforcedPowerLimit", ret)
	})
	return mW, err
}

// Usage asks the GPU for its compute processes and then each MIG device
// for its own: without privileges NVML lists only the instances'
// processes, on their own handles. A GPU whose instances all answered
// needs no answer of its own.
func (l *nvmlLibrary) Usage(i int) (u gpuUsage, err error) {
	err = l.onDevice(i, func(d nvml.Device) error {
		procs, ret := d.GetComputeRunningProcesses()
		u.Busy = len(procs) > 0
		procErr := nvmlErr("GetComputeRunningProcesses", ret)
		mode, _, ret := d.GetMigMode()
		switch {
		case ret == nvml.ERROR_NOT_SUPPORTED: // a GPU without MIG
			return procErr
		case ret != nvml.SUCCESS:
			return errors.Join(procErr, nvmlErr("GetMigMode", ret))
		case mode != nvml.DEVICE_MIG_ENABLE:
			return procErr
		}
		u.MIG = true
		n, ret := d.GetMaxMigDeviceCount()
		errs := []error{nvmlErr("GetMaxMigDeviceCount", ret)}
		for k := range n {
			mig, ret := d.GetMigDeviceHandleByIndex(k)
			if ret == nvml.ERROR_NOT_FOUND {
				continue // an empty slot
			}
			if ret != nvml.SUCCESS {
				errs = append(errs, nvmlErr("GetMigDeviceHandleByIndex", ret))
				continue
			}
			uuid, ret := mig.GetUUID()
			procs, ret2 := mig.GetComputeRunningProcesses()
			if ret == nvml.SUCCESS {
				u.MIGUUIDs = append(u.MIGUUIDs, uuid)
			}
			u.Busy = u.Busy || len(procs) > 0
			errs = append(errs, nvmlErr("GetUUID (MIG device)", ret), nvmlErr("GetComputeRunningProcesses (MIG device)", ret2))
		}
		if err := errors.Join(errs...); err != nil || len(u.MIGUUIDs) == 0 {
			return errors.Join(procErr, err)
		}
		return nil
	})
	return u, err
}
