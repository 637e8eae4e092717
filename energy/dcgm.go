package energy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DCGM fields the dcgm source reads (dcgm_fields.h).
const (
	// dcgmFieldName is DCGM_FI_DEV_NAME, the GPU's model (string).
	dcgmFieldName uint16 = 50
	// dcgmFieldUUID is DCGM_FI_DEV_UUID (string).
	dcgmFieldUUID uint16 = 54
	// dcgmFieldMIGMode is DCGM_FI_DEV_MIG_MODE: 1 when MIG mode is on.
	dcgmFieldMIGMode uint16 = 67
	// dcgmFieldPowerW is DCGM_FI_DEV_POWER_USAGE: board power, watts; a
	// one-second average on Ampere and later (NVML's power usage).
	dcgmFieldPowerW uint16 = 155
	// dcgmFieldEnergyMJ is DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: the
	// driver's energy counter in millijoules.
	dcgmFieldEnergyMJ uint16 = 156
	// dcgmFieldPowerInstantW is DCGM_FI_DEV_POWER_USAGE_INSTANT: board
	// power at the sample, watts.
	dcgmFieldPowerInstantW uint16 = 157
	// dcgmFieldPowerMgmtLimitW is DCGM_FI_DEV_POWER_MGMT_LIMIT, watts.
	dcgmFieldPowerMgmtLimitW uint16 = 160
	// dcgmFieldEnforcedLimitW is DCGM_FI_DEV_ENFORCED_POWER_LIMIT, watts.
	dcgmFieldEnforcedLimitW uint16 = 164
	// dcgmFieldEnergyJ is DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL (DCGM
	// 4.6+): the same counter in joules.
	dcgmFieldEnergyJ uint16 = 1611
)

// DCGM's "no value" sentinels (dcgm_structs.h DCGM_INT64_BLANK,
// DCGM_FP64_BLANK); not found, not supported and not permissioned lie
// just above them.
const (
	dcgmBlankInt64Min = 0x7ffffffffffffff0
	dcgmBlankFP64Min  = 140737488355328.0
	// notSupported is BLANK+2: the GPU does not have the field.
	dcgmNotSupportedInt64 = dcgmBlankInt64Min + 2
	dcgmNotSupportedFP64  = dcgmBlankFP64Min + 2
)

// DCGM statuses (dcgmReturn_t) the source tells apart.
const (
	dcgmStNotSupported = -6
	dcgmStUnknownField = -13
)

// dcgmMinVersion is the oldest DCGM the dcgm source works with: 4.0, the
// first whose library is libdcgm.so.4. It calls only functions that
// every 4.x exports.
var dcgmMinVersion = [3]int{4, 0, 0}

// Reconnection to a remote nv-hostengine waits this long after losing
// it, doubling each failed attempt up to the maximum.
const (
	dcgmReconnectMin = time.Second
	dcgmReconnectMax = 30 * time.Second
)

// dcgmConnectionError is a call that failed because the connection to
// the nv-hostengine is gone (DCGM_ST_CONNECTION_NOT_VALID); its text is
// DCGM's.
type dcgmConnectionError struct{ msg string }

func (e dcgmConnectionError) Error() string { return e.msg }

// errDCGMClosed: the source is closed; DCGM is never called again.
var errDCGMClosed = errors.New("dcgm: source closed")

