package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeDCGMLib is dcgmLib with GPUs whose identities and latest values a
// test sets. It is safe for the source's concurrent reads.
type fakeDCGMLib struct {
	mu        sync.Mutex
	version   string
	gpus      []uint
	models    map[uint]string
	mig       map[uint]bool
	limits    map[uint]float64
	noUUID    map[uint]bool
	noField   map[uint16]bool // fields the library does not define
	watchErr  func(fields []uint16) error
	values    map[uint][]dcgmValue // latest energy and power values per GPU
	latestErr map[uint]error
	// energyErr fails reads of a GPU that ask for energy (not its
	// identity).
	energyErr map[uint]error
	hang      map[uint]chan struct{} // Latest of the GPU waits for the channel to close
	// hangEnergy: only Latest calls that ask for energy wait (the GPU
	// answers its identity, then hangs).
	hangEnergy bool
	latestOf   map[uint]int // Latest calls per GPU
	lost       bool         // the connection to the host engine is gone
	// reconnectErr is what each Reconnect returns, in turn; nil after
	// the list.
	reconnectErr []error

	watches     [][]uint16      // every Watch's fields
	uuids       map[uint]string // a GPU id's UUID when not GPU-%04d (renumbered GPUs)
	watchedGPUs []uint          // the last Watch's GPUs
	every       time.Duration
	calls       int // every call but Close
	inFlight    int // Latest calls not returned yet
	reconnects  int
	overlapped  bool // Reconnect or Close ran while a Latest was in flight
	closed      int
}

func newFakeDCGMLib(gpus ...uint) *fakeDCGMLib {
	return &fakeDCGMLib{
		version: "version:4.0.0;arch:x86_64;buildid:1", gpus: gpus,
		models: map[uint]string{}, mig: map[uint]bool{}, limits: map[uint]float64{}, noUUID: map[uint]bool{}, uuids: map[uint]string{},
		noField: map[uint16]bool{dcgmFieldEnergyJ: true}, values: map[uint][]dcgmValue{},
		latestErr: map[uint]error{}, energyErr: map[uint]error{}, hang: map[uint]chan struct{}{}, latestOf: map[uint]int{},
	}
}

// twoGPUs is a fake DCGM with GPU 0 at 1 J and GPU 1 at 2 J, both 100 W.
func twoGPUs() *fakeDCGMLib {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(1000), watts(100))
	lib.set(1, mJ(2000), watts(100))
	return lib
}

// hangGPU makes the GPU's Latest calls wait until the returned channel is
// closed.
func (f *fakeDCGMLib) hangGPU(gpu uint) chan struct{} {
	release := make(chan struct{})
	f.mu.Lock()
	f.hang[gpu] = release
	f.mu.Unlock()
	return release
}

func (f *fakeDCGMLib) call() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
}

func (f *fakeDCGMLib) Version() (string, error) { f.call(); return f.version, nil }

func (f *fakeDCGMLib) SupportedGPUs() ([]uint, error) { f.call(); return f.gpus, nil }

func (f *fakeDCGMLib) FieldKnown(field uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return !f.noField[field]
}

func (f *fakeDCGMLib) Watch(gpus []uint, fields []uint16, every time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.watchErr != nil {
		if err := f.watchErr(fields); err != nil {
			return err
		}
	}
	f.watches = append(f.watches, slices.Clone(fields))
	f.watchedGPUs, f.every = slices.Clone(gpus), every
	return nil
}

func (f *fakeDCGMLib) Latest(gpu uint, fields []uint16) ([]dcgmValue, error) {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	hang := f.hang[gpu]
	if f.hangEnergy && !slices.Contains(fields, dcgmFieldEnergyMJ) {
		hang = nil
	}
	f.latestOf[gpu]++
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.lost {
		return nil, dcgmConnectionError{"Host engine connection invalid/disconnected"}
	}
	if err := f.latestErr[gpu]; err != nil {
		return nil, err
	}
	if err := f.energyErr[gpu]; err != nil && slices.Contains(fields, dcgmFieldEnergyMJ) {
		return nil, err
	}
	var out []dcgmValue
	for _, field := range fields {
		switch v := f.identity(gpu, field); {
		case v != nil:
			out = append(out, *v)
		default:
			for _, v := range f.values[gpu] {
				if v.Field == field {
					out = append(out, v)
				}
			}
		}
	}
	return out, nil
}

