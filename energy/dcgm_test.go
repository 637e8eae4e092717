package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeDCGMLib is dcgmLib with GPUs whose latest values a test sets.
type fakeDCGMLib struct {
	gpus      []uint
	models    map[uint]string
	infoErr   map[uint]error
	known     map[uint16]bool // fields the library defines
	watchErr  func(fields []uint16) error
	values    map[uint][]dcgmValue // latest values per GPU
	latestErr map[uint]error
	watched   []uint16
	every     time.Duration
	closed    int
}

func newFakeDCGMLib(gpus ...uint) *fakeDCGMLib {
	return &fakeDCGMLib{
		gpus: gpus, models: map[uint]string{}, infoErr: map[uint]error{},
		known: map[uint16]bool{}, values: map[uint][]dcgmValue{}, latestErr: map[uint]error{},
	}
}

func (f *fakeDCGMLib) SupportedGPUs() ([]uint, error) { return f.gpus, nil }
func (f *fakeDCGMLib) DeviceInfo(gpu uint) (string, string, error) {
	if err := f.infoErr[gpu]; err != nil {
		return "", "", err
	}
	model := f.models[gpu]
	if model == "" {
		model = "NVIDIA H100 80GB HBM3"
	}
	return fmt.Sprintf("GPU-%04d", gpu), model, nil
}
func (f *fakeDCGMLib) FieldKnown(field uint16) bool { return f.known[field] }
func (f *fakeDCGMLib) Watch(gpus []uint, fields []uint16, every time.Duration) error {
	if f.watchErr != nil {
		if err := f.watchErr(fields); err != nil {
			return err
		}
	}
	f.watched, f.every = slices.Clone(fields), every
	return nil
}
func (f *fakeDCGMLib) Latest(gpu uint, fields []uint16) ([]dcgmValue, error) {
	if err := f.latestErr[gpu]; err != nil {
		return nil, err
	}
	var out []dcgmValue
	for _, v := range f.values[gpu] {
		if slices.Contains(fields, v.Field) {
			out = append(out, v)
		}
	}
	return out, nil
}
func (f *fakeDCGMLib) Close() error { f.closed++; return nil }

// set gives a GPU its latest values.
func (f *fakeDCGMLib) set(gpu uint, vals ...dcgmValue) { f.values[gpu] = vals }

func mJ(v int64) dcgmValue       { return dcgmValue{Field: dcgmFieldEnergyMJ, Type: 'i', Int: v} }
func joules(v float64) dcgmValue { return dcgmValue{Field: dcgmFieldEnergyJ, Type: 'd', Float: v} }
func watts(v float64) dcgmValue  { return dcgmValue{Field: dcgmFieldPowerW, Type: 'd', Float: v} }

