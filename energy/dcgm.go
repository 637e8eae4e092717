package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// DCGM fields the dcgm source watches (dcgm_fields.h).
const (
	// dcgmFieldEnergyJ is DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL (DCGM 4.6+):
	// the driver's energy counter in joules.
	dcgmFieldEnergyJ uint16 = 1611
	// dcgmFieldEnergyMJ is DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: the same
	// counter in millijoules, deprecated in favour of 1611.
	dcgmFieldEnergyMJ uint16 = 156
	// dcgmFieldPowerW is DCGM_FI_DEV_POWER_USAGE: board power, watts.
	dcgmFieldPowerW uint16 = 155
)

// DCGM's "no value" sentinels (dcgm_structs.h DCGM_INT64_BLANK,
// DCGM_FP64_BLANK); not found, not supported and not permissioned lie
// just above them.
const (
	dcgmBlankInt64Min = 0x7ffffffffffffff0
	dcgmBlankFP64Min  = 140737488355328.0
)

// dcgmValue is one field value as DCGM returned it.
type dcgmValue struct {
	Field  uint16
	Type   byte // 'i' (int64) or 'd' (float64); other types carry no number
	Status int  // DCGM_ST_OK (0) when the value is valid
	Int    int64
	Float  float64
	TS     int64 // when DCGM sampled it, microseconds since the Unix epoch
}

// number is the value as a non-negative float64; ok is false for blank,
// missing, not-supported and nonsensical values.
func (v dcgmValue) number() (x float64, ok bool) {
	if v.Status != 0 {
		return 0, false
	}
	switch v.Type {
	case 'i':
		if v.Int >= dcgmBlankInt64Min || v.Int < 0 {
			return 0, false
		}
		return float64(v.Int), true
	case 'd':
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) || v.Float >= dcgmBlankFP64Min || v.Float < 0 {
			return 0, false
		}
		return v.Float, true
	}
	return 0, false
}

// dcgmLib is the part of DCGM the dcgm source uses. energy_dcgm_lib.go
// implements it with go-dcgm once Init has succeeded; tests fake it.
type dcgmLib interface {
	// SupportedGPUs lists the DCGM GPU ids.
	SupportedGPUs() ([]uint, error)
	// DeviceInfo is a GPU's UUID and model name.
	DeviceInfo(gpu uint) (uuid, model string, err error)
	// FieldKnown reports whether the library defines a field.
	FieldKnown(field uint16) bool
	// Watch has DCGM refresh fields on gpus every interval.
	Watch(gpus []uint, fields []uint16, every time.Duration) error
	// Latest is a GPU's latest values of fields, in fields' order.
	Latest(gpu uint, fields []uint16) ([]dcgmValue, error)
	// Close stops watching and shuts DCGM down.
	Close() error
}

// dcgmSource reads GPU energy through DCGM, embedded or from a running
// nv-hostengine.
type dcgmSource struct {
	lib     dcgmLib
	devices []Device
	gpus    []uint
	fields  []uint16
	// energy is each device's energy field (1611 or 156), 0 for a GPU
	// without an energy counter: it gives power only.
	energy []uint16
	method string
	// maxAge: an embedded DCGM's sample times share this host's clock,
	// so a reading is stamped with when DCGM sampled the counter (up to
	// an interval before Read) if it is at most this old; 0 (a remote
	// nv-hostengine, whose clock may be skewed) stamps readings with the
	// time of Read.
	maxAge time.Duration
}

// openDCGMSource initialises DCGM through open and builds the source.
func openDCGMSource(open func(addr string) (dcgmLib, error), opts SourceOptions) (Source, error) {
	lib, err := open(opts.DCGMAddr)
	if err != nil {
		return nil, err
	}
	host := localHostname()
	if opts.DCGMAddr != "" {
		host = addrHost(opts.DCGMAddr)
	}
	src, err := newDCGMSource(lib, host, opts)
	if err != nil {
		_ = lib.Close()
		return nil, err
	}
	return src, nil
}