// dcgmValue is one field value as DCGM returned it.
type dcgmValue struct {
	Field  uint16
	Type   byte // 'i' (int64), 'd' (float64) or 's' (string); others carry nothing used here
	Status int  // DCGM_ST_OK (0) when the value is valid
	Int    int64
	Float  float64
	Str    string
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

// text is a string value; ok is false for DCGM's "<<<...>>>" sentinels.
func (v dcgmValue) text() (string, bool) {
	s := strings.TrimSpace(v.Str)
	if v.Status != 0 || v.Type != 's' || s == "" || strings.HasPrefix(s, "<<<") && strings.HasSuffix(s, ">>>") {
		return "", false
	}
	return s, true
}

// unavailable: DCGM says the GPU (or the library) does not have the
// field, as opposed to not having sampled it yet (blank).
func (v dcgmValue) unavailable() bool {
	switch {
	case v.Status == dcgmStNotSupported || v.Status == dcgmStUnknownField:
		return true
	case v.Status != 0:
		return false
	case v.Type == 'i':
		return v.Int == dcgmNotSupportedInt64
	case v.Type == 'd':
		return v.Float == dcgmNotSupportedFP64
	}
	return v.Type == 's' && v.Str == "<<<NOT_SUPPORTED>>>"
}

// find is field f among vals.
func find(vals []dcgmValue, f uint16) (dcgmValue, bool) {
	for _, v := range vals {
		if v.Field == f {
			return v, true
		}
	}
	return dcgmValue{}, false
}

// fieldValue finds field f in vals and converts it to base units (J, W).
func fieldValue(vals []dcgmValue, f uint16) (float64, bool) {
	v, found := find(vals, f)
	if !found {
		return 0, false
	}
	x, ok := v.number()
	if ok && f == dcgmFieldEnergyMJ {
		x /= 1000
	}
	return x, ok
}

// firstValue is the first of fields that has a value in vals.
func firstValue(vals []dcgmValue, fields ...uint16) (float64, bool) {
	for _, f := range fields {
		if x, ok := fieldValue(vals, f); ok {
			return x, true
		}
	}
	return 0, false
}

// dcgmLib is the part of DCGM the dcgm source uses. dcgm_lib.go
// implements it with go-dcgm once Init has succeeded; tests fake it.
// Reconnect and Close must not run while another call is in flight (the
// source sees to that); the other calls may run concurrently.
type dcgmLib interface {
	// Version is the library's build information, DCGM's
	// rawBuildInfoString: "version:4.0.0;arch:x86_64;...".
	Version() (string, error)
	// SupportedGPUs lists the DCGM GPU ids.
	SupportedGPUs() ([]uint, error)
	// FieldKnown reports whether the library defines a field.
	FieldKnown(field uint16) bool
	// Watch has DCGM refresh fields on gpus every interval, in place of
	// the previous watch.
	Watch(gpus []uint, fields []uint16, every time.Duration) error
	// Latest is a GPU's latest values of fields, in fields' order. A
	// dcgmConnectionError means the nv-hostengine is gone.
	Latest(gpu uint, fields []uint16) ([]dcgmValue, error)
	// Reconnect shuts DCGM down and connects to the nv-hostengine again;
	// the watches are gone with the old connection.
	Reconnect() error
	// Close stops watching and shuts DCGM down.
	Close() error
}

// dcgmGPU is what the source knows of one chosen GPU's energy counter.
type dcgmGPU struct {
	id uint // DCGM's GPU id
	// energy is the field its counter is read from, chosen at its first
	// valid read; 0 until then.
	energy uint16
	// integrated: DCGM said at open that it has no energy counter.
	integrated bool
	// lateNoCounter: DCGM said so only after open, when its Device was
	// fixed as a counter GPU; logged once.
	lateNoCounter bool
}

// dcgmSource reads GPU energy through DCGM, embedded or from a running
// nv-hostengine.
type dcgmSource struct {
	lib      dcgmLib
	log      *slog.Logger
	addr     string // the nv-hostengine's HOST:PORT; empty for embedded DCGM
	interval time.Duration
	timeout  time.Duration // of one GPU read
	devices  []Device
	gpus     []dcgmGPU // the chosen GPUs, in devices' order
	sel      Selection
	reader   *boundedReader
	// maxAge: an embedded DCGM's sample times share this host's clock,
	// so a reading is stamped with when DCGM sampled the counter (up to
	// an interval before Read) if it is at most this old; 0 (a remote
	// nv-hostengine, whose clock may be skewed) stamps readings with the
	// time of Read.
	maxAge time.Duration

	// mu is held shared by every DCGM call but Reconnect and Close, which
	// hold it alone: go-dcgm keeps one process-wide connection, which
	// they replace or end under the other calls' feet.
	mu     sync.RWMutex
	fields []uint16 // read each tick; guarded by mu (a reconnection may drop 1611)

	guard callGuard // by GPU id: no call while an earlier one is out

	closed    atomic.Bool
	connected atomic.Bool
	done      chan struct{} // closed by Close: stops reconnecting
	lostMu    sync.Mutex
	lost      error // why the connection was lost, while it is
	backoff   [2]time.Duration
	wg        sync.WaitGroup
}

// openDCGMSource initialises DCGM through open and builds the source.
func openDCGMSource(open func(addr string) (dcgmLib, error), opts SourceOptions) (Source, error) {
	if opts.Selector != "" {
		return nil, badChoicef("dcgm: --gpu-selector %q: label selectors choose a scrape source's GPUs; choose DCGM's GPUs with --gpus (indices or UUIDs)", opts.Selector)
	}
	spec, err := ParseGPUs(opts.GPUs)
	if err != nil {
		return nil, err
	}
	lib, err := open(opts.DCGMAddr)
	if err != nil {
		return nil, err
	}
	src, err := newDCGMSource(lib, spec, opts)
	if err != nil {
		return nil, err // not a nil *dcgmSource in a non-nil Source
	}
	return src, nil
}

// newDCGMSource checks the library's version, finds the GPUs and their
// identities, chooses those spec names, and watches their energy and
// power at the sampling interval (DCGM's default, 30 s, would make a 1 s
// sampler read the same value 30 times). On error it closes lib.
func newDCGMSource(lib dcgmLib, spec GPUSpec, opts SourceOptions) (src *dcgmSource, err error) {
	s := &dcgmSource{
		lib: lib, log: opts.Logger, addr: opts.DCGMAddr,
		interval: opts.interval(), timeout: readTimeout(opts.interval()),
		done: make(chan struct{}), backoff: [2]time.Duration{dcgmReconnectMin, dcgmReconnectMax},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.addr == "" {
		s.maxAge = 2 * s.interval
	}
	s.connected.Store(true)
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := s.checkVersion(); err != nil {
		return nil, err
	}
	if err := s.choose(spec, opts); err != nil {
		return nil, err
	}
	// The UUID too: after an nv-hostengine restart DCGM may number the
	// GPUs afresh, and a GPU id must not go on reading another GPU.
	for _, f := range []uint16{dcgmFieldEnergyMJ, dcgmFieldEnergyJ, dcgmFieldPowerInstantW, dcgmFieldPowerW, dcgmFieldUUID} {
		if lib.FieldKnown(f) {
			s.fields = append(s.fields, f)
		}
	}
	if err := s.watch(); err != nil {
		return nil, fmt.Errorf("dcgm: watch energy and power fields: %s", oneLine(err.Error()))
	}
	s.findCounters()
	s.reader = newBoundedReader(len(s.gpus), s.timeout, s.readGPU)
	return s, nil
}

// checkVersion refuses a library older than dcgmMinVersion and logs the
// version found.
func (s *dcgmSource) checkVersion() error {
	raw, err := s.lib.Version()
	if err != nil {
		return fmt.Errorf("dcgm: read the version of %s: %s", dcgmLibName, oneLine(err.Error()))
	}
	version, err := checkDCGMVersion(raw)
	if err != nil {
		return err
	}
	s.log.Info(fmt.Sprintf("dcgm: %s is DCGM %s", dcgmLibName, version))
	return nil
}

// choose finds the GPUs DCGM supports and keeps those spec names.
func (s *dcgmSource) choose(spec GPUSpec, opts SourceOptions) error {
	ids, err := s.lib.SupportedGPUs()
	if err != nil {
		return fmt.Errorf("dcgm: list GPUs: %s", oneLine(err.Error()))
	}
	cands, candIDs, err := s.identify(ids, opts)
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		return errors.New("dcgm: no supported GPU found (nvidia-smi lists the GPUs; dcgmi discovery -l lists what DCGM sees)")
	}
	chosen, sel, err := selectGPUs(cands, spec, selectOptions{Local: s.local(), CUDAVisible: opts.cudaVisible(), Source: SourceDCGM})
	if err != nil {
		return err
	}
	s.sel = sel
	for _, i := range chosen {
		s.devices = append(s.devices, cands[i].Device)
		s.gpus = append(s.gpus, dcgmGPU{id: candIDs[i]})
	}
	return nil
}

// checkDCGMVersion reads the version from DCGM's build information and
// refuses one older than dcgmMinVersion, or none.
func checkDCGMVersion(raw string) (string, error) {
	minimum := fmt.Sprintf("%d.%d.%d", dcgmMinVersion[0], dcgmMinVersion[1], dcgmMinVersion[2])
	const fix = "install DCGM 4 (datacenter-gpu-manager-4-core), or use the nvml source"
	var version string
	for _, kv := range strings.Split(raw, ";") {
		if k, v, ok := strings.Cut(kv, ":"); ok && strings.TrimSpace(k) == "version" {
			version = strings.TrimSpace(v)
		}
	}
	var n [3]int
	parts := strings.SplitN(version, ".", 3)
	for i, p := range parts {
		end := strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' })
		if end >= 0 {
			p = p[:end]
		}
		x, err := strconv.Atoi(p)
		if err != nil {
			parts = nil
			break
		}
		n[i] = x
	}
	switch {
	case len(parts) < 2:
		return "", fmt.Errorf("dcgm: %s does not say which DCGM it is (build info %q); tokenwatt needs DCGM %s or newer: %s", dcgmLibName, oneLine(raw), minimum, fix)
	case slices.Compare(n[:], dcgmMinVersion[:]) < 0:
		return "", fmt.Errorf("dcgm: %s is DCGM %s; tokenwatt needs DCGM %s or newer: %s", dcgmLibName, version, minimum, fix)
	}
	return version, nil
}

// identify reads every GPU's UUID, name, MIG mode and power limit
// through a watch of those fields (DCGM answers only watched fields),
// each read bounded in time. A GPU that does not answer is skipped. For
// local DCGM, NVML says which GPUs run compute processes.
func (s *dcgmSource) identify(ids []uint, opts SourceOptions) ([]gpuCandidate, []uint, error) {
	var fields []uint16
	for _, f := range []uint16{dcgmFieldUUID, dcgmFieldName, dcgmFieldMIGMode, dcgmFieldEnforcedLimitW, dcgmFieldPowerMgmtLimitW} {
		if s.lib.FieldKnown(f) {
			fields = append(fields, f)
		}
	}
	if err := s.lib.Watch(ids, fields, s.interval); err != nil {
		return nil, nil, fmt.Errorf("dcgm: watch the GPUs' identities: %s", oneLine(err.Error()))
	}
	host := opts.hostname()
	var usage map[string]gpuUsage
	if !s.local() {
		host = addrHost(s.addr)
	} else if u, err := localGPUUsage(); err == nil {
		usage = u
	}
	vals, errs := s.latestBounded(ids, fields)
	var cands []gpuCandidate
	var candIDs []uint
	for i, id := range ids {
		d, err := dcgmDevice(id, vals[i], errs[i])
		if err != nil {
			s.log.Info(fmt.Sprintf("dcgm: gpu %d skipped: %s", id, oneLine(err.Error())))
			continue
		}
		d.Hostname = host
		c := gpuCandidate{Device: d}
		if u, ok := usage[d.UUID]; ok {
			c.Busy, c.MIGUUIDs = u.Busy, u.MIGUUIDs
		}
		cands = append(cands, c)
		candIDs = append(candIDs, id)
	}
	return cands, candIDs, nil
}

// dcgmDevice is GPU id as its identity fields describe it.
func dcgmDevice(id uint, vals []dcgmValue, err error) (Device, error) {
	if err != nil {
		return Device{}, err
	}
	v, _ := find(vals, dcgmFieldUUID)
	uuid, ok := v.text()
	if !ok {
		return Device{}, errors.New("DCGM gives no UUID for it")
	}
	v, _ = find(vals, dcgmFieldName)
	name, _ := v.text()
	limit, _ := firstValue(vals, dcgmFieldEnforcedLimitW, dcgmFieldPowerMgmtLimitW)
	mig, _ := fieldValue(vals, dcgmFieldMIGMode)
	return Device{Index: int(id), UUID: uuid, Model: name, MIG: mig == 1, PowerLimitW: limit}, nil
}

// watch has DCGM refresh the read fields of the chosen GPUs every
// interval. A remote nv-hostengine older than this host's library may
// not know field 1611: then it watches without it. The caller holds mu
// alone, or has the source to itself (while opening).
func (s *dcgmSource) watch() error {
	ids := make([]uint, len(s.gpus))
	for i, g := range s.gpus {
		ids[i] = g.id
	}
	err := s.lib.Watch(ids, s.fields, s.interval)
	if err != nil && slices.Contains(s.fields, dcgmFieldEnergyJ) {
		fields := slices.DeleteFunc(slices.Clone(s.fields), func(f uint16) bool { return f == dcgmFieldEnergyJ })
		if s.lib.Watch(ids, fields, s.interval) == nil {
			s.fields, err = fields, nil
		}
	}
	return err
}

// findCounters reads every chosen GPU once, each read bounded in time,
// to tell the GPUs without an energy counter, which are integrated from
// power. Only DCGM's explicit "not supported" means no counter: a value
// not sampled yet, or a GPU that did not answer, keeps its counter, and
// its field is chosen at its first valid read.
func (s *dcgmSource) findCounters() {
	ids := make([]uint, len(s.gpus))
	for i, g := range s.gpus {
		ids[i] = g.id
	}
	vals, errs := s.latestBounded(ids, s.fields)
	for i := range s.gpus {
		g := &s.gpus[i]
		if errs[i] != nil {
			continue
		}
		g.energy, g.integrated = energyField(vals[i])
		if g.integrated {
			s.devices[i].Integrated = true
			s.log.Info(fmt.Sprintf("dcgm: gpu %d (%s) has no energy counter; its energy is integrated from power", g.id, s.devices[i].Model))
		}
	}
}

// energyField chooses the field a GPU's energy counter is read from: 156
// (mJ) when the GPU gives it, 1611 (J) only when 156 is unavailable. A
// counter in joules sampled every 100 ms quantises a 300 W GPU's 30 J
// per interval to ±1 J, 3 %; millijoules are exact enough. field is 0
// while undecided (a value not sampled yet); none is true when DCGM says
// the GPU has neither.
func energyField(vals []dcgmValue) (field uint16, none bool) {
	for _, f := range []uint16{dcgmFieldEnergyMJ, dcgmFieldEnergyJ} {
		v, found := find(vals, f)
		if !found || v.unavailable() {
			continue
		}
		if _, ok := v.number(); ok {
			return f, false
		}
		return 0, false // not sampled yet: wait for it rather than take the other field
	}
	return 0, true
}

// latestBounded reads fields of each GPU in ids, each read bounded in
// time; a read that did not return in time fails with errReadTimeout.
func (s *dcgmSource) latestBounded(ids []uint, fields []uint16) ([][]dcgmValue, []error) {
	// A read that times out writes its slot of got when it returns; only
	// the slots of reads that returned in time are copied out.
	got := make([][]dcgmValue, len(ids))
	b := newBoundedReader(len(ids), s.timeout, func(i int) Reading {
		vals, err := s.latest(ids[i], fields)
		got[i] = vals
		return Reading{Err: err}
	})
	rs := b.Read(context.Background(), nil)
	vals := make([][]dcgmValue, len(ids))
	errs := make([]error, len(ids))
	for i, r := range rs {
		var timeout errReadTimeout
		errs[i] = r.Err
		if !errors.As(r.Err, &timeout) {
			vals[i] = got[i]
		}
	}
	return vals, errs
}

// latest is lib.Latest behind mu, never after Close, and never while an
// earlier call for the same GPU has not returned (guard): the bounded
// readers of opening (identities, counters) and of reading are separate,
// and a GPU hung in one must not get a call piled on it by the next.
func (s *dcgmSource) latest(id uint, fields []uint16) (vals []dcgmValue, err error) {
	if gerr := s.guard.do(int(id), func() { vals, err = s.latestOnce(id, fields) }); gerr != nil {
		return nil, gerr
	}
	return vals, err
}

// latestOnce is latest's call, the GPU's guard held.
func (s *dcgmSource) latestOnce(id uint, fields []uint16) ([]dcgmValue, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return nil, errDCGMClosed
	}
	if fields == nil {
		fields = s.fields
	}
	return s.lib.Latest(id, fields)
}