func readOnce(t *testing.T, src Source) []Reading {
	t.Helper()
	rs, err := src.Read(context.Background(), nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(rs) != len(src.Devices()) {
		t.Fatalf("Read gave %d readings for %d devices", len(rs), len(src.Devices()))
	}
	return rs
}

func TestDCGMSourceConvertsMillijoulesAndWatchesAtTheInterval(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(123456), watts(250.5))
	lib.set(1, mJ(7), watts(61))
	src, err := newDCGMSource(lib, "gpu-host", SourceOptions{Interval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lib.watched, []uint16{156, 155}) || lib.every != 500*time.Millisecond {
		t.Errorf("watched %v every %v, want [156 155] every 500ms (not DCGM's 30 s default)", lib.watched, lib.every)
	}
	if src.Name() != SourceDCGM || src.Method() != MethodCounter {
		t.Errorf("Name, Method = %s, %s", src.Name(), src.Method())
	}
	want := []Device{
		{Index: 0, UUID: "GPU-0000", Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host"},
		{Index: 1, UUID: "GPU-0001", Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host"},
	}
	if !slices.Equal(src.Devices(), want) {
		t.Errorf("Devices = %+v", src.Devices())
	}
	rs := readOnce(t, src)
	if rs[0].EnergyJ != 123.456 || rs[0].PowerW != 250.5 || rs[0].Err != nil || rs[0].Time.IsZero() {
		t.Errorf("gpu 0: %+v, want 123.456 J, 250.5 W", rs[0])
	}
	if rs[1].EnergyJ != 0.007 || rs[1].PowerW != 61 {
		t.Errorf("gpu 1: %+v, want 0.007 J, 61 W", rs[1])
	}
	if err := src.Close(); err != nil || lib.closed != 1 {
		t.Errorf("Close: %v, library closed %d times", err, lib.closed)
	}
}

func TestDCGMSourcePrefersField1611(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.known[dcgmFieldEnergyJ] = true
	lib.set(0, joules(1000.5), mJ(999000), watts(300))
	// GPU 1's driver does not fill 1611: it falls back to 156.
	lib.set(1, dcgmValue{Field: dcgmFieldEnergyJ, Type: 'd', Float: dcgmBlankFP64Min + 2}, mJ(42000), watts(70))
	src, err := newDCGMSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lib.watched, []uint16{1611, 156, 155}) || lib.every != time.Second {
		t.Errorf("watched %v every %v, want [1611 156 155] every 1s", lib.watched, lib.every)
	}
	rs := readOnce(t, src)
	if rs[0].EnergyJ != 1000.5 {
		t.Errorf("gpu 0 energy %v J, want 1000.5 from field 1611", rs[0].EnergyJ)
	}
	if rs[1].EnergyJ != 42 {
		t.Errorf("gpu 1 energy %v J, want 42 from field 156", rs[1].EnergyJ)
	}
	// The choice is fixed at open: a GPU on 1611 does not flip to 156
	// (whose rounding could look like a counter going back).
	lib.set(0, dcgmValue{Field: dcgmFieldEnergyJ, Type: 'd', Float: dcgmBlankFP64Min}, mJ(999500), watts(300))
	if rs := readOnce(t, src); !math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 300 || rs[0].Err != nil {
		t.Errorf("gpu 0 with 1611 blank: %+v, want no energy, 300 W, no error", rs[0])
	}
}

func TestDCGMSourceRetriesWatchWithout1611(t *testing.T) {
	// This host's library knows 1611; the remote nv-hostengine does not.
	lib := newFakeDCGMLib(0)
	lib.known[dcgmFieldEnergyJ] = true
	lib.watchErr = func(fields []uint16) error {
		if slices.Contains(fields, dcgmFieldEnergyJ) {
			return errors.New("Unknown field id")
		}
		return nil
	}
	lib.set(0, mJ(5000), watts(100))
	src, err := newDCGMSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(lib.watched, []uint16{156, 155}) {
		t.Errorf("watched %v, want [156 155]", lib.watched)
	}
	if rs := readOnce(t, src); rs[0].EnergyJ != 5 {
		t.Errorf("energy %v J, want 5", rs[0].EnergyJ)
	}
}

func TestDCGMSourcePassesADecreasingCounterThrough(t *testing.T) {
	lib := newFakeDCGMLib(0)
	lib.set(0, mJ(5_000_000), watts(100))
	src, err := newDCGMSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int64{5_000_000, 100, 200} {
		lib.set(0, mJ(v), watts(100))
		rs := readOnce(t, src)
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
	src, err := newDCGMSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lib.latestErr[1] = errors.New("GPU is lost\nreset it")
	rs := readOnce(t, src)
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") || !strings.Contains(rs[1].Err.Error(), "GPU is lost reset it") {
		t.Errorf("gpu 1 error %v, want one line naming gpu 1 and DCGM's message", rs[1].Err)
	}
	if rs[0].Err != nil || rs[0].EnergyJ != 1 || rs[2].Err != nil || rs[2].EnergyJ != 3 {
		t.Errorf("the other GPUs: %+v, %+v", rs[0], rs[2])
	}
}

func TestDCGMValueValidity(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    dcgmValue
		want float64 // NaN: not a value
	}{
		{"int", dcgmValue{Type: 'i', Int: 42}, 42},
		{"double", dcgmValue{Type: 'd', Float: 4.5}, 4.5},
		{"int64 blank", dcgmValue{Type: 'i', Int: dcgmBlankInt64Min}, math.NaN()},
		{"int64 not supported", dcgmValue{Type: 'i', Int: dcgmBlankInt64Min + 2}, math.NaN()},
		{"fp64 blank", dcgmValue{Type: 'd', Float: dcgmBlankFP64Min}, math.NaN()},
		{"fp64 not permissioned", dcgmValue{Type: 'd', Float: dcgmBlankFP64Min + 3}, math.NaN()},
		{"negative int", dcgmValue{Type: 'i', Int: -1}, math.NaN()},
		{"negative double", dcgmValue{Type: 'd', Float: -0.5}, math.NaN()},
		{"NaN", dcgmValue{Type: 'd', Float: math.NaN()}, math.NaN()},
		{"Inf", dcgmValue{Type: 'd', Float: math.Inf(1)}, math.NaN()},
		{"bad status", dcgmValue{Type: 'i', Int: 42, Status: -5}, math.NaN()},
		{"string", dcgmValue{Type: 's'}, math.NaN()},
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
		})
	}
}

