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

// Whether an nvml source's GPU has an energy counter.
const (
	counterUnknown = iota // its first read failed: retried at every read
	counterYes
	counterNo // NOT_SUPPORTED: its energy is integrated from power
)

// nvmlGPU is what the source knows of one chosen GPU.
type nvmlGPU struct {
	index   int  // NVML's index
	instant bool // power from NVML_FI_DEV_POWER_INSTANT
	// counter is counterYes, counterNo or counterUnknown; written only by
	// the GPU's read, one at a time.
	counter int
}

// nvmlSource reads GPU energy through NVML.
type nvmlSource struct {
	lib     nvmlLib
	devices []Device
	gpus    []nvmlGPU
	reader  *boundedReader
	sel     Selection
	// guard: a GPU whose call (while opening, or a read) has not
	// returned gets no other, by NVML index.
	guard *callGuard
}

// nvmlOpenTimeout bounds what opening asks of each GPU (who it is, its
// processes, its counter): a GPU hung at start is skipped or left
// undecided, not the whole source stalled.
var nvmlOpenTimeout = 5 * time.Second

// openNVMLSource initialises NVML through open and builds the source.
func openNVMLSource(open func() (nvmlLib, error), opts SourceOptions) (Source, error) {
	lib, err := open()
	if err != nil {
		return nil, err
	}
	src, err := newNVMLSource(lib, opts)
	if err != nil {
		_ = lib.Shutdown()
		return nil, err
	}
	return src, nil
}

// newNVMLSource finds the GPUs, chooses those opts.GPUs names (by
// default the ones running a compute process) and probes each chosen
// one. A GPU whose energy counter answers NOT_SUPPORTED gives power
// only and is integrated; the others keep their counters.
func newNVMLSource(lib nvmlLib, opts SourceOptions) (*nvmlSource, error) {
	spec, err := ParseGPUs(opts.GPUs)
	if err != nil {
		return nil, fmt.Errorf("nvml: %w", err)
	}
	if opts.Selector != "" {
		return nil, badChoicef("nvml: --gpu-selector %q: label selectors choose a scrape source's GPUs; choose this host's GPUs with --gpus (indices or UUIDs)", opts.Selector)
	}
	guard := &callGuard{}
	cands, err := nvmlCandidates(lib, opts, guard)
	if err != nil {
		return nil, err
	}
	chosen, sel, err := selectGPUs(cands, spec, selectOptions{Local: true, CUDAVisible: opts.cudaVisible(), Source: SourceNVML})
	if err != nil {
		return nil, err
	}
	s := &nvmlSource{lib: lib, sel: sel, guard: guard}
	devs := make([]Device, len(chosen))
	gpus := make([]nvmlGPU, len(chosen))
	done := eachBounded(len(chosen), nvmlOpenTimeout, nil, func(k int) {
		// guard is by NVML index, not by k.
		_ = guard.do(cands[chosen[k]].Index, func() { devs[k], gpus[k] = probeNVMLGPU(lib, cands[chosen[k]].Device, opts) })
	})
	for k, i := range chosen {
		if !done[k] {
			d := cands[i].Device
			devs[k], gpus[k] = d, nvmlGPU{index: d.Index, counter: counterUnknown}
			opts.logf("nvml: gpu %d (%s) did not answer within %v while opening; its counter is tried at every read", d.Index, d.UUID, nvmlOpenTimeout)
		}
	}
	s.devices, s.gpus = devs, gpus
	s.reader = newBoundedReader(len(s.gpus), readTimeout(opts.interval()), s.readGPU)
	return s, nil
}

// probeNVMLGPU reads a chosen GPU's power limit, whether it has an energy
// counter and whether its driver has the instantaneous power field.
func probeNVMLGPU(lib nvmlLib, d Device, opts SourceOptions) (Device, nvmlGPU) {
	g := nvmlGPU{index: d.Index, counter: counterYes}
	if mW, err := lib.PowerLimit(d.Index); err == nil {
		d.PowerLimitW = float64(mW) / 1000
	}
	_, err := lib.Energy(d.Index)
	switch {
	case errors.Is(err, errNVMLNotSupported):
		g.counter, d.Integrated = counterNo, true
		opts.logf("nvml: gpu %d (%s) has no energy counter; its energy is integrated from power", d.Index, d.Model)
	case err != nil:
		g.counter = counterUnknown
		opts.logf("nvml: gpu %d: energy counter: %s; retried at every read", d.Index, oneLine(err.Error()))
	}
	_, err = lib.InstantPower(d.Index)
	g.instant = err == nil
	return d, g
}