// identity is a GPU's identity field, or nil for other fields.
func (f *fakeDCGMLib) identity(gpu uint, field uint16) *dcgmValue {
	switch field {
	case dcgmFieldUUID:
		s := fmt.Sprintf("GPU-%04d", gpu)
		if u, ok := f.uuids[gpu]; ok {
			s = u
		}
		if f.noUUID[gpu] {
			s = "<<<NULL>>>"
		}
		return &dcgmValue{Field: field, Type: 's', Str: s}
	case dcgmFieldName:
		model := f.models[gpu]
		if model == "" {
			model = "NVIDIA H100 80GB HBM3"
		}
		return &dcgmValue{Field: field, Type: 's', Str: model}
	case dcgmFieldMIGMode:
		v := dcgmValue{Field: field, Type: 'i'}
		if f.mig[gpu] {
			v.Int = 1
		}
		return &v
	case dcgmFieldEnforcedLimitW:
		if l := f.limits[gpu]; l > 0 {
			return &dcgmValue{Field: field, Type: 'd', Float: l}
		}
		return &dcgmValue{Field: field, Type: 'd', Float: dcgmNotSupportedFP64}
	case dcgmFieldPowerMgmtLimitW:
		return &dcgmValue{Field: field, Type: 'd', Float: dcgmNotSupportedFP64}
	}
	return nil
}

func (f *fakeDCGMLib) Reconnect() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.reconnects++
	f.overlapped = f.overlapped || f.inFlight > 0
	if len(f.reconnectErr) > 0 {
		err := f.reconnectErr[0]
		f.reconnectErr = f.reconnectErr[1:]
		return err
	}
	if f.lost {
		// Still gone: a reconnection cannot succeed, however late the
		// test gets to bring the host engine back.
		return errors.New("connection refused")
	}
	return nil
}

func (f *fakeDCGMLib) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	f.overlapped = f.overlapped || f.inFlight > 0
	return nil
}

// set gives a GPU its latest energy and power values.
func (f *fakeDCGMLib) set(gpu uint, vals ...dcgmValue) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.values[gpu] = vals
}

func (f *fakeDCGMLib) fail(gpu uint, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latestErr[gpu] = err
}

func (f *fakeDCGMLib) setLost(lost bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = lost
}

func (f *fakeDCGMLib) snapshot() fakeDCGMLib {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeDCGMLib{
		watches: slices.Clone(f.watches), watchedGPUs: slices.Clone(f.watchedGPUs), every: f.every,
		calls: f.calls, reconnects: f.reconnects, overlapped: f.overlapped, closed: f.closed,
	}
}

func mJ(v int64) dcgmValue       { return dcgmValue{Field: dcgmFieldEnergyMJ, Type: 'i', Int: v} }
func joules(v float64) dcgmValue { return dcgmValue{Field: dcgmFieldEnergyJ, Type: 'd', Float: v} }
func watts(v float64) dcgmValue  { return dcgmValue{Field: dcgmFieldPowerW, Type: 'd', Float: v} }
func instantWatts(v float64) dcgmValue {
	return dcgmValue{Field: dcgmFieldPowerInstantW, Type: 'd', Float: v}
}

