//go:build linux && cgo

package main

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

// startStubExporter runs the energy-exporter binary (cgo) on a stand-in
// NVML node and returns its /metrics URL once it serves every GPU.
func startStubExporter(t *testing.T, node nvmlstub.Node, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "energy-exporter")
	if out, err := exec.Command("go", "build", "-o", bin, "../energy-exporter").CombinedOutput(); err != nil {
		t.Fatalf("go build energy-exporter: %v\n%s", err, out)
	}
	stub, err := node.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := closedAddr(t) // free now; the exporter binds it
	cmd := exec.Command(bin, append([]string{"--source", "nvml", "--listen", addr}, args...)...)
	cmd.Env = append(os.Environ(), stub.Env(nvmlstub.Build(t))...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := make(chan string, 100)
	go func() {
		for sc := bufio.NewScanner(stderr); sc.Scan(); {
			select {
			case log <- sc.Text():
			default:
			}
		}
		close(log)
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case l, ok := <-log:
			if !ok {
				t.Fatal("energy-exporter exited before serving")
			}
			if strings.Contains(l, "serving http://") {
				return "http://" + addr + "/metrics"
			}
		case <-time.After(time.Until(deadline)):
			t.Fatal("energy-exporter is not serving after 30s")
		}
	}
}

// loadgen --gpus 0 --energy scrape:<an 8-GPU node> measures the GPU that
// serves the model, not the node: GPU 0 at 500 W among seven idle 90 W
// GPUs. Without --gpus it counts all eight (1130 W) and says so in the
// log and the summary table.
func TestScrapeOfAnEightGPUNodeMeasuresTheChosenGPU(t *testing.T) {
	node := nvmlstub.Node{}
	for i := range 8 {
		w := 90.0
		if i == 0 {
			w = 500
		}
		node.GPUs = append(node.GPUs, nvmlstub.GPU{PowerW: w})
	}
	metrics := startStubExporter(t, node, "--gpus", "all", "--interval", "20ms")
	simCfg := sim.DefaultConfig()
	simCfg.TTFT, simCfg.ITL = 20*time.Millisecond, 5*time.Millisecond
	endpoint := startSim(t, simCfg)

	measure := func(gpus ...string) (cliResult, float64) {
		out := t.TempDir()
		args := []string{"--endpoint", endpoint, "--dataset", "synthetic", "--num-samples", "24", "--concurrency", "1",
			"--max-tokens", "60", "--min-tokens", "60", "--energy", "scrape:" + metrics, "--energy-interval", "20ms",
			"--idle-baseline", "0s", "--metrics-addr", "", "--out", out}
		res := runCLI(t, append(args, gpus...)...)
		if res.code != 0 {
			t.Fatalf("exit %d\n%s", res.code, res.stderr)
		}
		row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
		if row.AvgPowerW == nil {
			t.Fatalf("no average power:\n%s", res.stdout)
		}
		return res, *row.AvgPowerW
	}

	res, w := measure("--gpus", "0")
	t.Logf("--gpus 0: avg power %.1f W", w)
	if math.Abs(w-500)/500 > 0.02 {
		t.Errorf("--gpus 0: average power %.1f W, want 500 W within 2 %%", w)
	}
	if strings.Contains(res.stdout, "WARNING") || !strings.Contains(res.stdout, "1 (--gpus): "+nvmlstub.DefaultUUID(0)) {
		t.Errorf("--gpus 0: the table should name the one chosen GPU and warn of nothing:\n%s", res.stdout)
	}

	res, w = measure()
	t.Logf("no --gpus: avg power %.1f W", w)
	if math.Abs(w-1130)/1130 > 0.02 {
		t.Errorf("no --gpus: average power %.1f W, want all 8 GPUs' 1130 W", w)
	}
	for _, out := range []string{res.stdout, res.stderr} {
		if !strings.Contains(out, "counting all 8 GPUs") {
			t.Errorf("no --gpus: no warning that all 8 GPUs are counted in\n%s", out)
		}
	}
}