// readGPU reads chosen GPU i. The bounded reader never runs two reads of
// one GPU at once, so s.gpus[i] is this call's alone.
func (s *dcgmSource) readGPU(i int) Reading {
	g := &s.gpus[i]
	vals, err := s.latest(g.id, nil)
	r := Reading{Time: time.Now(), EnergyJ: math.NaN(), PowerW: math.NaN()}
	if err != nil {
		r.Err = fmt.Errorf("dcgm: gpu %d: %w", g.id, oneLineError{err})
		return r
	}
	if v, ok := find(vals, dcgmFieldUUID); ok {
		if uuid, ok := v.text(); ok && !strings.EqualFold(uuid, s.devices[i].UUID) {
			r.Err = fmt.Errorf("dcgm: gpu %d is now %s, not %s (DCGM numbered the GPUs afresh, e.g. after an nv-hostengine restart): restart to measure the GPUs as they are now", g.id, uuid, s.devices[i].UUID)
			return r
		}
	}
	// Instantaneous power when the GPU gives it; 155 is a 1 s average.
	if p, ok := firstValue(vals, dcgmFieldPowerInstantW, dcgmFieldPowerW); ok {
		r.PowerW = p
	}
	if !g.integrated {
		if g.energy == 0 {
			var none bool
			g.energy, none = energyField(vals)
			if none && !g.lateNoCounter {
				g.lateNoCounter = true
				s.log.Warn(fmt.Sprintf("dcgm: gpu %d (%s): DCGM now says it has no energy counter; its energy is not counted", g.id, s.devices[i].UUID))
			}
		}
		if e, ok := fieldValue(vals, g.energy); ok {
			r.EnergyJ = e
			r.Time = s.sampledAt(r.Time, vals, g.energy)
		}
	}
	if math.IsNaN(r.EnergyJ) && math.IsNaN(r.PowerW) {
		r.Err = fmt.Errorf("dcgm: gpu %d: no valid energy or power value", g.id)
	}
	return r
}

