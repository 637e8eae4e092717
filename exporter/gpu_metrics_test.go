package exporter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
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
	block   chan struct{} // when set, Read waits for it to close
	reads   int
	closed  bool
	started chan struct{} // closed by the first Read
}

func testDevices(n int) []Device {
	var ds []Device
	for i := range n {
		ds = append(ds, Device{Index: i, UUID: fmt.Sprintf("GPU-test-%d", i), Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host"})
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
	if s.started != nil && s.reads == 1 {
		close(s.started)
	}
	block := s.block
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

// fakeClock is the collector's clock in tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// logRecorder collects Logf lines.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (l *logRecorder) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
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

// newTestCollector returns a collector of src on a fake clock, sampling
// every second.
func newTestCollector(src *gpuTestSource, logs *logRecorder) (*GPUCollector, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	opts := GPUCollectorOptions{Interval: time.Second, Version: "test"}
	if logs != nil {
		opts.Logf = logs.logf
	}
	c := NewGPUCollector(src, opts)
	c.now = clock.now
	return c, clock
}

// step advances the clock one interval and samples once.
func step(t *testing.T, c *GPUCollector, clock *fakeClock) {
	t.Helper()
	clock.advance(time.Second)
	c.sample(t.Context())
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

func TestGPUCollectorExpositionGolden(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	src.push(testReading(1000, 300), testReading(2000.5, 310.25))
	c, _ := newTestCollector(src, nil)
	c.sample(t.Context())
	f, err := os.Open("testdata/gpu_metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := testutil.CollectAndCompare(c, f); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestGPUCollectorBeforeTheFirstSampleExportsOnlyInfo(t *testing.T) {
	src := &gpuTestSource{method: MethodIntegrated, devices: testDevices(1)}
	c, _ := newTestCollector(src, nil)
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d metrics before the first sample, want the info metric only", n)
	}
	want := `# HELP tokenwatt_energy_exporter_info Always 1; labels name the energy source, its energy method (counter or integrated) and tokenwatt's version.
# TYPE tokenwatt_energy_exporter_info gauge
tokenwatt_energy_exporter_info{method="integrated",source="fake",version="test"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "tokenwatt_energy_exporter_info"); err != nil {
		t.Error(err)
	}
}

func TestGPUCollectorCounterResets(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(1)}
	logs := &logRecorder{}
	c, clock := newTestCollector(src, logs)
	for _, tc := range []struct {
		counter float64
		want    float64
		why     string
	}{
		{1000, 1000, "the total starts at the counter"},
		{1500, 1500, "increase"},
		{1490, 1500, "a small step back is a non-monotonic read: nothing added"},
		{1600, 1600, "counted from the high-water mark"},
		{100, 1700, "a reset: counted from the new zero"},
		{300, 1900, "after the reset"},
		{0, 1900, "a second reset to zero"},
		{50, 1950, "after it"},
	} {
		src.push(testReading(tc.counter, 200))
		step(t, c, clock)
		if got := energyOf(t, c, 0); got != tc.want {
			t.Errorf("counter %v: exported %v, want %v (%s)", tc.counter, got, tc.want, tc.why)
		}
	}
	if n := logs.count("a reset"); n != 2 {
		t.Errorf("logged %d resets, want 2: %q", n, logs.lines)
	}
}

func TestGPUCollectorIntegratesPowerOnlyGPUs(t *testing.T) {
	src := &gpuTestSource{method: MethodIntegrated, devices: testDevices(1)}
	c, clock := newTestCollector(src, nil)
	nan := math.NaN()
	for _, tc := range []struct {
		power   float64
		advance time.Duration
		want    float64
	}{
		{100, time.Second, 0},
		{200, time.Second, 150},      // (100+200)/2 × 1 s
		{200, 2 * time.Second, 550},  // a missed sample: 200 × 2 s
		{nan, time.Second, 550},      // no power: nothing added
		{300, time.Second, 1050},     // (200+300)/2 × 2 s since the last power
		{300, 4 * time.Second, 1050}, // a gap over three intervals is not guessed
		{100, time.Second, 1250},     // (300+100)/2 × 1 s
	} {
		src.push(testReading(nan, tc.power))
		clock.advance(tc.advance)
		c.sample(t.Context())
		if got := energyOf(t, c, 0); got != tc.want {
			t.Errorf("power %v after %v: exported %v J, want %v", tc.power, tc.advance, got, tc.want)
		}
	}
}

func TestGPUCollectorOmitsAFailingGPUAndLogsOncePerStreak(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	logs := &logRecorder{}
	c, clock := newTestCollector(src, logs)
	src.push(testReading(1000, 300), testReading(2000, 300))
	step(t, c, clock)
	for range 3 {
		src.push(testReading(1100, 300), failed("nvml: gpu 1: energy: GPU is lost"))
		step(t, c, clock)
		if !math.IsNaN(energyOf(t, c, 1)) || !math.IsNaN(gpuValue(t, c, "tokenwatt_gpu_power_watts", 1)) {
			t.Fatal("a failing GPU is exported")
		}
		if energyOf(t, c, 0) != 1100 {
			t.Fatal("the GPU that answers is not exported")
		}
	}
	if n := logs.count("gpu 1 (GPU-test-1): nvml: gpu 1: energy: GPU is lost; omitted"); n != 1 {
		t.Errorf("logged the failure %d times, want once: %q", n, logs.lines)
	}
	// It answers again, with the energy it used meanwhile.
	src.push(testReading(1200, 300), testReading(2500, 300))
	step(t, c, clock)
	if got := energyOf(t, c, 1); got != 2500 {
		t.Errorf("after recovery: %v J, want 2500", got)
	}
	if n := logs.count("gpu 1 (GPU-test-1) answers again"); n != 1 {
		t.Errorf("logged the recovery %d times: %q", n, logs.lines)
	}
	// A second streak logs again.
	src.push(testReading(1300, 300), failed("nvml: gpu 1: energy: GPU is lost"))
	step(t, c, clock)
	step(t, c, clock)
	if n := logs.count("GPU is lost; omitted"); n != 2 {
		t.Errorf("logged %d failures over two streaks, want 2: %q", n, logs.lines)
	}
}

func TestGPUCollectorOmitsEveryGPUWhenTheSourceFails(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	logs := &logRecorder{}
	c, clock := newTestCollector(src, logs)
	src.push(testReading(1000, 300), testReading(2000, 300))
	step(t, c, clock)
	src.mu.Lock()
	src.err = errors.New("scrape: connection refused")
	src.mu.Unlock()
	step(t, c, clock)
	step(t, c, clock)
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d metrics while the source fails, want the info metric only", n)
	}
	if n := logs.count("connection refused"); n != 1 {
		t.Errorf("logged %d times, want once: %q", n, logs.lines)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	step(t, c, clock)
	if n := testutil.CollectAndCount(c); n != 5 || logs.count("fake answers again") != 1 {
		t.Errorf("%d metrics after recovery (want 5), logs %q", n, logs.lines)
	}
	// A source that returns the wrong number of readings fails as a whole.
	src.push(testReading(1000, 300))
	step(t, c, clock)
	if n := logs.count("returned 1 readings for 2 GPUs"); n != 1 {
		t.Errorf("short read not logged: %q", logs.lines)
	}
}

func TestGPUCollectorOmitsStaleGPUs(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(1)}
	logs := &logRecorder{}
	c, clock := newTestCollector(src, logs)
	src.push(testReading(1000, 300))
	step(t, c, clock)
	clock.advance(3 * time.Second)
	if energyOf(t, c, 0) != 1000 {
		t.Error("a reading three intervals old is omitted")
	}
	clock.advance(time.Millisecond)
	for range 3 {
		if !math.IsNaN(energyOf(t, c, 0)) {
			t.Fatal("a reading over three intervals old is exported")
		}
	}
	if n := logs.count("no reading for 3.001s"); n != 1 {
		t.Errorf("stale GPU logged %d times, want once: %q", n, logs.lines)
	}
}

// A scrape never waits on the GPU: with the sampler stuck in a read,
// Collect returns at once, and the GPU goes stale.
func TestGPUCollectorScrapeDoesNotWaitForARead(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(1),
		block: make(chan struct{}), started: make(chan struct{})}
	c := NewGPUCollector(src, GPUCollectorOptions{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	<-src.started
	start := time.Now()
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d metrics while the first read hangs, want the info metric", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Collect took %v", d)
	}
	cancel()
	<-done
}

func TestGPUCollectorRunSamplesUntilCanceled(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	src.push(testReading(1000, 300), testReading(2000, 300))
	c := NewGPUCollector(src, GPUCollectorOptions{Interval: 5 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		src.mu.Lock()
		reads := src.reads
		src.mu.Unlock()
		if reads >= 3 && energyOf(t, c, 1) == 2000 {
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