// newDCGMSource finds the GPUs, watches their energy and power at the
// sampling interval (DCGM's default, 30 s, would make a 1 s sampler read
// the same value 30 times) and picks each GPU's energy field: 1611 when
// the library and the GPU have it, else 156, else none (power only).
func newDCGMSource(lib dcgmLib, hostname string, opts SourceOptions) (*dcgmSource, error) {
	ids, err := lib.SupportedGPUs()
	if err != nil {
		return nil, fmt.Errorf("dcgm: list GPUs: %s", oneLine(err.Error()))
	}
	s := &dcgmSource{lib: lib}
	if opts.DCGMAddr == "" {
		s.maxAge = 2 * opts.interval()
	}
	for _, id := range ids {
		uuid, model, err := lib.DeviceInfo(id)
		if err != nil {
			opts.logf("dcgm: gpu %d skipped: %s", id, oneLine(err.Error()))
			continue
		}
		s.gpus = append(s.gpus, id)
		s.devices = append(s.devices, Device{Index: int(id), UUID: uuid, Model: model, Hostname: hostname})
	}
	if len(s.devices) == 0 {
		return nil, errors.New("dcgm: no supported GPU found (nvidia-smi lists the GPUs; dcgmi discovery -l lists what DCGM sees)")
	}

	s.fields = []uint16{dcgmFieldEnergyMJ, dcgmFieldPowerW}
	if lib.FieldKnown(dcgmFieldEnergyJ) {
		s.fields = []uint16{dcgmFieldEnergyJ, dcgmFieldEnergyMJ, dcgmFieldPowerW}
	}
	err = lib.Watch(s.gpus, s.fields, opts.interval())
	if err != nil && s.fields[0] == dcgmFieldEnergyJ {
		// An older remote nv-hostengine may not know field 1611 even
		// though this host's library does.
		s.fields = s.fields[1:]
		err = lib.Watch(s.gpus, s.fields, opts.interval())
	}
	if err != nil {
		return nil, fmt.Errorf("dcgm: watch energy and power fields: %s", oneLine(err.Error()))
	}

	s.method = MethodCounter
	s.energy = make([]uint16, len(s.gpus))
	for i, id := range s.gpus {
		s.energy[i] = s.fields[0] // the preferred field, when the GPU cannot be asked now
		vals, err := lib.Latest(id, s.fields)
		if err != nil {
			continue
		}
		s.energy[i] = 0
		for _, f := range []uint16{dcgmFieldEnergyJ, dcgmFieldEnergyMJ} {
			if _, ok := fieldValue(vals, f); ok {
				s.energy[i] = f
				break
			}
		}
		if s.energy[i] == 0 {
			opts.logf("dcgm: gpu %d (%s) has no energy counter; its energy is integrated from power", id, s.devices[i].Model)
			s.method = MethodIntegrated
		}
	}
	return s, nil
}

// fieldValue finds field f in vals and converts it to base units (J, W).
func fieldValue(vals []dcgmValue, f uint16) (float64, bool) {
	for _, v := range vals {
		if v.Field != f {
			continue
		}
		x, ok := v.number()
		if ok && f == dcgmFieldEnergyMJ {
			x /= 1000
		}
		return x, ok
	}
	return 0, false
}

// sampledAt is when DCGM sampled field f, on the clock of now (whose
// monotonic reading it keeps), or now when that is unknown or implausible.
func (s *dcgmSource) sampledAt(now time.Time, vals []dcgmValue, f uint16) time.Time {
	for _, v := range vals {
		if v.Field != f || v.TS <= 0 {
			continue
		}
		if age := now.Sub(time.UnixMicro(v.TS)); age >= 0 && age <= s.maxAge {
			return now.Add(-age)
		}
	}
	return now
}

func (s *dcgmSource) Name() string      { return SourceDCGM }
func (s *dcgmSource) Method() string    { return s.method }
func (s *dcgmSource) Devices() []Device { return s.devices }
func (s *dcgmSource) Close() error      { return s.lib.Close() }

// Read reads each GPU's latest watched values. A counter that went back
// is passed through as read: the sampler tells resets from glitches.
func (s *dcgmSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	for i, id := range s.gpus {
		vals, err := s.lib.Latest(id, s.fields)
		r := Reading{Time: time.Now(), EnergyJ: math.NaN(), PowerW: math.NaN()}
		if err != nil {
			r.Err = fmt.Errorf("dcgm: gpu %d: %s", id, oneLine(err.Error()))
			dst = append(dst, r)
			continue
		}
		if p, ok := fieldValue(vals, dcgmFieldPowerW); ok {
			r.PowerW = p
		}
		if f := s.energy[i]; f != 0 {
			if e, ok := fieldValue(vals, f); ok {
				r.EnergyJ = e
				r.Time = s.sampledAt(r.Time, vals, f)
			}
		}
		if math.IsNaN(r.EnergyJ) && math.IsNaN(r.PowerW) {
			r.Err = fmt.Errorf("dcgm: gpu %d: no valid energy or power value", id)
		}
		dst = append(dst, r)
	}
	return dst, nil
}