// oneLineError flattens a library's message and keeps what it wraps.
type oneLineError struct{ err error }

func (e oneLineError) Error() string { return oneLine(e.err.Error()) }
func (e oneLineError) Unwrap() error { return e.err }

// sampledAt is when DCGM sampled field f, on the clock of now (whose
// monotonic reading it keeps), or now when that is unknown or implausible.
func (s *dcgmSource) sampledAt(now time.Time, vals []dcgmValue, f uint16) time.Time {
	if v, ok := find(vals, f); ok && v.TS > 0 {
		if age := now.Sub(time.UnixMicro(v.TS)); age >= 0 && age <= s.maxAge {
			return now.Add(-age)
		}
	}
	return now
}

func (s *dcgmSource) Name() string         { return SourceDCGM }
func (s *dcgmSource) Method() string       { return methodOf(s.devices) }
func (s *dcgmSource) Devices() []Device    { return s.devices }
func (s *dcgmSource) Selection() Selection { return s.sel }

// Connected reports whether the source is open and, for a remote
// nv-hostengine, connected to it.
func (s *dcgmSource) Connected() bool { return s.connected.Load() && !s.closed.Load() }

// Read reads each GPU's latest watched values, each read bounded in
// time. A counter that went back is passed through as read: the sampler
// tells resets from glitches. A lost connection to the nv-hostengine
// fails the whole Read, and the source reconnects in the background;
// until then Read fails at once.
func (s *dcgmSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	if s.closed.Load() {
		return dst, errDCGMClosed
	}
	if !s.connected.Load() {
		return dst, s.lostError()
	}
	n := len(dst)
	dst = s.reader.Read(ctx, dst)
	for _, r := range dst[n:] {
		var lost dcgmConnectionError
		if errors.As(r.Err, &lost) {
			s.connectionLost(lost)
			return dst[:n], s.lostError()
		}
	}
	return dst, nil
}

