//go:build linux && cgo

package energy

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlLibrary is nvmlLib on go-nvml. It exists only after Init
// succeeded, which is what keeps every other NVML call safe.
type nvmlLibrary struct {
	lib     nvml.Interface
	handles map[int]nvml.Device
	closed  bool
}

var errNVMLClosed = errors.New("nvml: source closed")

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

func (l *nvmlLibrary) DeviceCount() (int, error) {
	if l.closed {
		return 0, errNVMLClosed
	}
	n, ret := l.lib.DeviceGetCount()
	return n, nvmlErr("DeviceGetCount", ret)
}

func (l *nvmlLibrary) device(i int) (nvml.Device, error) {
	if l.closed {
		return nil, errNVMLClosed
	}
	if d, ok := l.handles[i]; ok {
		return d, nil
	}
	d, ret := l.lib.DeviceGetHandleByIndex(i)
	if err := nvmlErr("DeviceGetHandleByIndex", ret); err != nil {
		return nil, err
	}
	l.handles[i] = d
	return d, nil
}

func (l *nvmlLibrary) Identify(i int) (uuid, name string, err error) {
	d, err := l.device(i)
	if err != nil {
		return "", "", err
	}
	uuid, ret := d.GetUUID()
	if err := nvmlErr("GetUUID", ret); err != nil {
		return "", "", err
	}
	name, ret = d.GetName()
	if err := nvmlErr("GetName", ret); err != nil {
		return "", "", err
	}
	return uuid, name, nil
}

func (l *nvmlLibrary) Energy(i int) (uint64, error) {
	d, err := l.device(i)
	if err != nil {
		return 0, err
	}
	mJ, ret := d.GetTotalEnergyConsumption()
	return mJ, nvmlErr("GetTotalEnergyConsumption", ret)
}

func (l *nvmlLibrary) Power(i int) (uint32, error) {
	d, err := l.device(i)
	if err != nil {
		return 0, err
	}
	mW, ret := d.GetPowerUsage()
	return mW, nvmlErr("GetPowerUsage", ret)
}

func (l *nvmlLibrary) Shutdown() error {
	if l.closed {
		return nil
	}
	l.closed = true
	return nvmlErr("Shutdown", l.lib.Shutdown())
}
