package dump

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/tokenwatt/tokenwatt/internal/promtest"
)

// gpuHost serves GPUs that draw steady power, each counter stamped with
// the instant it was read (so Prometheus stores it there, however late a
// scrape runs on a busy machine), in both formats dump reads:
//
// dcgm-exporter (mJ): GPU-m (200 W) has MIG on, its counter and power
// repeated on three GPU instances' series, host label hostname (4.8+);
// GPU-p (50 W), MIG off, is GPU 0 of another host with the same label;
// GPU-n (100 W) on an older exporter (Hostname) in Kubernetes mode, shared
// by two pods. 350 W on three GPUs.
//
// tokenwatt (J): GPU-a (300 W) from a loadgen whose hostname is its pod's
// name and from the node's energy-exporter, counters of different origin;
// GPU-c (100 W) and GPU-d (50 W) in two containers that both call
// themselves localhost, GPU 0. 450 W on three GPUs, idle baselines
// 100 + 40 + 20 W.
func gpuHost(t *testing.T) string {
	t.Helper()
	t0 := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		sec, ms := now.Sub(t0).Seconds(), now.UnixMilli()
		dcgm := []struct {
			labels     string
			watts, mJ0 float64
		}{
			{`gpu="0",UUID="GPU-m",modelName="NVIDIA A100",hostname="h1",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",pod="vllm-0"`, 200, 5e6},
			{`gpu="0",UUID="GPU-m",modelName="NVIDIA A100",hostname="h1",GPU_I_PROFILE="2g.10gb",GPU_I_ID="5",pod="vllm-1"`, 200, 5e6},
			{`gpu="0",UUID="GPU-m",modelName="NVIDIA A100",hostname="h1",GPU_I_PROFILE="1g.5gb",GPU_I_ID="13",pod="notebook"`, 200, 5e6},
			{`gpu="0",UUID="GPU-p",modelName="NVIDIA L4",hostname="h3"`, 50, 1e6},
			{`gpu="1",UUID="GPU-n",modelName="NVIDIA H100",Hostname="h2",pod="vllm-2"`, 100, 9e6},
			{`gpu="1",UUID="GPU-n",modelName="NVIDIA H100",Hostname="h2",pod="vllm-3"`, 100, 9e6},
		}
		fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n")
		for _, g := range dcgm {
			fmt.Fprintf(w, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{%s} %.0f %d\n", g.labels, g.mJ0+g.watts*1e3*sec, ms)
		}
		fmt.Fprintf(w, "# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n")
		for _, g := range dcgm {
			fmt.Fprintf(w, "DCGM_FI_DEV_POWER_USAGE{%s} %g %d\n", g.labels, g.watts, ms)
		}
		tw := []struct {
			labels          string
			watts, j0, idle float64
		}{
			{`hostname="vllm-0-7f9c",gpu="0",uuid="GPU-a",gpu_model="H100"`, 300, 0, 100},
			{`hostname="node-1",gpu="0",uuid="GPU-a",gpu_model="H100"`, 300, 7000, math.NaN()},
			{`hostname="localhost",gpu="0",uuid="GPU-c",gpu_model="L4"`, 100, 0, 40},
			{`hostname="localhost",gpu="0",uuid="GPU-d",gpu_model="L4"`, 50, 0, 20},
		}
		fmt.Fprintf(w, "# TYPE tokenwatt_gpu_energy_joules_total counter\n")
		for _, g := range tw {
			fmt.Fprintf(w, "tokenwatt_gpu_energy_joules_total{%s} %f %d\n", g.labels, g.j0+g.watts*sec, ms)
		}
		fmt.Fprintf(w, "# TYPE tokenwatt_gpu_power_watts gauge\n")
		for _, g := range tw {
			fmt.Fprintf(w, "tokenwatt_gpu_power_watts{%s} %g %d\n", g.labels, g.watts, ms)
		}
		fmt.Fprintf(w, "# TYPE tokenwatt_gpu_idle_power_watts gauge\n")
		for _, g := range tw {
			if !math.IsNaN(g.idle) {
				fmt.Fprintf(w, "tokenwatt_gpu_idle_power_watts{%s} %g %d\n", g.labels, g.idle, ms)
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestGPUEnergyCountsPhysicalGPUs: per-GPU energy, peak and idle power
// count each physical GPU once, by UUID: not once per MIG instance, pod
// or exporting job, and two GPUs are two even when their host and index
// labels agree. Either host label of dcgm-exporter is read.
func TestGPUEnergyCountsPhysicalGPUs(t *testing.T) {
	host := gpuHost(t)
	prom := promtest.StartPrometheus(t, []string{host}, time.Second)
	promtest.WaitFor(t, prom.URL(), `count(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION) + count(tokenwatt_gpu_energy_joules_total)`, 20*time.Second, promtest.Equal(10))
	// A window between scrapes: a sample before start is there; wait for
	// one of every series after end.
	start := time.Now()
	end := start.Add(2 * time.Second)
	promtest.WaitFor(t, prom.URL(), `min(timestamp({__name__=~"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION|tokenwatt_gpu_energy_joules_total"}))`, 20*time.Second,
		func(ts float64) bool { return ts > float64(end.UnixNano())/1e9 })

	client, err := api.NewClient(api.Config{Address: prom.URL()})
	if err != nil {
		t.Fatal(err)
	}
	var explain strings.Builder
	q := &querier{api: v1.NewAPI(client), explain: &explain, log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	now := time.Now()
	w := end.Sub(start).Seconds()
	for _, c := range []struct {
		name             string
		m                gpuMetrics
		sel              string
		gpus             int
		watts, peak, idl float64 // idl: NaN where the exporter has no idle gauge
	}{
		{"dcgm-exporter", dcgmGPU, "", 3, 350, 350, math.NaN()},
		// A MIG instance's pod selects its physical GPU, whole.
		{"dcgm-exporter, one MIG instance's pod", dcgmGPU, `pod="vllm-1"`, 1, 200, 200, math.NaN()},
		{"dcgm-exporter, hostname", dcgmGPU, `hostname="h1"`, 1, 200, 200, math.NaN()},
		{"dcgm-exporter, Hostname", dcgmGPU, `Hostname="h2"`, 1, 100, 100, math.NaN()},
		{"tokenwatt", tokenwattGPU, "", 3, 450, 450, 160},
		{"tokenwatt, localhost", tokenwattGPU, `hostname="localhost"`, 2, 150, 150, 60},
	} {
		t.Run(c.name, func(t *testing.T) {
			explain.Reset()
			e, ok, err := gpuEnergy(t.Context(), q, c.m, c.sel, start, end, now)
			if err != nil || !ok {
				t.Fatalf("gpuEnergy: %v, found %v", err, ok)
			}
			want := c.watts * w
			if e.GPUs != c.gpus || math.Abs(e.EnergyJ/want-1) > 0.005 || e.PeakPowerW != c.peak ||
				!(e.IdlePowerW == c.idl || math.IsNaN(e.IdlePowerW) && math.IsNaN(c.idl)) {
				t.Errorf("%d GPU(s), %.3f J, peak %v W, idle %v W; want %d, %.3f J (%v W over %.3f s), %v W, %v W\n%s",
					e.GPUs, e.EnergyJ, e.PeakPowerW, e.IdlePowerW, c.gpus, want, c.watts, w, c.peak, c.idl, explain.String())
			}
		})
	}
}