// openFake builds a dcgm source on lib, failing the test on error.
func openFake(t *testing.T, lib *fakeDCGMLib, opts SourceOptions) *dcgmSource {
	t.Helper()
	spec, err := ParseGPUs(opts.GPUs)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Hostname == "" {
		opts.Hostname = "h"
	}
	src, err := newDCGMSource(lib, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func TestDCGMSourceConvertsMillijoulesAndWatchesAtTheInterval(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.limits[0] = 700
	lib.mig[1] = true
	lib.models[1] = "NVIDIA A100-SXM4-80GB"
	lib.set(0, mJ(123456), watts(250.5))
	lib.set(1, mJ(7), watts(61))
	src := openFake(t, lib, SourceOptions{Interval: 500 * time.Millisecond, Hostname: "gpu-host", GPUs: GPUsAll})
	got := lib.snapshot()
	if len(got.watches) != 2 || !slices.Equal(got.watches[1], []uint16{156, 157, 155, 54}) || got.every != 500*time.Millisecond {
		t.Errorf("watched %v every %v, want the identities then [156 157 155 54] every 500ms (not DCGM's 30 s default)", got.watches, got.every)
	}
	if src.Name() != SourceDCGM || src.Method() != MethodCounter {
		t.Errorf("Name, Method = %s, %s", src.Name(), src.Method())
	}
	want := []Device{
		{Index: 0, UUID: "GPU-0000", Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host", PowerLimitW: 700},
		{Index: 1, UUID: "GPU-0001", Model: "NVIDIA A100-SXM4-80GB", Hostname: "gpu-host", MIG: true},
	}
	if !slices.Equal(src.Devices(), want) {
		t.Errorf("Devices = %+v", src.Devices())
	}
	rs := mustRead(t, src)
	if rs[0].EnergyJ != 123.456 || rs[0].PowerW != 250.5 || rs[0].Err != nil || rs[0].Time.IsZero() {
		t.Errorf("gpu 0: %+v, want 123.456 J, 250.5 W", rs[0])
	}
	if rs[1].EnergyJ != 0.007 || rs[1].PowerW != 61 {
		t.Errorf("gpu 1: %+v, want 0.007 J, 61 W", rs[1])
	}
	if err := src.Close(); err != nil || lib.snapshot().closed != 1 {
		t.Errorf("Close: %v, library closed %d times", err, lib.snapshot().closed)
	}
}

// 156 (mJ) is read when the GPU has it, 1611 (J) only when it has not;
// the choice, made at a GPU's first valid read, then holds.
func TestDCGMSourcePrefersField156(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	delete(lib.noField, dcgmFieldEnergyJ)
	lib.set(0, joules(1000.5), mJ(999_000), watts(300))
	// GPU 1's driver does not fill 156: it falls back to 1611.
	lib.set(1, joules(42.5), mJ(dcgmNotSupportedInt64), watts(70))
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll})
	if w := lib.snapshot().watches; !slices.Equal(w[len(w)-1], []uint16{156, 1611, 157, 155, 54}) {
		t.Errorf("watched %v, want [156 1611 157 155 54]", w)
	}
	rs := mustRead(t, src)
	if rs[0].EnergyJ != 999 {
		t.Errorf("gpu 0 energy %v J, want 999 from field 156", rs[0].EnergyJ)
	}
	if rs[1].EnergyJ != 42.5 {
		t.Errorf("gpu 1 energy %v J, want 42.5 from field 1611", rs[1].EnergyJ)
	}
	// The choice holds: a GPU on 156 does not flip to 1611 (whose
	// rounding could look like a counter going back).
	lib.set(0, joules(1000.5), mJ(dcgmBlankInt64Min), watts(300))
	if rs := mustRead(t, src); !math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 300 || rs[0].Err != nil {
		t.Errorf("gpu 0 with 156 blank: %+v, want no energy, 300 W, no error", rs[0])
	}
}

// 156 not sampled yet while 1611 is: the source waits for 156.
func TestDCGMSourceWaitsForField156(t *testing.T) {
	lib := newFakeDCGMLib(0)
	delete(lib.noField, dcgmFieldEnergyJ)
	lib.set(0, joules(10), mJ(dcgmBlankInt64Min), watts(100))
	src := openFake(t, lib, SourceOptions{})
	if rs := mustRead(t, src); !math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 100 {
		t.Errorf("156 blank: %+v, want no energy yet", rs[0])
	}
	lib.set(0, joules(11), mJ(11_250), watts(100))
	if rs := mustRead(t, src); rs[0].EnergyJ != 11.25 {
		t.Errorf("156 sampled: %+v, want 11.25 J from 156", rs[0])
	}
}

func TestDCGMSourceRetriesWatchWithout1611(t *testing.T) {
	// This host's library knows 1611; the remote nv-hostengine does not.
	lib := newFakeDCGMLib(0)
	delete(lib.noField, dcgmFieldEnergyJ)
	lib.watchErr = func(fields []uint16) error {
		if slices.Contains(fields, dcgmFieldEnergyJ) {
			return errors.New("Unknown field id")
		}
		return nil
	}
	lib.set(0, mJ(5000), watts(100))
	src := openFake(t, lib, SourceOptions{DCGMAddr: "gpu-host:5555"})
	if w := lib.snapshot().watches; !slices.Equal(w[len(w)-1], []uint16{156, 157, 155, 54}) {
		t.Errorf("watched %v, want [156 157 155 54]", w)
	}
	if rs := mustRead(t, src); rs[0].EnergyJ != 5 {
		t.Errorf("energy %v J, want 5", rs[0].EnergyJ)
	}
}

// Instantaneous power (157) when the GPU gives it, else 155.
func TestDCGMSourcePrefersInstantPower(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(1000), instantWatts(333), watts(300))
	lib.set(1, mJ(1000), dcgmValue{Field: dcgmFieldPowerInstantW, Type: 'd', Float: dcgmNotSupportedFP64}, watts(70))
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll})
	if rs := mustRead(t, src); rs[0].PowerW != 333 || rs[1].PowerW != 70 {
		t.Errorf("power %v, %v W; want 333 (field 157) and 70 (155)", rs[0].PowerW, rs[1].PowerW)
	}
}

func TestDCGMSourcePassesADecreasingCounterThrough(t *testing.T) {
	lib := newFakeDCGMLib(0)
	lib.set(0, mJ(5_000_000), watts(100))
	src := openFake(t, lib, SourceOptions{})
	for _, v := range []int64{5_000_000, 100, 200} {
		lib.set(0, mJ(v), watts(100))
		rs := mustRead(t, src)
		if rs[0].Err != nil || rs[0].EnergyJ != float64(v)/1000 {
			t.Errorf("counter %d mJ read as %+v", v, rs[0])
		}
	}
}

