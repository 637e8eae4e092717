package run

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// testConfig is a small simulated run with simulated energy and no idle
// baseline, writing into a temporary directory.
func testConfig(t *testing.T, n int) Config {
	t.Helper()
	simCfg := sim.DefaultConfig()
	simCfg.TTFT, simCfg.ITL = 2*time.Millisecond, time.Millisecond
	max, min := 8, 0
	return Config{
		Scenario: &scenario.Scenario{Name: "lib-test", Backend: "vllm", Dataset: "synthetic:mean=20,n=20",
			NumSamples: n, Concurrency: 2, MaxTokens: max, MinTokens: min},
		Sim: &simCfg, Out: t.TempDir(), CarbonIntensity: 475, Grace: time.Second, Version: "test",
		Energy: energy.SourceAuto, EnergyInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		n++
	}
	return n
}

// A whole run in process: Start, Run, Close; the records, the energy
// samples and the summary row are written, and energy is attributed.
func TestRunInProcess(t *testing.T) {
	cfg := testConfig(t, 12)
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Simulated() || r.ID() == "" || r.Scenario().Endpoint == "" {
		t.Fatalf("started run: simulated %v, id %q, endpoint %q", r.Simulated(), r.ID(), r.Scenario().Endpoint)
	}
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The run's registry carries the GPU collector's health gauges.
	for name, want := range map[string]int{"tokenwatt_gpu_up": 1, "tokenwatt_energy_source_up": 1} {
		if n, err := testutil.GatherAndCount(r.metrics.Registry(), name); n != want || err != nil {
			t.Errorf("%d %s series (%v), want %d", n, name, err, want)
		}
	}
	r.Close()
	r.Close() // twice is harmless
	if res.Requests != 12 || res.OK != 12 || res.StopReason != loadgen.StopCount || res.RecordsErr != nil {
		t.Fatalf("result %+v", res)
	}
	if got := countLines(t, res.RecordsPath); got != 12 {
		t.Errorf("%d records, want 12", got)
	}
	if got := countLines(t, filepath.Join(res.RunDir, energy.FileName)); got < 2 {
		t.Errorf("energy.jsonl has %d lines, want a header and samples", got)
	}
	if got := countLines(t, res.SummaryPath); got != 2 {
		t.Errorf("summary.csv has %d lines, want the header and one row", got)
	}
	row := res.Row
	if row.TotalPrompts != 12 || row.GPUEnergyWh == nil || *row.GPUEnergyWh <= 0 || !row.Simulated {
		t.Errorf("row: %d prompts, energy %v Wh, simulated %v", row.TotalPrompts, row.GPUEnergyWh, row.Simulated)
	}
}

// Bad input stops Start before anything is sent, as an InputError, and
// whatever was opened is released: the metrics address is free again and
// no records file is created.
func TestStartFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t, 1)
	cfg.MetricsAddr = busy.Addr().String()
	_, err = Start(t.Context(), cfg)
	var input *InputError
	if !errors.As(err, &input) || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("busy metrics address: %v, want an InputError naming --metrics-addr", err)
	}

	// An unreachable endpoint, after the metrics address was bound.
	cfg = testConfig(t, 1)
	cfg.Sim, cfg.Energy = nil, energy.SourceNone
	cfg.Scenario.Endpoint = "http://" + busy.Addr().String() + "/v1"
	busy.Close()
	cfg.MetricsAddr = "127.0.0.1:0"
	_, err = Start(t.Context(), cfg)
	if !errors.As(err, &input) || !strings.Contains(err.Error(), "cannot reach the endpoint") {
		t.Fatalf("unreachable endpoint: %v", err)
	}
	if found, _ := filepath.Glob(filepath.Join(cfg.Out, "*", loadgen.RecordsFileName)); len(found) > 0 {
		t.Errorf("a run that never started left a records file: %v", found)
	}

	// --energy sim without the simulator names the fix.
	cfg = testConfig(t, 1)
	cfg.Sim, cfg.Energy = nil, energy.SourceSim
	if _, err := Start(t.Context(), cfg); !errors.As(err, &input) || !strings.Contains(err.Error(), "--energy sim needs --sim") {
		t.Fatalf("--energy sim without --sim: %v", err)
	}
}

