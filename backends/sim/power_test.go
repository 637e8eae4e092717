package sim

import (
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func relClose(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestPowerMeterExact integrates a hand-made schedule of running counts
// and tokens on a fake clock.
func TestPowerMeterExact(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &fakeClock{t: t0}
	m := newPowerMeter(Config{IdleWatts: 100, WattsPerSeq: 50, JoulesPerToken: 0.5}, clk.now)
	at := func(d time.Duration) { clk.set(t0.Add(d)) }

	at(time.Second)
	m.setRunning(1)
	m.addToken()
	m.addToken()
	at(3 * time.Second)
	m.setRunning(2)
	m.addToken()
	at(3500 * time.Millisecond)
	// 100 W × 3.5 s + 50 W × (1 seq × 2 s + 2 seq × 0.5 s) + 0.5 J × 3 tokens
	if j, w := m.read(); j != 350+150+1.5 || w != 200 {
		t.Errorf("at 3.5 s: %v J, %v W; want 501.5 J, 200 W", j, w)
	}
	at(4 * time.Second)
	m.setRunning(0)
	at(10 * time.Second)
	// 100 W × 10 s + 50 W × (1 × 2 s + 2 × 1 s) + 0.5 J × 3
	if j, w := m.read(); j != 1000+200+1.5 || w != 100 {
		t.Errorf("at 10 s: %v J, %v W; want 1201.5 J, 100 W", j, w)
	}
}

// event is one change of the running count, stamped with the time the
// power meter itself used for it.
type event struct {
	at      time.Time
	running int
}

// recordChanges makes s's power meter log every change of the running
// count with the meter's own timestamp. Call it before serving requests.
func recordChanges(s *Server) func() []event {
	var mu sync.Mutex
	var last time.Time
	var events []event
	s.power.now = func() time.Time {
		t := time.Now()
		mu.Lock()
		last = t
		mu.Unlock()
		return t
	}
	// The scheduler calls onChange under its lock and the meter reads the
	// clock inside it, so last is the stamp of this very change.
	inner := s.sched.onChange
	s.sched.onChange = func(running, waiting int) {
		inner(running, waiting)
		mu.Lock()
		events = append(events, event{last, running})
		mu.Unlock()
	}
	return func() []event {
		mu.Lock()
		defer mu.Unlock()
		return append([]event(nil), events...)
	}
}

// waitIdle waits until no sequence holds a slot: a response can reach the
// client just before its handler releases the slot.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.sched.runningNow() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sequences still running after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEnergyOfSequentialRequests checks E = 100·T + 50·busy + J·tokens
// for requests one after another, each busy from admission to release.
func TestEnergyOfSequentialRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTFT, cfg.ITL = 20*time.Millisecond, 5*time.Millisecond
	cfg.JoulesPerToken = 0.25
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changes := recordChanges(s)
	hs := httptest.NewServer(s)
	defer hs.Close()

	tokens := []int{1, 4, 7}
	for _, n := range tokens {
		postJSON(t, hs.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": n, "ignore_eos": true}), nil)
		waitIdle(t, s)
	}
	ev := changes()
	if len(ev) != 2*len(tokens) {
		t.Fatalf("running changed %d times, want %d: %v", len(ev), 2*len(tokens), ev)
	}
	busy, total := 0.0, 0
	for i, n := range tokens {
		admit, release := ev[2*i], ev[2*i+1]
		if admit.running != 1 || release.running != 0 {
			t.Fatalf("request %d: running went %d then %d, want 1 then 0", i, admit.running, release.running)
		}
		d := release.at.Sub(admit.at)
		// A sequence runs for its TTFT and ITLs, less the parsing before
		// admission (TTFT counts from arrival), plus the wake-ups: how
		// close to that is a matter of the machine's load, checked only
		// with TOKENWATT_TIMING=1. The energy formula below holds for any d.
		want := cfg.TTFT + time.Duration(n-1)*cfg.ITL
		t.Logf("request %d ran %v (schedule %v)", i, d, want)
		if d <= 0 {
			t.Errorf("request %d ran %v", i, d)
		}
		if os.Getenv("TOKENWATT_TIMING") == "1" && !raceEnabled && (d < want-10*time.Millisecond || d > want+time.Second) {
			t.Errorf("request %d ran %v, want about %v", i, d, want)
		}
		busy += d.Seconds()
		total += n
	}

	before := time.Now()
	got := s.EnergyJoules()
	after := time.Now()
	// The read's own timestamp lies in [before, after]; bracket it.
	formula := func(at time.Time) float64 {
		return 100*at.Sub(s.power.start).Seconds() + 50*busy + 0.25*float64(total)
	}
	lo, hi := formula(before), formula(after)
	if !(got >= lo*(1-1e-6) && got <= hi*(1+1e-6)) {
		t.Errorf("EnergyJoules = %v, want in [%v, %v] (100 W × T + 50 W × %v s + 0.25 J × %d)", got, lo, hi, busy, total)
	}
	// Exactly, at the read's own timestamp.
	s.power.now = func() time.Time { return after }
	if got := s.EnergyJoules(); !relClose(got, formula(after), 1e-6) {
		t.Errorf("EnergyJoules at a fixed instant = %v, want %v", got, formula(after))
	}
}

// TestEnergyOfConcurrentRequests checks that overlapping sequences each
// add WattsPerSeq: E = 100·T + 50·∫running dt, the integral taken over
// the meter's own change timestamps.
func TestEnergyOfConcurrentRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TTFT, cfg.ITL = 30*time.Millisecond, 5*time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changes := recordChanges(s)
	hs := httptest.NewServer(s)
	defer hs.Close()

	var wg sync.WaitGroup
	for _, n := range []int{10, 3, 6} {
		wg.Go(func() {
			postJSON(t, hs.URL+"/v1/completions", completionBody(map[string]any{"max_tokens": n, "ignore_eos": true}), nil)
		})
	}
	wg.Wait()
	waitIdle(t, s)
	ev := changes()
	seqSeconds, peak := 0.0, 0
	for i := 1; i < len(ev); i++ {
		seqSeconds += float64(ev[i-1].running) * ev[i].at.Sub(ev[i-1].at).Seconds()
		peak = max(peak, ev[i-1].running)
	}
	if peak < 2 || ev[len(ev)-1].running != 0 {
		t.Fatalf("changes %v: want overlapping sequences ending idle", ev)
	}
	end := time.Now()
	s.power.now = func() time.Time { return end }
	want := 100*end.Sub(s.power.start).Seconds() + 50*seqSeconds
	if got := s.EnergyJoules(); !relClose(got, want, 1e-6) {
		t.Errorf("EnergyJoules = %v, want %v", got, want)
	}
}

// TestEnergyExposition checks the simulated GPUs' series, split across
// two GPUs, against the exact text tokenwatt's energy-exporter writes.
func TestEnergyExposition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.GPUs, cfg.Seed = 2, 7
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: s.power.start.Add(10 * time.Second)}
	s.power.now = clk.now
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	labels := func(i int) string {
		return fmt.Sprintf(`gpu="%d",gpu_model="tokenwatt-sim (simulated)",hostname=%q,uuid="SIM-7-%d"`, i, host, i)
	}
	// 100 W idle for 10 s is 1000 J, 500 J and 50 W per GPU.
	want := fmt.Sprintf(`# HELP tokenwatt_energy_exporter_info Always 1: the energy source behind the tokenwatt_gpu_* series.
# TYPE tokenwatt_energy_exporter_info gauge
tokenwatt_energy_exporter_info{method="counter",simulated="true",source="sim"} 1
# HELP tokenwatt_gpu_energy_joules_total Cumulative GPU energy consumption in joules (simulated by tokenwatt-sim).
# TYPE tokenwatt_gpu_energy_joules_total counter
tokenwatt_gpu_energy_joules_total{%[1]s} 500
tokenwatt_gpu_energy_joules_total{%[2]s} 500
# HELP tokenwatt_gpu_power_watts GPU power draw in watts (simulated by tokenwatt-sim).
# TYPE tokenwatt_gpu_power_watts gauge
tokenwatt_gpu_power_watts{%[1]s} 50
tokenwatt_gpu_power_watts{%[2]s} 50
`, labels(0), labels(1))
	if err := testutil.GatherAndCompare(s.registry, strings.NewReader(want),
		"tokenwatt_energy_exporter_info", "tokenwatt_gpu_energy_joules_total", "tokenwatt_gpu_power_watts"); err != nil {
		t.Error(err)
	}

	// The served /metrics carries them too, beside the vllm:* series,
	// with values computed at scrape time.
	srv := httptest.NewServer(s)
	defer srv.Close()
	clk.set(s.power.start.Add(20 * time.Second))
	text := scrape(t, srv.URL)
	for _, line := range []string{
		"tokenwatt_gpu_energy_joules_total{" + labels(1) + "} 1000",
		"tokenwatt_gpu_power_watts{" + labels(0) + "} 50",
		`vllm:num_requests_running{model_name="tokenwatt-sim"} 0`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, text)
		}
	}
}

func TestPowerConfigValidation(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"negative IdleWatts", func(c *Config) { c.IdleWatts = -1 }, "IdleWatts"},
		{"NaN WattsPerSeq", func(c *Config) { c.WattsPerSeq = math.NaN() }, "WattsPerSeq"},
		{"infinite JoulesPerToken", func(c *Config) { c.JoulesPerToken = math.Inf(1) }, "JoulesPerToken"},
		{"negative GPUs", func(c *Config) { c.GPUs = -2 }, "GPUs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("New: %v, want an error naming %s", err, c.field)
			}
		})
	}
	d := DefaultConfig()
	if d.IdleWatts != 100 || d.WattsPerSeq != 50 || d.JoulesPerToken != 0 || d.GPUs != 1 {
		t.Errorf("DefaultConfig power model = %v W + %v W/seq + %v J/token on %d GPUs, want 100 + 50 + 0 on 1",
			d.IdleWatts, d.WattsPerSeq, d.JoulesPerToken, d.GPUs)
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Config(); got.GPUs != 1 || got.IdleWatts != 0 {
		t.Errorf("zero Config: %d GPUs, %v W idle; want 1 GPU and 0 W", got.GPUs, got.IdleWatts)
	}
}