func TestDCGMSourceDeviceFailingMidRun(t *testing.T) {
	lib := newFakeDCGMLib(0, 1, 2)
	for g := range uint(3) {
		lib.set(g, mJ(1000*int64(g+1)), watts(100))
	}
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll})
	lib.fail(1, errors.New("GPU is lost\nreset it"))
	rs := mustRead(t, src)
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") || !strings.Contains(rs[1].Err.Error(), "GPU is lost reset it") {
		t.Errorf("gpu 1 error %v, want one line naming gpu 1 and DCGM's message", rs[1].Err)
	}
	if rs[0].Err != nil || rs[0].EnergyJ != 1 || rs[2].Err != nil || rs[2].EnergyJ != 3 {
		t.Errorf("the other GPUs: %+v, %+v", rs[0], rs[2])
	}
}

// A hung GPU read stalls only that GPU: Read returns within the bound.
func TestDCGMSourceHungGPU(t *testing.T) {
	lib := twoGPUs()
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll, Interval: 10 * time.Millisecond})
	release := lib.hangGPU(1)
	start := time.Now()
	rs := mustRead(t, src)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Read took %v with gpu 1 hung", took)
	}
	var timeout errReadTimeout
	if !errors.As(rs[1].Err, &timeout) || rs[0].Err != nil || rs[0].EnergyJ != 1 {
		t.Errorf("readings %+v, want gpu 1 timed out and gpu 0 read", rs)
	}
	lib.mu.Lock()
	delete(lib.hang, 1)
	lib.mu.Unlock()
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for rs[1].Err != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		rs = mustRead(t, src)
	}
	if rs[1].Err != nil || rs[1].EnergyJ != 2 {
		t.Errorf("gpu 1 once its call returned: %+v", rs[1])
	}
}

func TestDCGMValueValidity(t *testing.T) {
	for _, tc := range []struct {
		name        string
		v           dcgmValue
		want        float64 // NaN: not a value
		unavailable bool
	}{
		{"int", dcgmValue{Type: 'i', Int: 42}, 42, false},
		{"double", dcgmValue{Type: 'd', Float: 4.5}, 4.5, false},
		{"int64 blank", dcgmValue{Type: 'i', Int: dcgmBlankInt64Min}, math.NaN(), false},
		{"int64 not supported", dcgmValue{Type: 'i', Int: dcgmBlankInt64Min + 2}, math.NaN(), true},
		{"fp64 blank", dcgmValue{Type: 'd', Float: dcgmBlankFP64Min}, math.NaN(), false},
		{"fp64 not supported", dcgmValue{Type: 'd', Float: dcgmBlankFP64Min + 2}, math.NaN(), true},
		{"fp64 not permissioned", dcgmValue{Type: 'd', Float: dcgmBlankFP64Min + 3}, math.NaN(), false},
		{"negative int", dcgmValue{Type: 'i', Int: -1}, math.NaN(), false},
		{"negative double", dcgmValue{Type: 'd', Float: -0.5}, math.NaN(), false},
		{"NaN", dcgmValue{Type: 'd', Float: math.NaN()}, math.NaN(), false},
		{"Inf", dcgmValue{Type: 'd', Float: math.Inf(1)}, math.NaN(), false},
		{"bad status", dcgmValue{Type: 'i', Int: 42, Status: -5}, math.NaN(), false},
		{"status not supported", dcgmValue{Type: 'i', Int: 42, Status: dcgmStNotSupported}, math.NaN(), true},
		{"status unknown field", dcgmValue{Type: 'd', Status: dcgmStUnknownField}, math.NaN(), true},
		{"status not watched", dcgmValue{Type: 'i', Int: dcgmBlankInt64Min, Status: -16}, math.NaN(), false},
		{"string", dcgmValue{Type: 's'}, math.NaN(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, ok := tc.v.number()
			if math.IsNaN(tc.want) {
				if ok {
					t.Errorf("number() = %v, want no value", x)
				}
			} else if !ok || x != tc.want {
				t.Errorf("number() = %v, %v, want %v", x, ok, tc.want)
			}
			if tc.v.unavailable() != tc.unavailable {
				t.Errorf("unavailable() = %v", !tc.unavailable)
			}
		})
	}
	for s, want := range map[string]bool{"GPU-1": true, " NVIDIA L4 ": true, "": false, "<<<NULL>>>": false, "<<<NOT_SUPPORTED>>>": false} {
		if _, ok := (dcgmValue{Type: 's', Str: s}).text(); ok != want {
			t.Errorf("text() of %q ok = %v", s, ok)
		}
	}
}

func TestDCGMSourceBlankValues(t *testing.T) {
	lib := newFakeDCGMLib(0, 1, 2)
	for g := range uint(3) {
		lib.set(g, mJ(1000), watts(100))
	}
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll})
	lib.set(0, mJ(dcgmBlankInt64Min), watts(90))                                                 // energy blank
	lib.set(1, mJ(2000), watts(dcgmBlankFP64Min))                                                // power blank
	lib.set(2, mJ(dcgmBlankInt64Min+1), dcgmValue{Field: dcgmFieldPowerW, Type: 'd', Status: 1}) // nothing
	rs := mustRead(t, src)
	if !math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 90 || rs[0].Err != nil {
		t.Errorf("blank energy: %+v, want no energy, 90 W", rs[0])
	}
	if rs[1].EnergyJ != 2 || !math.IsNaN(rs[1].PowerW) || rs[1].Err != nil {
		t.Errorf("blank power: %+v, want 2 J, no power", rs[1])
	}
	if rs[2].Err == nil {
		t.Errorf("no valid value: %+v, want an error", rs[2])
	}
	// A GPU that returns no values at all.
	lib.set(0)
	if rs := mustRead(t, src); rs[0].Err == nil {
		t.Errorf("no values: %+v, want an error", rs[0])
	}
}