// local: the GPUs are this host's: DCGM embedded, or an nv-hostengine on
// a loopback address (the usual systemd setup), so that
// CUDA_VISIBLE_DEVICES and NVML's process list describe them.
func (s *dcgmSource) local() bool {
	if s.addr == "" {
		return true
	}
	host := s.addr
	if h, _, err := net.SplitHostPort(s.addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// where names the DCGM the source reads, for messages.
func (s *dcgmSource) where() string {
	if s.addr == "" {
		return "embedded DCGM"
	}
	return "nv-hostengine at " + s.addr
}

func (s *dcgmSource) lostError() error {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	return fmt.Errorf("lost the connection to %s (%s); reconnecting", s.where(), oneLine(s.lost.Error()))
}

// connectionLost starts reconnecting, once per loss.
func (s *dcgmSource) connectionLost(cause error) {
	s.lostMu.Lock()
	s.lost = cause
	s.lostMu.Unlock()
	if !s.connected.CompareAndSwap(true, false) {
		return
	}
	s.wg.Add(1)
	go s.reconnectLoop()
}

// reconnectLoop reconnects with exponential backoff, logging each failed
// attempt once and the reconnection once, until it succeeds or the
// source is closed.
func (s *dcgmSource) reconnectLoop() {
	defer s.wg.Done()
	wait := s.backoff[0]
	for attempt := 1; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
		err := s.reconnect()
		switch {
		case err == nil:
			s.log.Info(fmt.Sprintf("dcgm: reconnected to %s", s.where()))
			return
		case errors.Is(err, errDCGMClosed):
			return
		}
		wait = min(2*wait, s.backoff[1])
		s.log.Warn(fmt.Sprintf("dcgm: reconnect to %s failed (attempt %d; next in %v): %s", s.where(), attempt, wait, oneLine(err.Error())))
	}
}

// reconnect replaces DCGM's connection and watches, with no other DCGM
// call in flight.
func (s *dcgmSource) reconnect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return errDCGMClosed
	}
	if err := s.lib.Reconnect(); err != nil {
		return err
	}
	if err := s.watch(); err != nil {
		return fmt.Errorf("watch energy and power fields: %w", err)
	}
	s.connected.Store(true)
	return nil
}

// Close stops reconnecting and shuts DCGM down once no call is in
// flight. A GPU read that hangs past the read bound delays that: Close
// then returns, and DCGM is shut down when the read returns. DCGM is
// never called after Close.
func (s *dcgmSource) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.done)
	closed := make(chan error, 1)
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		closed <- s.lib.Close()
	}()
	select {
	case err := <-closed:
		s.wg.Wait()
		return err
	case <-time.After(s.timeout):
		return fmt.Errorf("dcgm: a GPU read has not returned within %v; DCGM is shut down when it does", s.timeout)
	}
}