func TestDCGMSourceBlankValues(t *testing.T) {
	lib := newFakeDCGMLib(0, 1, 2)
	lib.set(0, mJ(1000), watts(100))
	lib.set(1, mJ(1000), watts(100))
	lib.set(2, mJ(1000), watts(100))
	src, err := newDCGMSource(lib, "h", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lib.set(0, mJ(dcgmBlankInt64Min), watts(90))                                                 // energy blank
	lib.set(1, mJ(2000), watts(dcgmBlankFP64Min))                                                // power blank
	lib.set(2, mJ(dcgmBlankInt64Min+1), dcgmValue{Field: dcgmFieldPowerW, Type: 'd', Status: 1}) // nothing
	rs := readOnce(t, src)
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
	if rs := readOnce(t, src); rs[0].Err == nil {
		t.Errorf("no values: %+v, want an error", rs[0])
	}
}

func TestDCGMSourcePowerOnlyGPU(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.set(0, mJ(1000), watts(100))
	lib.set(1, mJ(dcgmBlankInt64Min+2), watts(55)) // NOT_SUPPORTED: a pre-Volta GPU
	logs := &logRecorder{}
	src, err := newDCGMSource(lib, "h", SourceOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if src.Method() != MethodIntegrated {
		t.Errorf("Method = %s, want integrated when a GPU has power only", src.Method())
	}
	if len(logs.all()) != 1 || !strings.Contains(logs.all()[0], "gpu 1") {
		t.Errorf("logs.all() %q, want one line about gpu 1", logs.all())
	}
	rs := readOnce(t, src)
	if !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 55 || rs[1].Err != nil {
		t.Errorf("power-only gpu: %+v", rs[1])
	}
}

func TestDCGMSourceSkipsGPUsItCannotIdentify(t *testing.T) {
	lib := newFakeDCGMLib(0, 1)
	lib.infoErr[0] = errors.New("GPU is lost")
	lib.set(1, mJ(1000), watts(100))
	logs := &logRecorder{}
	src, err := newDCGMSource(lib, "h", SourceOptions{Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Devices()) != 1 || src.Devices()[0].Index != 1 || len(logs.all()) != 1 {
		t.Errorf("devices %+v, logs.all() %q", src.Devices(), logs.all())
	}
	lib.infoErr[1] = errors.New("GPU is lost")
	if _, err := newDCGMSource(lib, "h", SourceOptions{}); err == nil || !strings.Contains(err.Error(), "no supported GPU") {
		t.Errorf("no GPU left: %v", err)
	}
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
	if addr != "gpu-host-7:5555" || src.Devices()[0].Hostname != "gpu-host-7" {
		t.Errorf("opened %q, hostname %q; want the nv-hostengine's host", addr, src.Devices()[0].Hostname)
	}
	// A failure after Init closes the library again.
	empty := newFakeDCGMLib()
	if _, err := openDCGMSource(func(string) (dcgmLib, error) { return empty, nil }, SourceOptions{}); err == nil || empty.closed != 1 {
		t.Errorf("no GPUs: err %v, closed %d times", err, empty.closed)
	}
	// A failed Init is returned as it is, and nothing else is called.
	initErr := errors.New("dcgm: libdcgm.so.4 not found: install it")
	if _, err := openDCGMSource(func(string) (dcgmLib, error) { return nil, initErr }, SourceOptions{}); !errors.Is(err, initErr) {
		t.Errorf("failed Init: %v", err)
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
			src, err := newDCGMSource(lib, "h", SourceOptions{DCGMAddr: tc.addr, Interval: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			e := mJ(2000)
			e.TS = time.Now().Add(-tc.age).UnixMicro()
			lib.set(0, e, watts(100))
			before := time.Now()
			r := readOnce(t, src)[0]
			after := time.Now()
			if r.Time.Before(before.Add(-tc.wantAge-time.Millisecond)) || r.Time.After(after.Add(-tc.wantAge)) {
				t.Errorf("reading stamped %v before Read, want about %v", before.Sub(r.Time), tc.wantAge)
			}
		})
	}
}