// Only DCGM's explicit NOT_SUPPORTED means no energy counter: that GPU
// alone is integrated, and the source is mixed.
func TestDCGMSourcePowerOnlyGPU(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(1000), watts(100))
	lib.set(1, mJ(dcgmNotSupportedInt64), watts(55)) // a pre-Volta GPU
	logs := &logRecorder{}
	src := openFake(t, lib, SourceOptions{Logger: logs.logger(), GPUs: GPUsAll})
	if src.Method() != MethodMixed || src.Devices()[0].Integrated || !src.Devices()[1].Integrated {
		t.Errorf("Method = %s, devices %+v; want mixed, gpu 1 integrated", src.Method(), src.Devices())
	}
	if n := countLines(logs, "gpu 1"); n != 1 {
		t.Errorf("logs %q, want one line about gpu 1", logs.all())
	}
	rs := mustRead(t, src)
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 55 || rs[1].Err != nil {
		t.Errorf("power-only gpu: %+v", rs[1])
	}
	if rs[0].EnergyJ != 1 {
		t.Errorf("gpu 0: %+v", rs[0])
	}

	only := newFakeDCGMLib(0)
	only.set(0, dcgmValue{Field: dcgmFieldEnergyMJ, Type: 'i', Status: dcgmStNotSupported}, watts(55))
	if src := openFake(t, only, SourceOptions{}); src.Method() != MethodIntegrated {
		t.Errorf("Method = %s, want integrated", src.Method())
	}
}

// Energy not sampled yet at open, or a GPU that did not answer, keeps
// its counter: the field is chosen at its first valid read.
func TestDCGMSourceBlankAtStartIsNotNoCounter(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(dcgmBlankInt64Min), watts(dcgmBlankFP64Min))
	lib.set(1, mJ(1000), watts(100))
	lib.energyErr[1] = errors.New("GPU is lost") // identified, then failing
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll})
	lib.mu.Lock()
	delete(lib.energyErr, 1)
	lib.mu.Unlock()
	if src.Method() != MethodCounter {
		t.Fatalf("Method = %s, want counter", src.Method())
	}
	if rs := mustRead(t, src); rs[0].Err == nil {
		t.Errorf("gpu 0 blank: %+v, want an error (no value)", rs[0])
	}
	lib.set(0, mJ(4000), watts(100))
	if rs := mustRead(t, src); rs[0].Err != nil || rs[0].EnergyJ != 4 || rs[1].EnergyJ != 1 {
		t.Errorf("once sampled: %+v", rs)
	}
}

func TestDCGMSourceSkipsGPUsItCannotIdentify(t *testing.T) {
	lib := newFakeDCGMLib(0, 1, 2)
	lib.fail(0, errors.New("GPU is lost"))
	lib.noUUID[2] = true
	lib.set(1, mJ(1000), watts(100))
	logs := &logRecorder{}
	src := openFake(t, lib, SourceOptions{Logger: logs.logger(), GPUs: GPUsAll})
	if len(src.Devices()) != 1 || src.Devices()[0].Index != 1 || countLines(logs, "skipped") != 2 {
		t.Errorf("devices %+v, logs %q", src.Devices(), logs.all())
	}
	lib.fail(1, errors.New("GPU is lost"))
	if _, err := newDCGMSource(lib, GPUSpec{All: true}, SourceOptions{}); err == nil || !strings.Contains(err.Error(), "no supported GPU") {
		t.Errorf("no GPU left: %v", err)
	}
}