// A context that ends during the idle baseline stops the run before it
// sends anything, with ErrInterruptedIdle.
func TestRunInterruptedDuringIdleBaseline(t *testing.T) {
	cfg := testConfig(t, 5)
	cfg.IdleBaseline = time.Minute
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := r.Run(ctx); !errors.Is(err, ErrInterruptedIdle) {
		t.Fatalf("Run: %v, want ErrInterruptedIdle", err)
	}
	if sent := r.Progress().Sent.Load(); sent != 0 {
		t.Errorf("%d requests sent while measuring the idle baseline", sent)
	}
}

// The run records which GPUs it measured and how they were chosen, and
// warns, in the summary, when it counted several GPUs of a scrape source
// without being told which serve the model.
func TestRunRecordsTheGPUsItMeasured(t *testing.T) {
	// --sim: every simulated GPU serves the simulated model.
	cfg := testConfig(t, 2)
	cfg.Sim.GPUs = 2
	res := runOnce(t, cfg)
	if got := res.Row.GPUUUIDs; got != "SIM-1-0 SIM-1-1" || res.Row.GPUSelection != "all" || res.Row.EnergyWarning != "" {
		t.Errorf("--sim with 2 GPUs: uuids %q, selection %q, warning %q", got, res.Row.GPUSelection, res.Row.EnergyWarning)
	}

	// A separate 3-GPU simulator read through scrape:.
	simCfg := sim.DefaultConfig()
	simCfg.TTFT, simCfg.ITL, simCfg.GPUs = 2*time.Millisecond, time.Millisecond, 3
	srv, err := sim.Start(t.Context(), "127.0.0.1:0", simCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	scrape := func(gpus string) Config {
		cfg := testConfig(t, 2)
		cfg.Sim = nil
		cfg.Scenario.Endpoint = srv.URL + "/v1"
		cfg.Energy, cfg.GPUs = "scrape:"+srv.URL+"/metrics", gpus
		return cfg
	}
	res = runOnce(t, scrape(""))
	if res.Row.GPUUUIDs != "SIM-1-0 SIM-1-1 SIM-1-2" || !strings.Contains(res.Row.EnergyWarning, "counting all 3 GPUs") {
		t.Errorf("scrape, no --gpus: uuids %q, warning %q; want all 3 and a warning", res.Row.GPUUUIDs, res.Row.EnergyWarning)
	}
	res = runOnce(t, scrape("1"))
	if res.Row.GPUUUIDs != "SIM-1-1" || res.Row.GPUSelection != "--gpus" || res.Row.EnergyWarning != "" || *res.Row.GPUs != 1 {
		t.Errorf("scrape --gpus 1: uuids %q, selection %q, warning %q", res.Row.GPUUUIDs, res.Row.GPUSelection, res.Row.EnergyWarning)
	}
	// energy.jsonl's first line records the same choice.
	f, err := os.Open(filepath.Join(res.RunDir, energy.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := bufio.NewScanner(f)
	first.Scan()
	var hdr struct {
		Selection string `json:"_gpu_selection"`
		Devices   []struct {
			UUID string `json:"uuid"`
		} `json:"_devices"`
	}
	if err := json.Unmarshal(first.Bytes(), &hdr); err != nil || hdr.Selection != "--gpus" || len(hdr.Devices) != 1 || hdr.Devices[0].UUID != "SIM-1-1" {
		t.Errorf("energy.jsonl header %s: %+v, %v", first.Text(), hdr, err)
	}

	// A --gpus that names no GPU stops the run before it starts.
	_, err = Start(t.Context(), scrape("GPU-nope"))
	var input *InputError
	if !errors.As(err, &input) || !strings.Contains(err.Error(), "GPU-nope") {
		t.Fatalf("--gpus GPU-nope: %v, want an InputError naming it", err)
	}
	cfg = testConfig(t, 1)
	cfg.GPUs = "0,,1"
	if _, err := Start(t.Context(), cfg); !errors.As(err, &input) || !strings.Contains(err.Error(), "--gpus") {
		t.Fatalf("--gpus 0,,1: %v", err)
	}
}

func runOnce(t *testing.T, cfg Config) *Result {
	t.Helper()
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return res
}
