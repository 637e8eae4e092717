package energy

import (
	"context"
	"time"
)

// Energy source names (--energy, energy-exporter --source).
const (
	SourceAuto   = "auto"
	SourceDCGM   = "dcgm"
	SourceNVML   = "nvml"
	SourceScrape = "scrape" // written scrape:URL on the command line
	SourceSim    = "sim"
	SourceNone   = "none"
)

// Energy methods (the summary's energy_method).
const (
	// MethodCounter: energy is the difference of a cumulative counter.
	MethodCounter = "counter"
	// MethodIntegrated: only power is available; energy is its trapezoid
	// integral over the samples.
	MethodIntegrated = "integrated"
	// MethodMixed: some GPUs have an energy counter, others give power
	// only and are integrated (each GPU by its own method).
	MethodMixed = "mixed"
)

// Device identifies one GPU. Its fields become the labels gpu, uuid,
// gpu_model and hostname of the per-GPU metrics.
type Device struct {
	Index    int    // the source's device index (label gpu)
	UUID     string // e.g. GPU-8f2c...; the simulator's start with SIM-
	Model    string // e.g. NVIDIA H100 80GB HBM3
	Hostname string // the host the GPU is in (the remote host for scrape)
	// MIG: the GPU has MIG mode on. Its energy is the whole physical
	// GPU's, whichever of its instances serve the model.
	MIG bool
	// PowerLimitW is the GPU's enforced power limit, watts; 0 when
	// unknown. The sampler uses it to tell a glitch from energy.
	PowerLimitW float64
	// Integrated: the GPU has no energy counter; its energy is the
	// integral of its sampled power (the other GPUs keep their counters).
	Integrated bool
}

// methodOf is the energy method of a set of devices: counter when every
// one has a counter, integrated when none has, else mixed.
func methodOf(devs []Device) string {
	n := 0
	for _, d := range devs {
		if d.Integrated {
			n++
		}
	}
	switch n {
	case 0:
		return MethodCounter
	case len(devs):
		return MethodIntegrated
	}
	return MethodMixed
}

// Reading is one device's state at one instant, as a source read it.
type Reading struct {
	Time    time.Time // when it was read (carries the monotonic clock)
	EnergyJ float64   // cumulative energy counter, joules; NaN when the source has none
	PowerW  float64   // instantaneous power, watts; NaN when unknown
	Err     error     // the device did not answer; the other fields are meaningless
}

// Source reads per-GPU cumulative energy and power. Implementations:
// dcgm, nvml, scrape (a remote Prometheus endpoint), and the simulator
// (through scrape). A Source is used by one goroutine at a time.
type Source interface {
	// Name is the source's name: dcgm, nvml, scrape or none.
	Name() string
	// Method is MethodCounter when Read fills EnergyJ for every device,
	// MethodIntegrated when it gives power only, MethodMixed when some
	// devices are Integrated (the sampler follows Device.Integrated per
	// GPU: methodOf).
	Method() string
	// Devices lists the GPUs, in the order Read reports them. It is fixed
	// for the source's life.
	Devices() []Device
	// Read appends one Reading per device to dst, in Devices' order. A
	// device that fails has its Err set; Read's own error is for a source
	// that failed as a whole (e.g. the remote endpoint is down).
	Read(ctx context.Context, dst []Reading) ([]Reading, error)
	// Close releases the source (library handles, connections).
	Close() error
}