func countLines(logs *logRecorder, substr string) int {
	n := 0
	for _, l := range logs.all() {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func TestOpenDCGMSource(t *testing.T) {
	lib := newFakeDCGMLib(0)
	lib.set(0, mJ(1000), watts(100))
	var addr string
	open := func(a string) (dcgmLib, error) { addr = a; return lib, nil }
	src, err := openDCGMSource(open, SourceOptions{DCGMAddr: "gpu-host-7:5555"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if addr != "gpu-host-7:5555" || src.Devices()[0].Hostname != "gpu-host-7" {
		t.Errorf("opened %q, hostname %q; want the nv-hostengine's host", addr, src.Devices()[0].Hostname)
	}
	// A failure after Init closes the library again.
	empty := newFakeDCGMLib()
	if _, err := openDCGMSource(func(string) (dcgmLib, error) { return empty, nil }, SourceOptions{}); err == nil || empty.snapshot().closed != 1 {
		t.Errorf("no GPUs: err %v, closed %d times", err, empty.snapshot().closed)
	}
	// A failed Init is returned as it is, and nothing else is called.
	initErr := errors.New("dcgm: libdcgm.so.4 not found: install it")
	if _, err := openDCGMSource(func(string) (dcgmLib, error) { return nil, initErr }, SourceOptions{}); !errors.Is(err, initErr) {
		t.Errorf("failed Init: %v", err)
	}
	// Bad options are refused before DCGM is touched.
	for _, opts := range []SourceOptions{{Selector: `pod="vllm-0"`}, {GPUs: "0,,1"}} {
		opened := false
		_, err := openDCGMSource(func(string) (dcgmLib, error) { opened = true; return lib, nil }, opts)
		if err == nil || opened || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, opened %v; want a one-line error before opening", opts, err, opened)
		}
	}
}

func TestDCGMSourceHostnameFromOptions(t *testing.T) {
	t.Setenv("NODE_NAME", "node-from-downward-api")
	lib := newFakeDCGMLib(0)
	lib.set(0, mJ(1000), watts(100))
	spec, _ := ParseGPUs("")
	src, err := newDCGMSource(lib, spec, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if h := src.Devices()[0].Hostname; h != "node-from-downward-api" {
		t.Errorf("hostname %q, want NODE_NAME's", h)
	}
}

// DCGM older than 4.0, or a version that cannot be read, is refused with
// one line that states the minimum; the library is closed and nothing
// else is called.
func TestDCGMSourceChecksTheVersion(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // "" when accepted
	}{
		{"version:4.0.0;arch:x86_64;buildid:1", ""},
		{"arch:x86_64;version:4.5.2-1;buildid:7", ""},
		{"version:10.1", ""},
		{"version:3.3.9;arch:x86_64", "libdcgm.so.4 is DCGM 3.3.9; tokenwatt needs DCGM 4.0.0 or newer"},
		{"version:beta;arch:x86_64", "does not say which DCGM it is"},
		{"version:4", "does not say which DCGM it is"},
		{"arch:x86_64", "does not say which DCGM it is"},
		{"", "does not say which DCGM it is"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			lib := newFakeDCGMLib(0)
			lib.version = tc.raw
			lib.set(0, mJ(1000), watts(100))
			logs := &logRecorder{}
			src, err := newDCGMSource(lib, GPUSpec{Auto: true}, SourceOptions{Logger: logs.logger()})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				src.Close()
				if countLines(logs, "libdcgm.so.4 is DCGM ") != 1 {
					t.Errorf("version not logged: %q", logs.all())
				}
				return
			}
			got := lib.snapshot()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "4.0.0 or newer") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line with %q", err, tc.want)
			}
			if got.closed != 1 || got.calls != 1 {
				t.Errorf("library closed %d times after %d calls; want closed once after Version only", got.closed, got.calls)
			}
		})
	}
}

// The GPUs chosen (selectGPUs) are the only ones watched and read.
func TestDCGMSourceSelectsGPUs(t *testing.T) {
	usage := localGPUUsage
	t.Cleanup(func() { localGPUUsage = usage })
	localGPUUsage = func() (map[string]gpuUsage, error) {
		return map[string]gpuUsage{"GPU-0002": {Busy: true, MIGUUIDs: []string{"MIG-2a"}}}, nil
	}
	none := ""
	cuda := "GPU-0003,0"
	for _, tc := range []struct {
		name     string
		opts     SourceOptions
		want     []int
		how      string
		warning  bool
		noUsage  bool
		wantUUID []string
	}{
		{"list", SourceOptions{GPUs: "3,GPU-0001"}, []int{1, 3}, "--gpus", false, false, nil},
		{"MIG UUID names its parent", SourceOptions{GPUs: "MIG-2a"}, []int{2}, "--gpus", false, false, nil},
		{"all", SourceOptions{GPUs: GPUsAll}, []int{0, 1, 2, 3}, "all", false, false, nil},
		{"auto: CUDA_VISIBLE_DEVICES", SourceOptions{CUDAVisibleDevices: &cuda}, []int{0, 3}, "CUDA_VISIBLE_DEVICES", false, false, nil},
		{"auto: compute processes", SourceOptions{CUDAVisibleDevices: &none}, []int{2}, "compute processes", false, false, nil},
		{"auto: no usage known", SourceOptions{CUDAVisibleDevices: &none}, []int{0, 1, 2, 3}, "all (no GPU runs a compute process)", true, true, nil},
		{"auto: remote", SourceOptions{DCGMAddr: "gpu-host:5555"}, []int{0, 1, 2, 3}, "all (remote host engine)", true, false, nil},
		// An nv-hostengine on loopback (systemd's) serves this host's GPUs.
		{"auto: local nv-hostengine", SourceOptions{DCGMAddr: "127.0.0.1:5555", CUDAVisibleDevices: &none}, []int{2}, "compute processes", false, false, nil},
		{"auto: localhost nv-hostengine", SourceOptions{DCGMAddr: "localhost:5555", CUDAVisibleDevices: &cuda}, []int{0, 3}, "CUDA_VISIBLE_DEVICES", false, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noUsage {
				localGPUUsage = func() (map[string]gpuUsage, error) { return nil, errors.New("no NVML") }
				defer func() {
					localGPUUsage = func() (map[string]gpuUsage, error) {
						return map[string]gpuUsage{"GPU-0002": {Busy: true, MIGUUIDs: []string{"MIG-2a"}}}, nil
					}
				}()
			}
			lib := newFakeDCGMLib(0, 1, 2, 3)
			for g := range uint(4) {
				lib.set(g, mJ(1000*int64(g)), watts(100))
			}
			src := openFake(t, lib, tc.opts)
			var idx []int
			for _, d := range src.Devices() {
				idx = append(idx, d.Index)
			}
			if !slices.Equal(idx, tc.want) {
				t.Errorf("devices %v, want %v", idx, tc.want)
			}
			var watched []int
			for _, g := range lib.snapshot().watchedGPUs {
				watched = append(watched, int(g))
			}
			if !slices.Equal(watched, tc.want) {
				t.Errorf("energy watched on %v, want %v", watched, tc.want)
			}
			sel := SelectionOf(src)
			if sel.How != tc.how || (sel.Warning != "") != tc.warning {
				t.Errorf("selection %+v, want %q, warning %v", sel, tc.how, tc.warning)
			}
			rs := mustRead(t, src)
			for i, r := range rs {
				if r.EnergyJ != float64(tc.want[i]) {
					t.Errorf("reading %d: %+v, want gpu %d's", i, r, tc.want[i])
				}
			}
		})
	}
}

