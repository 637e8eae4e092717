package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tokenwatt/tokenwatt/energy"
)

// syncBuffer is a bytes.Buffer safe for the CLI's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeSource is a GPU source whose devices can be made to fail.
type fakeSource struct {
	mu      sync.Mutex
	energy  []float64
	failing []bool
	closed  bool
}

func (s *fakeSource) Name() string   { return "fake" }
func (s *fakeSource) Method() string { return energy.MethodCounter }
func (s *fakeSource) Devices() []energy.Device {
	var ds []energy.Device
	for i := range s.energy {
		ds = append(ds, energy.Device{Index: i, UUID: fmt.Sprintf("GPU-fake-%d", i), Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-host"})
	}
	return ds
}
func (s *fakeSource) Read(ctx context.Context, dst []energy.Reading) ([]energy.Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.energy {
		if s.failing[i] {
			dst = append(dst, energy.Reading{Time: time.Now(), Err: fmt.Errorf("fake: gpu %d: GPU is lost", i)})
			continue
		}
		s.energy[i] += 10
		dst = append(dst, energy.Reading{Time: time.Now(), EnergyJ: s.energy[i], PowerW: 250})
	}
	return dst, nil
}
func (s *fakeSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
func (s *fakeSource) fail(gpu int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[gpu] = true
}

// startInProcess runs the CLI with src injected and returns the address
// it serves on, its stderr, and a stop function that returns the exit
// code.
func startInProcess(t *testing.T, src energy.Source, args ...string) (string, *syncBuffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	stderr := &syncBuffer{}
	addr := make(chan string, 1)
	e := &env{ctx: ctx, stdout: io.Discard, stderr: stderr,
		open: func(_ context.Context, spec string, _ energy.SourceOptions) (energy.Source, string, error) {
			return src, "energy: " + spec + " chose fake", nil
		},
		listening: func(a string) { addr <- a },
	}
	code := make(chan int, 1)
	go func() { code <- run(e, append([]string{"--listen", "127.0.0.1:0"}, args...)) }()
	select {
	case a := <-addr:
		return a, stderr, func() int { cancel(); return <-code }
	case c := <-code:
		cancel()
		t.Fatalf("exited %d before serving: %s", c, stderr)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("not serving after 10s: %s", stderr)
	}
	return "", nil, nil
}

func getMetrics(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pollMetrics GETs /metrics until ok accepts the body.
func pollMetrics(t *testing.T, url string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := getMetrics(t, url)
		if ok(body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out polling %s; last body:\n%s", url, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const gpu1Series = `tokenwatt_gpu_energy_joules_total{gpu="1",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-fake-1"}`

func TestServesGPUMetricsAndSurvivesAGPUThatStopsAnswering(t *testing.T) {
	src := &fakeSource{energy: []float64{1000, 2000}, failing: []bool{false, false}}
	addr, stderr, stop := startInProcess(t, src, "--source", "auto", "--interval", "20ms")
	url := "http://" + addr + "/metrics"

	body := pollMetrics(t, url, func(b string) bool { return strings.Contains(b, gpu1Series) })
	for _, want := range []string{
		`tokenwatt_gpu_power_watts{gpu="0",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-fake-0"} 250`,
		`tokenwatt_energy_exporter_info{method="counter",source="fake",version="dev"} 1`,
		`tokenwatt_energy_source_up{source="fake"} 1`,
		`tokenwatt_gpu_up{gpu="0",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-fake-0"} 1`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(stderr.String(), "energy: auto chose fake") {
		t.Errorf("the source choice is not logged: %s", stderr)
	}

	src.fail(1)
	body = pollMetrics(t, url, func(b string) bool {
		return !strings.Contains(b, gpu1Series) && strings.Contains(b, `tokenwatt_gpu_energy_joules_total{gpu="0"`)
	})
	for _, want := range []string{
		`tokenwatt_gpu_up{gpu="1",gpu_model="NVIDIA H100 80GB HBM3",hostname="gpu-host",uuid="GPU-fake-1"} 0`,
		`tokenwatt_energy_source_up{source="fake"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("with GPU 1 failing, /metrics lacks %s", want)
		}
	}
	time.Sleep(100 * time.Millisecond) // several more failed reads
	if n := strings.Count(stderr.String(), "fake: gpu 1: GPU is lost"); n != 1 {
		t.Errorf("the failure is logged %d times, want once per streak:\n%s", n, stderr)
	}

	if code := stop(); code != exitOK {
		t.Errorf("exit %d after stop, want 0:\n%s", code, stderr)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if !src.closed {
		t.Error("the source is not closed on exit")
	}
}

func TestWebConfigFileIsApplied(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "web.yml")
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("basic_auth_users:\n  tokenwatt: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{energy: []float64{1}, failing: []bool{false}}
	addr, stderr, stop := startInProcess(t, src, "--web.config.file", cfg)
	defer stop()
	if code, _ := getMetrics(t, "http://"+addr+"/metrics"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without credentials: %d, want 401\n%s", code, stderr)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.SetBasicAuth("tokenwatt", "secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /metrics with credentials: %d, want 200", resp.StatusCode)
	}
}

func TestBadInputExits2WithOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	missing := filepath.Join(t.TempDir(), "web.yml")
	noGPU := func(context.Context, string, energy.SourceOptions) (energy.Source, string, error) {
		return nil, "energy: auto chose none: dcgm: libdcgm.so.4 not found; nvml: libnvidia-ml.so.1 not found", nil
	}
	fake := func(context.Context, string, energy.SourceOptions) (energy.Source, string, error) {
		return &fakeSource{energy: []float64{1}, failing: []bool{false}}, "", nil
	}
	for _, tc := range []struct {
		name string
		args []string
		open openFunc
		want string
	}{
		{"interval", []string{"--interval", "1ms"}, fake, "--interval 1ms: must be at least 10ms"},
		{"unparsable interval", []string{"--interval", "soon"}, fake, "--interval"},
		{"unknown flag", []string{"--sorce", "nvml"}, fake, "unknown flag --sorce"},
		{"source none", []string{"--source", "none"}, fake, "--source none: an energy exporter needs a GPU source"},
		{"unknown source", []string{"--source", "dcmg"}, energy.OpenSource, `energy source "dcmg": unknown`},
		{"auto finds nothing", nil, noGPU, "energy: auto chose none: dcgm: libdcgm.so.4 not found; nvml: libnvidia-ml.so.1 not found; nothing to export"},
		{"busy address", []string{"--listen", busy.Addr().String()}, fake, "--listen " + busy.Addr().String()},
		{"missing web config", []string{"--web.config.file", missing}, fake, "--web.config.file " + missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(&env{ctx: t.Context(), stdout: io.Discard, stderr: &stderr, open: tc.open}, tc.args)
			if code != exitUsage {
				t.Errorf("exit %d, want 2", code)
			}
			wantOneErrorLine(t, stderr.String(), tc.want)
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var stdout bytes.Buffer
		if code := run(&env{ctx: t.Context(), stdout: &stdout, stderr: io.Discard}, args); code != exitOK || stdout.String() != "energy-exporter dev\n" {
			t.Errorf("%v: exit %d, %q", args, code, stdout.String())
		}
	}
}

func wantOneErrorLine(t *testing.T, stderr string, want ...string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "energy-exporter: ") {
		t.Errorf("stderr is not one energy-exporter: line:\n%s", stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr %q does not say %q", stderr, w)
		}
	}
	for _, bad := range []string{"panic", "goroutine"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr has %q:\n%s", bad, stderr)
		}
	}
}

// The built binary, on a host without GPU libraries.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildExporter compiles the command once per test run.
func buildExporter(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "energy-exporter-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "energy-exporter")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// The real binary serves what it reads and stops cleanly on SIGTERM.
// Without a GPU here, its source is another exporter's /metrics
// (scrape:URL, which works but is not advertised).
func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	bin := buildExporter(t)
	// The upstream counter grows 10 J a scrape; this exporter serves the
	// energy since its own first read, so a multiple of 10 J.
	var mu sync.Mutex
	upstreamJ := 4321
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamJ += 10
		j := upstreamJ
		mu.Unlock()
		fmt.Fprintf(w, `# TYPE tokenwatt_gpu_energy_joules_total counter
tokenwatt_gpu_energy_joules_total{gpu="0",uuid="GPU-up-0",gpu_model="NVIDIA L4",hostname="up"} %d
# TYPE tokenwatt_gpu_power_watts gauge
tokenwatt_gpu_power_watts{gpu="0",uuid="GPU-up-0",gpu_model="NVIDIA L4",hostname="up"} 71.5
`, j)
	}))
	defer upstream.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(bin, "--source", "scrape:"+upstream.URL+"/metrics", "--interval", "50ms", "--listen", addr)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://" + addr + "/metrics"
	deadline := time.Now().Add(20 * time.Second)
	var body string
	for !strings.Contains(body, `tokenwatt_gpu_power_watts{gpu="0",gpu_model="NVIDIA L4",hostname="up",uuid="GPU-up-0"} 71.5`) {
		if time.Now().After(deadline) {
			t.Fatalf("not serving the upstream GPU after 20s; body:\n%s\nstderr:\n%s", body, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
	}
	const energySeries = `tokenwatt_gpu_energy_joules_total{gpu="0",gpu_model="NVIDIA L4",hostname="up",uuid="GPU-up-0"} `
	i := strings.Index(body, energySeries)
	if i < 0 {
		t.Fatalf("energy not served:\n%s", body)
	}
	var joules float64
	if _, err := fmt.Sscan(body[i+len(energySeries):], &joules); err != nil || joules < 0 || math.Mod(joules, 10) != 0 {
		t.Errorf("energy %v (%v), want the upstream's increase since the first read, a multiple of 10 J", joules, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM\n%s", stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "panic") || strings.Contains(s, "goroutine") {
		t.Errorf("stderr:\n%s", s)
	}
}