// nvmlCandidates lists the GPUs NVML sees, with their compute processes
// and MIG devices; a GPU that cannot say who it is is skipped.
func nvmlCandidates(lib nvmlLib, opts SourceOptions, guard *callGuard) ([]gpuCandidate, error) {
	n, err := lib.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("nvml: count GPUs: %s", oneLine(err.Error()))
	}
	host := opts.hostname()
	type found struct {
		uuid, name string
		usage      gpuUsage
		err        error // Identify's
		usageErr   error
	}
	all := make([]found, n)
	done := eachBounded(n, nvmlOpenTimeout, guard, func(i int) {
		f := &all[i]
		if f.uuid, f.name, f.err = lib.Identify(i); f.err == nil {
			f.usage, f.usageErr = lib.Usage(i)
		}
	})
	var cands []gpuCandidate
	for i := range n {
		f := all[i]
		switch {
		case !done[i]:
			opts.logf("nvml: gpu %d skipped: it did not say who it is within %v (a hung driver call?)", i, nvmlOpenTimeout)
			continue
		case f.err != nil:
			opts.logf("nvml: gpu %d skipped: %s", i, oneLine(f.err.Error()))
			continue
		case f.usageErr != nil:
			opts.logf("nvml: gpu %d: cannot tell all of its compute processes and MIG devices: %s", i, oneLine(f.usageErr.Error()))
		}
		cands = append(cands, gpuCandidate{
			Device: Device{Index: i, UUID: f.uuid, Model: f.name, Hostname: host, MIG: f.usage.MIG},
			Busy:   f.usage.Busy, MIGUUIDs: f.usage.MIGUUIDs,
		})
	}
	if len(cands) == 0 {
		return nil, errors.New("nvml: no GPU found (nvidia-smi lists the GPUs the driver sees)")
	}
	return cands, nil
}

// readGPUUsage is what NVML says of every GPU, by UUID, for another
// source's auto selection.
func readGPUUsage(lib nvmlLib) (map[string]gpuUsage, error) {
	n, err := lib.DeviceCount()
	if err != nil {
		return nil, fmt.Errorf("nvml: count GPUs: %s", oneLine(err.Error()))
	}
	type found struct {
		uuid  string
		usage gpuUsage
		err   error
	}
	all := make([]found, n)
	done := eachBounded(n, nvmlOpenTimeout, nil, func(i int) {
		f := &all[i]
		if f.uuid, _, f.err = lib.Identify(i); f.err == nil {
			f.usage, _ = lib.Usage(i)
		}
	})
	usage := make(map[string]gpuUsage, n)
	for i, f := range all {
		if done[i] && f.err == nil {
			usage[f.uuid] = f.usage
		}
	}
	return usage, nil
}

func (s *nvmlSource) Name() string         { return SourceNVML }
func (s *nvmlSource) Method() string       { return methodOf(s.devices) }
func (s *nvmlSource) Devices() []Device    { return s.devices }
func (s *nvmlSource) Selection() Selection { return s.sel }
func (s *nvmlSource) Close() error         { return s.lib.Shutdown() }

// Read reads each GPU's energy counter and power, each GPU on its own so
// that a hung one fails alone. A counter that went back is passed
// through as read: the sampler tells resets from glitches.
func (s *nvmlSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	return s.reader.Read(ctx, dst), nil
}

// readGPU reads chosen GPU k. Its time is the middle of the energy read
// (of the power read for a GPU without counter).
func (s *nvmlSource) readGPU(k int) (r Reading) {
	if err := s.guard.do(s.gpus[k].index, func() { r = s.readGPUOnce(k) }); err != nil {
		return Reading{Time: time.Now(), EnergyJ: math.NaN(), PowerW: math.NaN(), Err: fmt.Errorf("nvml: gpu %d: %w", s.gpus[k].index, err)}
	}
	return r
}

// readGPUOnce is readGPU's reading, the GPU's call guard held.
func (s *nvmlSource) readGPUOnce(k int) Reading {
	g := &s.gpus[k]
	r := Reading{EnergyJ: math.NaN(), PowerW: math.NaN()}
	start := time.Now()
	if g.counter != counterNo {
		mJ, err := s.lib.Energy(g.index)
		r.Time = start.Add(time.Since(start) / 2)
		switch {
		case err == nil:
			g.counter = counterYes
			r.EnergyJ = float64(mJ) / 1000
		case errors.Is(err, errNVMLNotSupported) && g.counter == counterUnknown:
			// The Device was handed out as counted; the sampler cannot
			// learn otherwise now.
			r.Err = fmt.Errorf("nvml: gpu %d: no energy counter, but its first read failed otherwise and it was taken for one: restart to integrate its power", g.index)
			return r
		default:
			r.Err = fmt.Errorf("nvml: gpu %d: energy: %s", g.index, oneLine(err.Error()))
			return r
		}
	}
	w, err := s.power(g)
	if g.counter == counterNo {
		r.Time = start.Add(time.Since(start) / 2)
		if err != nil {
			r.Err = fmt.Errorf("nvml: gpu %d: power: %s", g.index, oneLine(err.Error()))
		}
	}
	if err == nil {
		r.PowerW = w
	}
	return r
}

// power is the GPU's power draw, watts: the instantaneous field where the
// driver has it, else GetPowerUsage.
func (s *nvmlSource) power(g *nvmlGPU) (float64, error) {
	if g.instant {
		if mW, err := s.lib.InstantPower(g.index); err == nil {
			return float64(mW) / 1000, nil
		}
	}
	mW, err := s.lib.Power(g.index)
	return float64(mW) / 1000, err
}