func TestDCGMSourceStampsReadingsWithDCGMSampleTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		addr    string
		age     time.Duration
		wantAge time.Duration
	}{
		{"embedded", "", 700 * time.Millisecond, 700 * time.Millisecond},
		{"embedded, implausibly old", "", time.Hour, 0},
		{"embedded, in the future", "", -time.Second, 0},
		{"remote: another host's clock", "gpu-host:5555", 700 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lib := newFakeDCGMLib(0)
			lib.set(0, mJ(1000), watts(100))
			src := openFake(t, lib, SourceOptions{DCGMAddr: tc.addr, Interval: time.Second})
			e := mJ(2000)
			e.TS = time.Now().Add(-tc.age).UnixMicro()
			lib.set(0, e, watts(100))
			before := time.Now()
			r := mustRead(t, src)[0]
			after := time.Now()
			if r.Time.Before(before.Add(-tc.wantAge-time.Millisecond)) || r.Time.After(after.Add(-tc.wantAge)) {
				t.Errorf("reading stamped %v before Read, want about %v", before.Sub(r.Time), tc.wantAge)
			}
		})
	}
}

// A lost nv-hostengine fails Read as a whole, without calling DCGM while
// it is lost; the source reconnects with backoff, logging each failed
// attempt and the reconnection once, re-creates its watch and reads
// again. No reconnection runs while a read is in flight.
func TestDCGMSourceReconnects(t *testing.T) {
	lib := twoGPUs()
	logs := &logRecorder{}
	src := openFake(t, lib, SourceOptions{DCGMAddr: "gpu-host:5555", Logger: logs.logger()})
	src.backoff = [2]time.Duration{20 * time.Millisecond, 40 * time.Millisecond}
	lib.reconnectErr = []error{errors.New("connection refused"), errors.New("connection refused")}
	watches := len(lib.snapshot().watches)

	lib.setLost(true)
	_, err := src.Read(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "nv-hostengine at gpu-host:5555") || !strings.Contains(err.Error(), "Host engine connection invalid") {
		t.Fatalf("Read with the host engine gone: %v", err)
	}
	if src.Connected() {
		t.Error("Connected with the host engine gone")
	}
	calls := lib.snapshot().calls
	if _, err := src.Read(context.Background(), nil); err == nil {
		t.Error("second Read: no error")
	}
	if got := lib.snapshot(); got.calls != calls && got.reconnects == 0 {
		t.Errorf("Read called DCGM while disconnected (%d calls, then %d)", calls, got.calls)
	}
	lib.setLost(false)
	deadline := time.Now().Add(10 * time.Second)
	for !src.Connected() {
		if time.Now().After(deadline) {
			t.Fatalf("not reconnected; logs %q", logs.all())
		}
		time.Sleep(5 * time.Millisecond)
	}
	rs := mustRead(t, src)
	if rs[0].EnergyJ != 1 || rs[1].EnergyJ != 2 {
		t.Errorf("after reconnecting: %+v", rs)
	}
	got := lib.snapshot()
	// Two scripted failures, then as many as ran before the host engine
	// came back (none unless this test was slow to bring it back).
	if got.reconnects < 3 || len(got.watches) != watches+1 || !slices.Equal(got.watchedGPUs, []uint{0, 1}) {
		t.Errorf("%d reconnections, %d watches (was %d) on %v; want at least 3, one more watch of both GPUs", got.reconnects, len(got.watches), watches, got.watchedGPUs)
	}
	if n := countLines(logs, "failed (attempt"); n != got.reconnects-1 || countLines(logs, "reconnected to nv-hostengine at gpu-host:5555") != 1 {
		t.Errorf("logs %q, want %d failed attempts and one reconnection", logs.all(), got.reconnects-1)
	}
	if got.overlapped {
		t.Error("a reconnection ran while a read was in flight")
	}
}

