package energy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gpuTestSource is a Source whose rounds of readings a test queues: each
// Read gives the next round, then repeats the last.
type gpuTestSource struct {
	method  string
	devices []Device

	mu      sync.Mutex
	rounds  [][]Reading
	last    []Reading
	err     error         // Read's own error
	block   chan struct{} // when set, Read waits for it (or ctx)
	blocked chan struct{} // with block: closed by the next Read that waits
	reads   int
	closed  bool
}

func testDevices(n int) []Device {
	var ds []Device
	for i := range n {
		// GPU 1 is in MIG mode (its energy is the whole GPU's).
		ds = append(ds, Device{Index: i, UUID: fmt.Sprintf("GPU-test-%d", i), Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host",
			PowerLimitW: 700, MIG: i == 1})
	}
	return ds
}

func testReading(energyJ, powerW float64) Reading { return Reading{EnergyJ: energyJ, PowerW: powerW} }

func failed(msg string) Reading { return Reading{Err: errors.New(msg)} }

// push queues one round of readings.
func (s *gpuTestSource) push(rs ...Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rounds = append(s.rounds, rs)
}

func (s *gpuTestSource) Name() string      { return "fake" }
func (s *gpuTestSource) Method() string    { return s.method }
func (s *gpuTestSource) Devices() []Device { return s.devices }
func (s *gpuTestSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *gpuTestSource) Read(ctx context.Context, dst []Reading) ([]Reading, error) {
	s.mu.Lock()
	s.reads++
	block := s.block
	if block != nil && s.blocked != nil {
		close(s.blocked)
		s.blocked = nil
	}
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return dst, s.err
	}
	if len(s.rounds) > 0 {
		s.last, s.rounds = s.rounds[0], s.rounds[1:]
	}
	return append(dst, s.last...), nil
}