// A GPU that hangs while the source opens (reading its counter, after
// its identity) gets no second call while the first is out: not from
// opening, not from the reads after.
func TestDCGMSourceNeverPilesCallsOnAHungGPU(t *testing.T) {
	lib := twoGPUs()
	release := make(chan struct{})
	lib.hang[1], lib.hangEnergy = release, true
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll, Interval: 10 * time.Millisecond})
	defer close(release)
	for range 3 {
		rs := mustRead(t, src)
		if rs[0].Err != nil || rs[1].Err == nil {
			t.Fatalf("readings %+v; want gpu 0 read and gpu 1 failing", rs)
		}
	}
	lib.mu.Lock()
	calls := lib.latestOf[1]
	lib.mu.Unlock()
	if calls != 2 { // its identity, then the one counter read that hangs
		t.Errorf("gpu 1 was called %d times while hung, want 2 (identity, then one hung call)", calls)
	}
}

// After an nv-hostengine restart DCGM may number the GPUs afresh: a GPU
// id that now names another GPU fails, rather than reading that GPU's
// counter under the old UUID.
func TestDCGMSourceNoticesRenumberedGPUs(t *testing.T) {
	lib := twoGPUs()
	src := openFake(t, lib, SourceOptions{DCGMAddr: "gpu-host:5555"})
	if rs := mustRead(t, src); rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("before: %+v", rs)
	}
	lib.mu.Lock()
	lib.uuids[0], lib.uuids[1] = "GPU-0001", "GPU-0000" // swapped
	lib.mu.Unlock()
	rs := mustRead(t, src)
	for i, r := range rs {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "numbered the GPUs afresh") || !math.IsNaN(r.EnergyJ) {
			t.Errorf("gpu %d after renumbering: %+v, want an error and no energy", i, r)
		}
	}
}

// A reconnection waits for reads in flight: go-dcgm's Shutdown and Init
// replace the connection those reads use.
func TestDCGMSourceReconnectWaitsForReadsInFlight(t *testing.T) {
	lib := twoGPUs()
	src := openFake(t, lib, SourceOptions{DCGMAddr: "gpu-host:5555", Interval: 10 * time.Millisecond})
	src.backoff = [2]time.Duration{time.Millisecond, time.Millisecond}
	release := lib.hangGPU(1)
	lib.fail(0, dcgmConnectionError{"Host engine connection invalid/disconnected"})
	if _, err := src.Read(context.Background(), nil); err == nil {
		t.Fatal("Read: no error")
	}
	time.Sleep(50 * time.Millisecond) // reconnection attempts would run now
	if got := lib.snapshot(); got.reconnects != 0 {
		t.Errorf("%d reconnections while gpu 1's read hangs", got.reconnects)
	}
	lib.fail(0, nil)
	lib.mu.Lock()
	delete(lib.hang, 1)
	lib.mu.Unlock()
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for !src.Connected() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := lib.snapshot(); !src.Connected() || got.overlapped {
		t.Errorf("connected %v, overlapped %v", src.Connected(), got.overlapped)
	}
}

// After Close nothing reaches DCGM; a read hung past the bound delays
// only DCGM's shutdown, not Close.
func TestDCGMSourceClose(t *testing.T) {
	lib := twoGPUs()
	src := openFake(t, lib, SourceOptions{GPUs: GPUsAll, Interval: 10 * time.Millisecond})
	release := lib.hangGPU(1)
	mustRead(t, src)
	start := time.Now()
	if err := src.Close(); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("Close with a read hung: %v after %v; want an error within the bound", err, time.Since(start))
	}
	if lib.snapshot().closed != 0 {
		t.Error("DCGM shut down under a read in flight")
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for lib.snapshot().closed == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	calls := lib.snapshot().calls
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := src.Read(context.Background(), nil); !errors.Is(err, errDCGMClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	got := lib.snapshot()
	if got.closed != 1 || got.calls != calls || got.overlapped || src.Connected() {
		t.Errorf("closed %d times, %d calls after Close, overlapped %v, connected %v", got.closed, got.calls-calls, got.overlapped, src.Connected())
	}
}