// fakeClock is the sampler's and the collector's clock in tests; only
// the test's goroutine reads it.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// logRecorder is a slog.Handler that collects log messages.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Message)
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// all returns the messages so far.
func (l *logRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func (l *logRecorder) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// gpuTest is a collector on a sampler of a test source, both on a fake
// clock, sampling every second.
type gpuTest struct {
	src     *gpuTestSource
	sampler *Sampler
	c       *GPUCollector
	clock   *fakeClock
	logs    *logRecorder
}

func newGPUTest(method string, gpus int, opts GPUCollectorOptions) *gpuTest {
	g := &gpuTest{
		src:   &gpuTestSource{method: method, devices: testDevices(gpus)},
		clock: &fakeClock{t: time.Unix(1_700_000_000, 0)},
		logs:  &logRecorder{},
	}
	g.sampler = NewSampler(g.src, time.Second)
	g.sampler.now = g.clock.now
	g.sampler.SetLogger(g.logs.logger())
	g.c = NewGPUCollector(g.sampler, opts)
	g.c.now = g.clock.now
	return g
}

// step advances the clock one interval and samples once.
func (g *gpuTest) step(t *testing.T) {
	t.Helper()
	g.clock.advance(time.Second)
	g.sampler.Read(t.Context())
}

// energyOf is a GPU's exported energy, NaN when the series is absent.
func energyOf(t *testing.T, c *GPUCollector, gpu int) float64 {
	t.Helper()
	return gpuValue(t, c, "tokenwatt_gpu_energy_joules_total", gpu)
}

func gpuValue(t *testing.T, c *GPUCollector, name string, gpu int) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "gpu" && l.GetValue() == fmt.Sprint(gpu) {
					if m.GetCounter() != nil {
						return m.GetCounter().GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return math.NaN()
}

// upValues are tokenwatt_energy_source_up and each GPU's tokenwatt_gpu_up
// (NaN where absent).
func upValues(t *testing.T, c *GPUCollector) (source float64, gpus []float64) {
	t.Helper()
	n := len(c.sampler.Devices())
	for i := range n {
		gpus = append(gpus, gpuValue(t, c, "tokenwatt_gpu_up", i))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	source = math.NaN()
	for _, mf := range mfs {
		if mf.GetName() == "tokenwatt_energy_source_up" && len(mf.GetMetric()) == 1 {
			source = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return source, gpus
}

// A GPU whose reading is garbage is down like one that failed; the source
// is still up.
func TestGPUCollectorInvalidReadingIsDown(t *testing.T) {
	g := newGPUTest(MethodCounter, 2, GPUCollectorOptions{})
	g.src.push(testReading(1000, 300), testReading(2000, 300))
	g.step(t)
	g.src.push(testReading(1100, 300), testReading(math.NaN(), 300))
	g.step(t)
	if src, gpus := upValues(t, g.c); src != 1 || !slices.Equal(gpus, []float64{1, 0}) {
		t.Errorf("source up %v, GPUs up %v; want 1 and [1 0]", src, gpus)
	}
	if !math.IsNaN(energyOf(t, g.c, 1)) {
		t.Error("the GPU with an invalid reading is exported")
	}
}

// The energy-exporter's exposition: info, and per GPU the energy since
// sampling started, the latest power and health.
func TestGPUCollectorExpositionGolden(t *testing.T) {
	g := newGPUTest(MethodCounter, 2, GPUCollectorOptions{Info: true, Version: "test"})
	g.src.push(testReading(1000, 300), testReading(2000.5, 310.25))
	g.src.push(testReading(1250.5, 300), testReading(2100, 310.25))
	g.step(t)
	g.step(t)
	f, err := os.Open("testdata/gpu_metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(g.c, f); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(g.c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A run's registry: no info metric, and the idle baseline once measured.
func TestGPUCollectorIdleBaselineAndNoInfo(t *testing.T) {
	var idle []float64
	g := newGPUTest(MethodCounter, 2, GPUCollectorOptions{Idle: func() []float64 { return idle }})
	g.src.push(testReading(1000, 300), testReading(2000, 310))
	g.step(t)
	if n := testutil.CollectAndCount(g.c, "tokenwatt_energy_exporter_info", "tokenwatt_gpu_idle_power_watts"); n != 0 {
		t.Errorf("%d info or idle series before the baseline, want none", n)
	}
	idle = []float64{61.5, 70}
	want := `# HELP tokenwatt_gpu_idle_power_watts GPU idle baseline: mean power over the quiet period before the run, watts.
# TYPE tokenwatt_gpu_idle_power_watts gauge
tokenwatt_gpu_idle_power_watts{gpu="0",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-test-0"} 61.5
tokenwatt_gpu_idle_power_watts{gpu="1",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-test-1"} 70
`
	if err := testutil.CollectAndCompare(g.c, strings.NewReader(want), "tokenwatt_gpu_idle_power_watts"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(g.c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestGPUCollectorBeforeTheFirstSampleExportsInfoAndDown(t *testing.T) {
	g := newGPUTest(MethodIntegrated, 1, GPUCollectorOptions{Info: true, Version: "test"})
	if n := testutil.CollectAndCount(g.c, "tokenwatt_energy_exporter_info", "tokenwatt_gpu_up", "tokenwatt_energy_source_up"); n != 3 {
		t.Errorf("%d metrics before the first sample, want the info metric, gpu_up and energy_source_up", n)
	}
	if src, gpus := upValues(t, g.c); src != 0 || !slices.Equal(gpus, []float64{0}) {
		t.Errorf("before the first read: source up %v, GPUs up %v; want 0 and [0]", src, gpus)
	}
	want := `# HELP tokenwatt_energy_exporter_info Always 1; labels name the energy source, its energy method (counter, integrated or mixed) and tokenwatt's version.
# TYPE tokenwatt_energy_exporter_info gauge
tokenwatt_energy_exporter_info{method="integrated",source="fake",version="test"} 1
`
	if err := testutil.CollectAndCompare(g.c, strings.NewReader(want), "tokenwatt_energy_exporter_info"); err != nil {
		t.Error(err)
	}
}

func TestGPUCollectorCounterResets(t *testing.T) {
	g := newGPUTest(MethodCounter, 1, GPUCollectorOptions{})
	for _, tc := range []struct {
		counter float64
		want    float64
		why     string
	}{
		{1000, 0, "the total starts at zero"},
		{1500, 500, "increase"},
		{1490, 500, "a small step back is a non-monotonic read: nothing added"},
		{1600, 600, "counted from the high-water mark"},
		{100, 600, "a drop: held until the next reading tells a reset from a glitch"},
		{300, 900, "still low: a reset, counted from the new zero"},
		{0, 900, "a second drop to zero, held"},
		{50, 950, "a reset again"},
	} {
		g.src.push(testReading(tc.counter, 200))
		g.step(t)
		if got := energyOf(t, g.c, 0); got != tc.want {
			t.Errorf("counter %v: exported %v, want %v (%s)", tc.counter, got, tc.want, tc.why)
		}
	}
	if n := g.logs.count("a reset"); n != 2 {
		t.Errorf("logged %d resets, want 2: %q", n, g.logs.lines)
	}
}

func TestGPUCollectorIntegratesPowerOnlyGPUs(t *testing.T) {
	g := newGPUTest(MethodIntegrated, 1, GPUCollectorOptions{})
	nan := math.NaN()
	for _, tc := range []struct {
		power   float64
		advance time.Duration
		want    float64
	}{
		{100, time.Second, 0},
		{200, time.Second, 150},     // (100+200)/2 × 1 s
		{200, 2 * time.Second, 550}, // a missed sample: 200 × 2 s
		{nan, time.Second, 550},     // no power: nothing added
		{300, time.Second, 1050},    // (200+300)/2 × 2 s since the last power
		{-5, time.Second, 1050},     // garbage power: nothing added
		{100, time.Second, 1450},    // (300+100)/2 × 2 s
	} {
		g.src.push(testReading(nan, tc.power))
		g.clock.advance(tc.advance)
		g.sampler.Read(t.Context())
		if got := energyOf(t, g.c, 0); got != tc.want {
			t.Errorf("power %v after %v: exported %v J, want %v", tc.power, tc.advance, got, tc.want)
		}
		gotP := gpuValue(t, g.c, "tokenwatt_gpu_power_watts", 0)
		if usable(tc.power) != (gotP == tc.power) || usable(tc.power) == math.IsNaN(gotP) {
			t.Errorf("power %v: exported %v", tc.power, gotP)
		}
	}
}

func TestGPUCollectorOmitsAFailingGPUAndLogsOncePerStreak(t *testing.T) {
	g := newGPUTest(MethodCounter, 2, GPUCollectorOptions{})
	g.src.push(testReading(1000, 300), testReading(2000, 300))
	g.step(t)
	for range 3 {
		g.src.push(testReading(1100, 300), failed("nvml: gpu 1: energy: GPU is lost"))
		g.step(t)
		if !math.IsNaN(energyOf(t, g.c, 1)) || !math.IsNaN(gpuValue(t, g.c, "tokenwatt_gpu_power_watts", 1)) {
			t.Fatal("a failing GPU is exported")
		}
		if energyOf(t, g.c, 0) != 100 {
			t.Fatal("the GPU that answers is not exported")
		}
		if src, gpus := upValues(t, g.c); src != 1 || !slices.Equal(gpus, []float64{1, 0}) {
			t.Fatalf("one GPU failing: source up %v, GPUs up %v; want 1 and [1 0]", src, gpus)
		}
	}
	if n := g.logs.count("gpu 1 (GPU-test-1): nvml: gpu 1: energy: GPU is lost; no readings"); n != 1 {
		t.Errorf("logged the failure %d times, want once: %q", n, g.logs.lines)
	}
	// It answers again, with the energy it used meanwhile.
	g.src.push(testReading(1200, 300), testReading(2500, 300))
	g.step(t)
	if got := energyOf(t, g.c, 1); got != 500 {
		t.Errorf("after recovery: %v J, want 500", got)
	}
	if _, gpus := upValues(t, g.c); !slices.Equal(gpus, []float64{1, 1}) {
		t.Errorf("after recovery: GPUs up %v", gpus)
	}
	if n := g.logs.count("gpu 1 (GPU-test-1) answers again"); n != 1 {
		t.Errorf("logged the recovery %d times: %q", n, g.logs.lines)
	}
	// A second streak logs again.
	g.src.push(testReading(1300, 300), failed("nvml: gpu 1: energy: GPU is lost"))
	g.step(t)
	g.step(t)
	if n := g.logs.count("GPU is lost; no readings"); n != 2 {
		t.Errorf("logged %d failures over two streaks, want 2: %q", n, g.logs.lines)
	}
}

func TestGPUCollectorOmitsEveryGPUWhenTheSourceFails(t *testing.T) {
	g := newGPUTest(MethodCounter, 2, GPUCollectorOptions{Info: true})
	g.src.push(testReading(1000, 300), testReading(2000, 300))
	g.step(t)
	g.src.mu.Lock()
	g.src.err = errors.New("scrape: connection refused")
	g.src.mu.Unlock()
	g.step(t)
	g.step(t)
	if n := testutil.CollectAndCount(g.c, "tokenwatt_energy_exporter_info", "tokenwatt_gpu_up", "tokenwatt_energy_source_up", "tokenwatt_gpu_energy_joules_total", "tokenwatt_gpu_power_watts"); n != 4 {
		t.Errorf("%d metrics while the source fails, want the info metric and the up gauges only", n)
	}
	if src, gpus := upValues(t, g.c); src != 0 || !slices.Equal(gpus, []float64{0, 0}) {
		t.Errorf("source failing: source up %v, GPUs up %v; want 0 and [0 0]", src, gpus)
	}
	if n := g.logs.count("connection refused"); n != 1 || len(g.logs.lines) != 1 {
		t.Errorf("logged %d times, want once and nothing per GPU: %q", n, g.logs.lines)
	}
	g.src.mu.Lock()
	g.src.err = nil
	g.src.mu.Unlock()
	g.step(t)
	if n := testutil.CollectAndCount(g.c, "tokenwatt_energy_exporter_info", "tokenwatt_gpu_up", "tokenwatt_energy_source_up", "tokenwatt_gpu_energy_joules_total", "tokenwatt_gpu_power_watts"); n != 8 || g.logs.count("fake answers again") != 1 || len(g.logs.lines) != 2 {
		t.Errorf("%d metrics after recovery (want 8), logs %q", n, g.logs.lines)
	}
	if src, gpus := upValues(t, g.c); src != 1 || !slices.Equal(gpus, []float64{1, 1}) {
		t.Errorf("after recovery: source up %v, GPUs up %v", src, gpus)
	}
	// A source that returns the wrong number of readings fails as a whole.
	g.src.push(testReading(1000, 300))
	g.step(t)
	if n := g.logs.count("returned 1 readings for 2 GPUs"); n != 1 {
		t.Errorf("short read not logged: %q", g.logs.lines)
	}
	if src, _ := upValues(t, g.c); src != 0 {
		t.Error("a short read leaves the source up")
	}
}

func TestGPUCollectorOmitsStaleGPUs(t *testing.T) {
	g := newGPUTest(MethodCounter, 1, GPUCollectorOptions{})
	g.src.push(testReading(1000, 300))
	g.step(t)
	// Fresh for three 1 s intervals plus one bounded read (1 s).
	g.clock.advance(4 * time.Second)
	if energyOf(t, g.c, 0) != 0 {
		t.Error("a reading three intervals and a read bound old is omitted")
	}
	if src, gpus := upValues(t, g.c); src != 1 || gpus[0] != 1 {
		t.Errorf("three intervals and a read bound old: source up %v, GPU up %v; want 1, 1", src, gpus)
	}
	g.clock.advance(time.Millisecond)
	for range 3 {
		if !math.IsNaN(energyOf(t, g.c, 0)) {
			t.Fatal("a reading older than three intervals and a read bound is exported")
		}
	}
	if src, gpus := upValues(t, g.c); src != 0 || gpus[0] != 0 {
		t.Errorf("stale: source up %v, GPU up %v; want 0, 0", src, gpus)
	}
	if n := g.logs.count("no reading for 4.001s"); n != 1 {
		t.Errorf("stale GPU logged %d times, want once: %q", n, g.logs.lines)
	}
	// A fresh reading brings it back; going stale again is told again.
	g.step(t)
	if energyOf(t, g.c, 0) != 0 {
		t.Error("a fresh reading is omitted")
	}
	g.clock.advance(5 * time.Second)
	energyOf(t, g.c, 0)
	if n := g.logs.count("no reading for"); n != 2 {
		t.Errorf("stale logged %d times over two stretches, want 2: %q", n, g.logs.lines)
	}
}

// A scrape never waits on the GPU: with the sampler stuck in a read,
// Collect answers at once from the last tick, until that tick is stale.
func TestGPUCollectorScrapeDoesNotWaitForARead(t *testing.T) {
	g := newGPUTest(MethodCounter, 1, GPUCollectorOptions{Info: true})
	g.src.push(testReading(1000, 300))
	g.src.push(testReading(1100, 300))
	g.step(t)
	g.step(t)

	blocked := make(chan struct{})
	g.src.mu.Lock()
	g.src.block, g.src.blocked = make(chan struct{}), blocked
	g.src.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); g.sampler.Read(ctx) }()
	<-blocked

	start := time.Now()
	if got := energyOf(t, g.c, 0); got != 100 {
		t.Errorf("while a read hangs: %v J, want the last tick's 100", got)
	}
	if got := gpuValue(t, g.c, "tokenwatt_gpu_power_watts", 0); got != 300 {
		t.Errorf("while a read hangs: %v W, want 300", got)
	}
	g.clock.advance(4*time.Second + time.Millisecond)
	if n := testutil.CollectAndCount(g.c, "tokenwatt_energy_exporter_info", "tokenwatt_gpu_up", "tokenwatt_energy_source_up", "tokenwatt_gpu_energy_joules_total", "tokenwatt_gpu_power_watts"); n != 3 {
		t.Errorf("%d metrics once the hung read made the GPU stale, want the info metric and the up gauges", n)
	}
	if src, gpus := upValues(t, g.c); src != 0 || gpus[0] != 0 {
		t.Errorf("a hung read: source up %v, GPU up %v; want 0, 0", src, gpus)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("scrapes took %v", d)
	}
	cancel()
	<-done
	if got := g.sampler.Latest().Samples[0].EnergyJ; got != 100 {
		t.Errorf("the canceled read changed the tick: %v J", got)
	}
	if len(g.logs.lines) != 1 || g.logs.count("no reading for 4.001s") != 1 {
		t.Errorf("logs %q, want only the stale line (a canceled read is no failure)", g.logs.lines)
	}
}

// The daemon's wiring: Sampler.Run feeds the collector until canceled.
func TestGPUCollectorServesSamplerRun(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	src.push(testReading(1000, 300), testReading(2000, 300))
	src.push(testReading(1000, 300), testReading(2250, 300))
	s := NewSampler(src, 5*time.Millisecond)
	c := NewGPUCollector(s, GPUCollectorOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		src.mu.Lock()
		reads := src.reads
		src.mu.Unlock()
		if reads >= 3 && energyOf(t, c, 1) == 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d reads, gpu 1 exports %v", reads, energyOf(t, c, 1))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
