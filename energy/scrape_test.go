package energy

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// fakeGPU is one GPU in a served exposition.
type fakeGPU struct {
	index  int
	uuid   string
	joules float64 // the energy counter; NaN leaves it out
	watts  float64 // the power gauge; NaN leaves it out
}

const (
	uuid0 = "GPU-34319582-d595-d1c7-d1d2-179bcfa61660"
	uuid1 = "GPU-7099682b-a20d-2bcc-74ab-b9060454d81e"
)

// dcgmText writes what dcgm-exporter 3.x/4.x serves with its default
// counters: HELP and TYPE lines from etc/default-counters.csv, the labels
// gpu, UUID, pci_bus_id, device, modelName, Hostname and
// DCGM_FI_DRIVER_VERSION, energy in mJ, power in W with six decimals.
func dcgmText(gpus ...fakeGPU) string {
	var b strings.Builder
	labels := func(g fakeGPU) string {
		return fmt.Sprintf(`gpu="%d",UUID="%s",pci_bus_id="00000000:%02X:00.0",device="nvidia%d",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",DCGM_FI_DRIVER_VERSION="550.54.15"`,
			g.index, g.uuid, 0x18+g.index, g.index)
	}
	family := func(name, typ, help string, value func(fakeGPU) (string, bool)) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for _, g := range gpus {
			if v, ok := value(g); ok {
				fmt.Fprintf(&b, "%s{%s} %s\n", name, labels(g), v)
			}
		}
	}
	constant := func(v string) func(fakeGPU) (string, bool) {
		return func(fakeGPU) (string, bool) { return v, true }
	}
	family("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", constant("1980"))
	family("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", constant("2619"))
	family("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", constant("41"))
	family("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", constant("36"))
	family("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", func(g fakeGPU) (string, bool) {
		return fmt.Sprintf("%f", g.watts), !math.IsNaN(g.watts)
	})
	family("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).", func(g fakeGPU) (string, bool) {
		return fmt.Sprintf("%.0f", g.joules*1000), !math.IsNaN(g.joules)
	})
	family("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", constant("0"))
	family("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", constant("87"))
	family("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", constant("72031"))
	return b.String()
}

// tokenwattText writes what tokenwatt's energy-exporter serves.
func tokenwattText(gpus ...fakeGPU) string {
	var b strings.Builder
	labels := func(g fakeGPU) string {
		return fmt.Sprintf(`gpu="%d",gpu_model="NVIDIA A100-SXM4-40GB",hostname="node-b",uuid="%s"`, g.index, g.uuid)
	}
	b.WriteString("# HELP tokenwatt_energy_exporter_info Always 1.\n# TYPE tokenwatt_energy_exporter_info gauge\n")
	b.WriteString(`tokenwatt_energy_exporter_info{method="counter",source="nvml"} 1` + "\n")
	b.WriteString("# HELP tokenwatt_gpu_energy_joules_total GPU energy.\n# TYPE tokenwatt_gpu_energy_joules_total counter\n")
	for _, g := range gpus {
		if !math.IsNaN(g.joules) {
			fmt.Fprintf(&b, "tokenwatt_gpu_energy_joules_total{%s} %g\n", labels(g), g.joules)
		}
	}
	b.WriteString("# HELP tokenwatt_gpu_power_watts GPU power.\n# TYPE tokenwatt_gpu_power_watts gauge\n")
	for _, g := range gpus {
		if !math.IsNaN(g.watts) {
			fmt.Fprintf(&b, "tokenwatt_gpu_power_watts{%s} %g\n", labels(g), g.watts)
		}
	}
	return b.String()
}

// endpoint serves a settable body on /metrics, or a settable status.
type endpoint struct {
	*httptest.Server
	mu     sync.Mutex
	body   string
	status int
}

func newEndpoint(t *testing.T, body string) *endpoint {
	t.Helper()
	e := &endpoint{body: body, status: http.StatusOK}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		e.mu.Lock()
		body, status := e.body, e.status
		e.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) set(body string, status int) {
	e.mu.Lock()
	e.body, e.status = body, status
	e.mu.Unlock()
}

func mustOpenScrape(t *testing.T, url string) Source {
	t.Helper()
	src, err := openScrape(t.Context(), url, scrapeOptions{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("openScrape(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func mustRead(t *testing.T, src Source) []Reading {
	t.Helper()
	rs, err := src.Read(t.Context(), nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(rs) != len(src.Devices()) {
		t.Fatalf("Read gave %d readings for %d devices", len(rs), len(src.Devices()))
	}
	return rs
}

// same compares floats, NaN equal to NaN.
func same(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) <= 1e-9*math.Abs(b)
}

func TestScrapeDCGM(t *testing.T) {
	// GPU 1 listed first: devices come out in index order regardless.
	e := newEndpoint(t, dcgmText(
		fakeGPU{1, uuid1, 250_000.5, 301.25},
		fakeGPU{0, uuid0, 319_159.391, 409.692},
	))
	before := time.Now()
	src := mustOpenScrape(t, e.URL) // no path: /metrics
	if src.Name() != SourceScrape || src.Method() != MethodCounter {
		t.Errorf("Name, Method = %s, %s; want scrape, counter", src.Name(), src.Method())
	}
	want := []Device{
		{Index: 0, UUID: uuid0, Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-node-1"},
		{Index: 1, UUID: uuid1, Model: "NVIDIA H100 80GB HBM3", Hostname: "gpu-node-1"},
	}
	if got := src.Devices(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Devices = %+v, want %+v", got, want)
	}
	// Read appends to what dst already holds.
	rs, err := src.Read(t.Context(), []Reading{{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("Read appended %d readings to one, want 2", len(rs)-1)
	}
	for i, w := range []struct{ j, p float64 }{{319_159.391, 409.692}, {250_000.5, 301.25}} {
		r := rs[i+1]
		if r.Err != nil || !same(r.EnergyJ, w.j) || !same(r.PowerW, w.p) {
			t.Errorf("GPU %d: %+v, want %v J (mJ / 1000) and %v W", i, r, w.j, w.p)
		}
		if r.Time.Before(before) || r.Time.After(time.Now()) {
			t.Errorf("GPU %d: Time %v is not the response's arrival", i, r.Time)
		}
	}
}

// TestScrapeDCGMOldFormat reads dcgm-exporter 2.x's output: a space
// after each comma, no modelName or Hostname (the URL's host stands in).
func TestScrapeDCGMOldFormat(t *testing.T) {
	e := newEndpoint(t, `# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
# HELP DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION Total energy consumption since boot (in mJ).
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_POWER_USAGE{gpu="0", UUID="GPU-8c16e996-bd76-aa91-17e7-b48bcd0208ba", device="nvidia0"} 23.528000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0", UUID="GPU-8c16e996-bd76-aa91-17e7-b48bcd0208ba", device="nvidia0"} 31035686671
`)
	src := mustOpenScrape(t, "scrape:"+e.URL+"/metrics")
	d := src.Devices()
	if len(d) != 1 || d[0].UUID != "GPU-8c16e996-bd76-aa91-17e7-b48bcd0208ba" || d[0].Hostname != "127.0.0.1" {
		t.Errorf("Devices = %+v, want one with the URL's host", d)
	}
	if r := mustRead(t, src)[0]; !same(r.EnergyJ, 31035686.671) || !same(r.PowerW, 23.528) {
		t.Errorf("reading %+v", r)
	}
}

func TestScrapeTokenwatt(t *testing.T) {
	e := newEndpoint(t, tokenwattText(fakeGPU{0, "GPU-a", 12.5, 80}, fakeGPU{1, "GPU-b", 13.5, 90}))
	src := mustOpenScrape(t, e.URL)
	if src.Method() != MethodCounter {
		t.Errorf("Method = %s, want counter", src.Method())
	}
	if d := src.Devices(); len(d) != 2 || d[1] != (Device{Index: 1, UUID: "GPU-b", Model: "NVIDIA A100-SXM4-40GB", Hostname: "node-b"}) {
		t.Errorf("Devices = %+v", d)
	}
	rs := mustRead(t, src)
	if !same(rs[0].EnergyJ, 12.5) || !same(rs[1].PowerW, 90) {
		t.Errorf("readings %+v", rs)
	}
}

// TestScrapeSimulatedBy: an endpoint's GPUs are simulated when its
// tokenwatt_energy_exporter_info says simulated="true" or a chosen GPU
// has a simulated UUID (the simulator's GPUs re-exported); real GPUs and
// an info series without the label are not.
func TestScrapeSimulatedBy(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"real", tokenwattText(fakeGPU{0, "GPU-a", 12.5, 80}) +
			"tokenwatt_energy_exporter_info{method=\"counter\",source=\"nvml\",version=\"1\"} 1\n", ""},
		{"dcgm-exporter", dcgmText(fakeGPU{0, uuid0, 1, 1}), ""},
		{"info says simulated", tokenwattText(fakeGPU{0, "GPU-a", 12.5, 80}) +
			"tokenwatt_energy_exporter_info{method=\"counter\",simulated=\"true\",source=\"sim\"} 1\n",
			`tokenwatt_energy_exporter_info says simulated="true"`},
		{"simulated GPU", tokenwattText(fakeGPU{0, "SIM-7-0", 12.5, 80}), "GPU SIM-7-0 is a simulated GPU"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SimulatedBy(mustOpenScrape(t, newEndpoint(t, tc.body).URL)); got != tc.want {
				t.Errorf("SimulatedBy = %q, want %q", got, tc.want)
			}
		})
	}
	if got := SimulatedBy(nil); got != "" {
		t.Errorf("SimulatedBy(nil) = %q", got)
	}
}

// TestScrapePrefersTokenwatt: an endpoint with both (a federating
// Prometheus) is read through tokenwatt's series.
func TestScrapePrefersTokenwatt(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 1, 1})+tokenwattText(fakeGPU{0, "GPU-a", 7, 70}))
	if d := mustOpenScrape(t, e.URL).Devices(); len(d) != 1 || d[0].UUID != "GPU-a" {
		t.Errorf("Devices = %+v, want tokenwatt's GPU-a", d)
	}
}

func TestScrapePowerOnly(t *testing.T) {
	nan := math.NaN()
	for name, body := range map[string]string{
		"dcgm-exporter": dcgmText(fakeGPU{0, uuid0, nan, 409.5}, fakeGPU{1, uuid1, nan, 120}),
		"tokenwatt":     tokenwattText(fakeGPU{0, uuid0, nan, 409.5}, fakeGPU{1, uuid1, nan, 120}),
	} {
		t.Run(name, func(t *testing.T) {
			src := mustOpenScrape(t, newEndpoint(t, body).URL)
			if src.Method() != MethodIntegrated {
				t.Errorf("Method = %s, want integrated", src.Method())
			}
			rs := mustRead(t, src)
			if len(rs) != 2 || !math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 409.5 || rs[1].PowerW != 120 {
				t.Errorf("readings %+v, want NaN energy and 409.5 W, 120 W", rs)
			}
		})
	}
}

// TestScrapeSimulator reads the simulator's real /metrics.
func TestScrapeSimulator(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.GPUs = 2
	r, err := sim.Start(t.Context(), "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := mustOpenScrape(t, r.URL)
	d := src.Devices()
	if src.Method() != MethodCounter || len(d) != 2 || d[0].UUID != "SIM-1-0" || d[1].UUID != "SIM-1-1" ||
		d[0].Model != sim.SimulatedGPUModel {
		t.Fatalf("Method %s, Devices %+v", src.Method(), d)
	}
	if why := SimulatedBy(src); why != `tokenwatt_energy_exporter_info says simulated="true"` {
		t.Errorf("SimulatedBy = %q, want the simulator's info series", why)
	}
	first := mustRead(t, src)
	time.Sleep(50 * time.Millisecond)
	second := mustRead(t, src)
	dt := second[0].Time.Sub(first[0].Time).Seconds()
	for i := range 2 {
		if second[i].PowerW != 50 {
			t.Errorf("GPU %d: %v W, want 50 (100 W idle over 2 GPUs)", i, second[i].PowerW)
		}
		// 50 W per GPU; the stamps are the responses' arrivals, a little
		// after the simulator computed its values.
		if de := second[i].EnergyJ - first[i].EnergyJ; de < 0.5*50*dt || de > 1.5*50*dt {
			t.Errorf("GPU %d: %v J in %v s, want about 50 W", i, de, dt)
		}
	}
}

// TestScrapeDeviceChanges: a GPU missing from a scrape gets Err; GPUs are
// matched by UUID, so a renumbering does not swap their readings.
func TestScrapeDeviceChanges(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}, fakeGPU{1, uuid1, 200, 400}))
	src := mustOpenScrape(t, e.URL)

	e.set(dcgmText(fakeGPU{1, uuid1, 201, 401}), http.StatusOK)
	rs := mustRead(t, src)
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), uuid0) {
		t.Errorf("missing GPU 0: Err = %v, want one naming %s", rs[0].Err, uuid0)
	}
	if rs[1].Err != nil || rs[1].EnergyJ != 201 {
		t.Errorf("GPU 1: %+v", rs[1])
	}

	e.set(dcgmText(fakeGPU{0, uuid1, 202, 402}, fakeGPU{1, uuid0, 102, 302}), http.StatusOK)
	rs = mustRead(t, src)
	if rs[0].Err != nil || rs[0].EnergyJ != 102 || rs[1].EnergyJ != 202 {
		t.Errorf("after renumbering: %+v, want %s at 102 J and %s at 202 J", rs, uuid0, uuid1)
	}

	// A GPU whose counter is gone but power remains has no reading.
	e.set(dcgmText(fakeGPU{0, uuid0, math.NaN(), 300}, fakeGPU{1, uuid1, 203, 403}), http.StatusOK)
	if rs = mustRead(t, src); rs[0].Err == nil || rs[1].Err != nil {
		t.Errorf("GPU 0 without a counter: %+v", rs)
	}
}

func TestScrapeEndpointFails(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}))
	src := mustOpenScrape(t, e.URL)
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"HTTP 500", "oops", http.StatusInternalServerError, "HTTP 500"},
		{"garbage", "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\" 12\n", http.StatusOK, "not Prometheus text"},
	} {
		e.set(c.body, c.status)
		_, err := src.Read(t.Context(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), e.URL+"/metrics") {
			t.Errorf("%s: Read error %v, want one naming the URL and %q", c.name, err, c.want)
		}
	}
	// Back up: reads work again.
	e.set(dcgmText(fakeGPU{0, uuid0, 101, 300}), http.StatusOK)
	if rs := mustRead(t, src); rs[0].EnergyJ != 101 {
		t.Errorf("after recovery: %+v", rs)
	}
	// Gone for good.
	e.Close()
	if _, err := src.Read(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("Read from a closed endpoint: %v", err)
	}
}

func TestScrapeReadHonoursContext(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}))
	src := mustOpenScrape(t, e.URL)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := src.Read(ctx, nil); err == nil {
		t.Error("Read with a cancelled context succeeded")
	}
}

func TestScrapeOpenErrors(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	cases := []struct {
		name, body string
		status     int
		want       []string
	}{
		{"no GPU metrics", "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 0\n", http.StatusOK,
			[]string{"no GPU metrics", tokenwattEnergyMetric, tokenwattPowerMetric, dcgmEnergyMetric, dcgmPowerMetric}},
		{"empty", "", http.StatusOK, []string{"no GPU metrics"}},
		{"garbage", "<html><body>Grafana</body></html>\n", http.StatusOK, []string{"not Prometheus text"}},
		{"HTTP 404", "", http.StatusNotFound, []string{"HTTP 404"}},
		// Blank values only (a field the GPU does not support).
		{"blank counter", `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0",UUID="GPU-x"} 9223372036854775792` + "\n", http.StatusOK,
			[]string{"no GPU metrics"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEndpoint(t, c.body)
			e.set(c.body, c.status)
			_, err := openScrape(t.Context(), e.URL, scrapeOptions{})
			if err == nil {
				t.Fatal("openScrape succeeded")
			}
			msg := err.Error()
			for _, w := range append(c.want, e.URL+"/metrics") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line", msg)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		_, err := openScrape(t.Context(), downURL, scrapeOptions{})
		if err == nil || !strings.Contains(err.Error(), downURL+"/metrics") || !strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("openScrape(%s): %v, want an error naming the URL", downURL, err)
		}
	})
}

func TestScrapeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://gpu-host:9400":             "http://gpu-host:9400/metrics",
		"scrape:http://gpu-host:9400":      "http://gpu-host:9400/metrics",
		"scrape:http://gpu-host:9400/":     "http://gpu-host:9400/metrics",
		"gpu-host:9400":                    "http://gpu-host:9400/metrics",
		"scrape:gpu-host:9400/federate":    "http://gpu-host:9400/federate",
		"https://gpu-host/custom/metrics":  "https://gpu-host/custom/metrics",
		"http://gpu-host:9400/metrics?x=1": "http://gpu-host:9400/metrics?x=1",
	} {
		u, err := scrapeURL(in)
		if err != nil || u.String() != want {
			t.Errorf("scrapeURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "scrape:", "ftp://gpu-host/metrics", "http://", "http://gpu host/"} {
		if _, err := scrapeURL(bad); err == nil || !strings.Contains(err.Error(), "scrape:http://HOST:PORT/metrics") {
			t.Errorf("scrapeURL(%q): %v, want an error with the fix", bad, err)
		}
	}
}

// TestScrapeDCGMQuirks: blank sentinels are no value, and a GPU repeated
// per MIG instance or per pod is one device.
func TestScrapeDCGMQuirks(t *testing.T) {
	const l0 = `gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="node-b"`
	const l1 = `gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="node-b"`
	e := newEndpoint(t, `# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{`+l0+`,GPU_I_PROFILE="1g.5gb",GPU_I_ID="8"} 5000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{`+l0+`,GPU_I_PROFILE="3g.20gb",GPU_I_ID="9"} 5000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{`+l1+`,pod="a"} 9223372036854775792
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{`+l1+`,pod="b"} 9223372036854775792
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{`+l0+`} 140737488355328
DCGM_FI_DEV_POWER_USAGE{`+l1+`} 61
`)
	src := mustOpenScrape(t, e.URL)
	if d := src.Devices(); len(d) != 2 {
		t.Fatalf("Devices = %+v, want 2", d)
	}
	rs := mustRead(t, src)
	if rs[0].Err != nil || rs[0].EnergyJ != 5 || !math.IsNaN(rs[0].PowerW) {
		t.Errorf("GPU 0: %+v, want 5 J and no power (blank)", rs[0])
	}
	if rs[1].Err == nil {
		t.Errorf("GPU 1 with a blank counter: %+v, want Err", rs[1])
	}
}

func TestScrapeWarnsOfStaleCounters(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}))
	rec := &logRecorder{}
	src, err := openScrape(t.Context(), e.URL, scrapeOptions{Interval: 100 * time.Millisecond, Logger: rec.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for range 6 {
		mustRead(t, src)
	}
	logs := rec.all()
	n := 0
	for _, l := range logs {
		if strings.Contains(l, "unchanged") {
			n++
			if !strings.Contains(l, "-c") || !strings.Contains(l, "100ms") {
				t.Errorf("warning %q does not say what to do", l)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d stale warnings, want 1: %q", n, logs)
	}
}

// FuzzScrapeSeries feeds arbitrary text through the parser and every
// format's extraction: errors are fine, panics are not.
func FuzzScrapeSeries(f *testing.F) {
	f.Add(dcgmText(fakeGPU{0, uuid0, 1, 2}, fakeGPU{1, uuid1, 3, 4}))
	f.Add(tokenwattText(fakeGPU{0, "GPU-a", 1, 2}))
	f.Add(`DCGM_FI_DEV_POWER_USAGE 12` + "\n")
	f.Add(`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="x"} NaN` + "\n")
	f.Fuzz(func(t *testing.T, text string) {
		src := &scrapeSource{parser: newScrapeParser()}
		fams, err := src.parser.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, format := range scrapeFormats {
			for _, g := range extractSeries(fams, format, "host", nil) {
				if g.dev.Index < 0 {
					t.Errorf("device %+v has a negative index", g.dev)
				}
			}
		}
	})
}

const uuid2 = "GPU-c2a1f3e4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"

// dcgmPodsText is dcgm-exporter in Kubernetes mode on a host whose three
// GPUs serve two vLLM pods and a training job; GPU i has (i+1) x 100 J
// and (i+1) x 10 W. The host label is written the way dcgm-exporter
// since 4.8 writes it: hostname.
func dcgmPodsText() string {
	var b strings.Builder
	pods := []string{`pod="vllm-0",namespace="llm",container="vllm"`, `pod="vllm-1",namespace="llm",container="vllm"`, `pod="trainer",namespace="batch",container="train"`}
	for _, f := range []struct{ name, typ, value string }{
		{dcgmEnergyMetric, "counter", "%d00000"},
		{dcgmPowerMetric, "gauge", "%d0.000000"},
	} {
		fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.typ)
		for i, u := range []string{uuid0, uuid1, uuid2} {
			fmt.Fprintf(&b, `%s{gpu="%d",UUID="%s",pci_bus_id="00000000:%02X:00.0",device="nvidia%d",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-2",DCGM_FI_DRIVER_VERSION="570.86.15",%s} `+f.value+"\n",
				f.name, i, u, 0x18+i, i, pods[i], i+1)
		}
	}
	return b.String()
}

func openScrapeWith(t *testing.T, url string, opts scrapeOptions) (*scrapeSource, error) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	src, err := openScrape(t.Context(), url, opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = src.Close() })
	return src.(*scrapeSource), nil
}

// TestScrapeChoosesGPUs: --gpus and a label selector choose among an
// endpoint's GPUs at open; Devices and Read then hold only those, and
// Selection says how they were chosen.
func TestScrapeChoosesGPUs(t *testing.T) {
	e := newEndpoint(t, dcgmPodsText())
	for _, c := range []struct {
		name, gpus, selector string
		want                 []string // UUIDs
		how                  string
		warns                bool
	}{
		{"auto", "", "", []string{uuid0, uuid1, uuid2}, "all (scrape source)", true},
		{"auto spelt out", "auto", "", []string{uuid0, uuid1, uuid2}, "all (scrape source)", true},
		{"all", "all", "", []string{uuid0, uuid1, uuid2}, "all", false},
		{"indices", "2,0", "", []string{uuid0, uuid2}, "--gpus", false},
		{"UUID, any case", strings.ToLower(uuid1), "", []string{uuid1}, "--gpus", false},
		{"index and UUID", "0," + uuid1, "", []string{uuid0, uuid1}, "--gpus", false},
		{"selector", "", `pod="vllm-0",namespace="llm"`, []string{uuid0}, "label selector", false},
		{"selector in braces", "", `{ pod = 'vllm-1' , }`, []string{uuid1}, "label selector", false},
		{"regexp", "", `pod=~"vllm-.*"`, []string{uuid0, uuid1}, "label selector", false},
		{"regexp is anchored", "", `pod=~"vllm"`, nil, "", false},
		{"negative regexp", "", `pod!~"vllm-.*"`, []string{uuid2}, "label selector", false},
		{"not equal", "", `namespace!="llm"`, []string{uuid2}, "label selector", false},
		{"selector with all", "all", `namespace="llm"`, []string{uuid0, uuid1}, "label selector", false},
		{"selector then --gpus", "1", `namespace="llm"`, []string{uuid1}, "--gpus", false},
		{"host label", "", `hostname="gpu-node-2",gpu="2"`, []string{uuid2}, "label selector", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := openScrapeWith(t, e.URL, scrapeOptions{GPUs: c.gpus, Selector: c.selector})
			if c.want == nil {
				if err == nil {
					t.Fatalf("opened with %v, want an error", UUIDs(src.Devices()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := UUIDs(src.Devices()); !slices.Equal(got, c.want) {
				t.Errorf("Devices = %v, want %v", got, c.want)
			}
			sel := SelectionOf(src)
			if sel.How != c.how || (sel.Warning != "") != c.warns {
				t.Errorf("Selection = %+v, want How %q, a warning %v", sel, c.how, c.warns)
			}
			if c.warns && (!strings.Contains(sel.Warning, "--gpus") || !strings.Contains(sel.Warning, "selector")) {
				t.Errorf("warning %q does not say how to choose", sel.Warning)
			}
			rs := mustRead(t, src)
			for i, d := range src.Devices() {
				want := float64(d.Index+1) * 100
				if rs[i].Err != nil || rs[i].EnergyJ != want || rs[i].PowerW != want/10 {
					t.Errorf("GPU %d: %+v, want %v J and %v W", d.Index, rs[i], want, want/10)
				}
				if d.Hostname != "gpu-node-2" {
					t.Errorf("GPU %d: Hostname %q, want the hostname label's gpu-node-2", d.Index, d.Hostname)
				}
			}
		})
	}
}

// TestScrapeChoosesTokenwattGPUs: the energy-exporter's uuid label.
func TestScrapeChoosesTokenwattGPUs(t *testing.T) {
	e := newEndpoint(t, tokenwattText(fakeGPU{0, "GPU-a", 12.5, 80}, fakeGPU{1, "GPU-b", 13.5, 90}))
	src, err := openScrapeWith(t, e.URL, scrapeOptions{GPUs: "gpu-b"})
	if err != nil {
		t.Fatal(err)
	}
	if d := src.Devices(); len(d) != 1 || d[0].UUID != "GPU-b" {
		t.Errorf("Devices = %+v, want GPU-b", d)
	}
	if rs := mustRead(t, src); rs[0].EnergyJ != 13.5 {
		t.Errorf("Read = %+v, want GPU-b's 13.5 J", rs)
	}
	src, err = openScrapeWith(t, e.URL, scrapeOptions{Selector: `uuid="GPU-a"`})
	if err != nil || len(src.Devices()) != 1 || src.Devices()[0].UUID != "GPU-a" || src.Selection().Warning != "" {
		t.Errorf("selector uuid=GPU-a: %v, %+v", err, src)
	}
}

// TestScrapeChoiceErrors: each bad choice is one line that names the
// endpoint, what was asked and what there is.
func TestScrapeChoiceErrors(t *testing.T) {
	e := newEndpoint(t, dcgmPodsText())
	for _, c := range []struct {
		name, gpus, selector string
		want                 []string
	}{
		{"MIG UUID", "MIG-9b1a4f2e-3c5d-5e6f-8a7b-0c1d2e3f4a5b", "",
			[]string{"--gpus MIG-9b1a4f2e-3c5d-5e6f-8a7b-0c1d2e3f4a5b", "dcgm-exporter", "parent GPU's UUID or index", "0 " + uuid0}},
		{"no such index", "7", "", []string{"--gpus 7: no such GPU", "0 " + uuid0, "2 " + uuid2}},
		{"no such UUID", "GPU-0000", "", []string{"--gpus GPU-0000: no such GPU"}},
		{"bad --gpus", "first", "", []string{`"first" is neither a GPU index nor`}},
		{"selector matches nothing", "", `pod="vllm-7"`,
			[]string{`label selector {pod="vllm-7"} matches none`, `pod="vllm-0"|"vllm-1"|"trainer"`, `namespace="llm"|"batch"`, `hostname="gpu-node-2"`, `gpu="0"|"1"|"2"`}},
		{"selector without quotes", "", `pod=vllm-0`, []string{"expected a quoted value", "pod="}},
		{"selector with a bad operator", "", `pod=="x"`, []string{"expected a quoted value"}},
		{"selector with a bad regexp", "", `pod=~"(vllm"`, []string{"missing closing )"}},
		{"selector missing a comma", "", `pod="a" namespace="b"`, []string{`expected a comma after pod="a"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := openScrapeWith(t, e.URL, scrapeOptions{GPUs: c.gpus, Selector: c.selector})
			if err == nil {
				t.Fatal("openScrape succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			for _, w := range append(c.want, "energy source scrape:"+e.URL+"/metrics: ") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") || strings.Count(msg, "energy source scrape:") != 1 {
				t.Errorf("error %q is not one line naming the source once", msg)
			}
		})
	}
}

// dcgmMIGText is dcgm-exporter on a host whose GPU 0 has MIG on with
// three GPU instances, each used by a pod: every device-level field,
// energy and power among them, comes once per instance with the same
// value. GPU 1 has MIG off. The host label is the old Hostname.
func dcgmMIGText(gpu0mJ, gpu1mJ int) string {
	const l0 = `gpu="0",UUID="` + uuid0 + `",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname="node-b"`
	const l1 = `gpu="1",UUID="` + uuid1 + `",pci_bus_id="00000000:19:00.0",device="nvidia1",modelName="NVIDIA A100-SXM4-40GB",Hostname="node-b"`
	instances := []string{
		`GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",pod="vllm-0",namespace="llm"`,
		`GPU_I_PROFILE="2g.10gb",GPU_I_ID="5",pod="vllm-1",namespace="llm"`,
		`GPU_I_PROFILE="1g.5gb",GPU_I_ID="13",pod="notebook",namespace="dev"`,
	}
	var b strings.Builder
	b.WriteString("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter\n")
	for _, in := range instances {
		fmt.Fprintf(&b, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{%s,%s} %d\n", l0, in, gpu0mJ)
	}
	fmt.Fprintf(&b, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{%s} %d\n", l1, gpu1mJ)
	b.WriteString("# TYPE DCGM_FI_DEV_POWER_USAGE gauge\n")
	for _, in := range instances {
		fmt.Fprintf(&b, "DCGM_FI_DEV_POWER_USAGE{%s,%s} 250.5\n", l0, in)
	}
	fmt.Fprintf(&b, "DCGM_FI_DEV_POWER_USAGE{%s} 60\n", l1)
	return b.String()
}

// TestScrapeMIG: a MIG GPU's three instance series are one Device, with
// MIG set, whose energy counts once; a selector naming one instance's pod
// chooses the whole physical GPU.
func TestScrapeMIG(t *testing.T) {
	e := newEndpoint(t, dcgmMIGText(1_000_000, 500_000))
	src, err := openScrapeWith(t, e.URL, scrapeOptions{GPUs: "all"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Index: 0, UUID: uuid0, Model: "NVIDIA A100-SXM4-40GB", Hostname: "node-b", MIG: true},
		{Index: 1, UUID: uuid1, Model: "NVIDIA A100-SXM4-40GB", Hostname: "node-b"},
	}
	if got := src.Devices(); !slices.Equal(got, want) {
		t.Errorf("Devices = %+v\nwant %+v", got, want)
	}
	before := mustRead(t, src)
	e.set(dcgmMIGText(1_300_000, 560_000), http.StatusOK)
	after := mustRead(t, src)
	// 300 J on GPU 0 and 60 J on GPU 1: the instances do not triple it.
	for i, w := range []float64{300, 60} {
		if d := after[i].EnergyJ - before[i].EnergyJ; !same(d, w) {
			t.Errorf("GPU %d: %v J between reads, want %v", i, d, w)
		}
	}
	if before[0].PowerW != 250.5 {
		t.Errorf("GPU 0 power %v, want 250.5 W once", before[0].PowerW)
	}

	src, err = openScrapeWith(t, e.URL, scrapeOptions{Selector: `pod="vllm-1"`})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Devices(); len(got) != 1 || got[0] != want[0] || src.Selection().How != "label selector" {
		t.Errorf("pod vllm-1: Devices %+v, Selection %+v; want physical GPU 0 by label selector", got, src.Selection())
	}
	if rs := mustRead(t, src); rs[0].EnergyJ != 1300 {
		t.Errorf("pod vllm-1: %+v, want the whole GPU's 1300 J", rs)
	}
}

// A dcgm-exporter GPU without an energy counter (the field left out) is
// measured by its power, alone: the others keep their counters.
func TestScrapeGPUWithoutCounterIsIntegrated(t *testing.T) {
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}, fakeGPU{1, uuid1, math.NaN(), 250}))
	src := mustOpenScrape(t, e.URL)
	if d := src.Devices(); len(d) != 2 || d[0].Integrated || !d[1].Integrated || src.Method() != MethodMixed {
		t.Fatalf("devices %+v, method %s; want GPU 1 alone integrated, method mixed", d, src.Method())
	}
	rs := mustRead(t, src)
	if rs[0].Err != nil || rs[0].EnergyJ != 100 || rs[1].Err != nil || !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != 250 {
		t.Errorf("readings %+v; want GPU 0's counter and GPU 1's power", rs)
	}
	// Through the sampler: GPU 1's energy is its power's integral.
	s := NewSampler(src, time.Second)
	s.Read(t.Context())
	time.Sleep(50 * time.Millisecond)
	e.set(dcgmText(fakeGPU{0, uuid0, 130, 300}, fakeGPU{1, uuid1, math.NaN(), 250}), http.StatusOK)
	s.Read(t.Context())
	tk := s.Latest()
	if tk.Samples[0].EnergyJ != 30 || !(tk.Samples[1].EnergyJ > 0) {
		t.Errorf("samples %+v; want 30 J counted on GPU 0 and integrated power on GPU 1", tk.Samples)
	}
}

// TestScrapeRedactsCredentials: a scrape URL's user:password is sent as
// basic auth, but no error, notice or reading names it in clear; nor a
// user name given without a password (a token), nor the credentials of an
// address that does not parse.
func TestScrapeRedactsCredentials(t *testing.T) {
	const user, pass, token = "scraper", "pw-do-not-leak-71", "tok-do-not-leak-93"
	e := newEndpoint(t, dcgmText(fakeGPU{0, uuid0, 100, 300}))
	var mu sync.Mutex
	var auths []string
	inner := e.Config.Handler
	e.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		mu.Lock()
		auths = append(auths, fmt.Sprint(u, ":", p, ok))
		mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	host := strings.TrimPrefix(e.URL, "http://")
	down := httptest.NewServer(http.NotFoundHandler())
	closed := strings.TrimPrefix(down.URL, "http://")
	down.Close()
	secretURL := "scrape:http://" + user + ":" + pass + "@" + host + "/metrics"

	var msgs []string
	leak := func(what, s string) {
		t.Helper()
		msgs = append(msgs, s)
		for _, secret := range []string{pass, token} {
			if strings.Contains(s, secret) {
				t.Errorf("%s names a secret in clear: %s", what, s)
			}
		}
	}
	rec := &logRecorder{}
	src, err := openScrape(t.Context(), secretURL, scrapeOptions{Interval: time.Millisecond, Logger: rec.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for range 5 { // counters unchanged: the stale notice names the URL
		mustRead(t, src)
	}
	e.set(dcgmText(fakeGPU{0, uuid1, 100, 300}), http.StatusOK) // the GPU vanishes
	rs, err := src.Read(t.Context(), nil)
	if err != nil || len(rs) != 1 || rs[0].Err == nil {
		t.Fatalf("Read with the GPU gone: %v, %+v", err, rs)
	}
	leak("a missing GPU's error", rs[0].Err.Error())
	e.set("oops", http.StatusInternalServerError)
	if _, err := src.Read(t.Context(), nil); err == nil {
		t.Error("Read of an HTTP 500 succeeded")
	} else {
		leak("an HTTP 500's error", err.Error())
	}
	for _, bad := range []string{
		"scrape:http://" + user + ":" + pass + "@" + host + "/nope",        // HTTP 404 at open
		"scrape:http://" + token + "@" + host + "/nope",                    // a token as user name
		"scrape:http://" + user + ":" + pass + "@" + closed,                // nothing listens
		"scrape:http://" + user + ":" + pass + "@" + host + ":bad/metrics", // does not parse
		"scrape:ftp://" + user + ":" + pass + "@" + host + "/metrics",      // not http
		"scrape:" + user + ":" + pass + "/x@" + host,                       // an unescaped "/" in the password
	} {
		if _, err := openScrape(t.Context(), bad, scrapeOptions{}); err == nil {
			t.Errorf("openScrape(%s) succeeded", bad)
		} else {
			leak("openScrape's error", err.Error())
		}
	}
	e.Close()
	if _, err := src.Read(t.Context(), nil); err == nil {
		t.Error("Read of a closed endpoint succeeded")
	} else {
		leak("a closed endpoint's error", err.Error())
	}
	logs := rec.all()
	if len(logs) == 0 {
		t.Error("no stale-counter notice")
	}
	for _, l := range logs {
		leak("a notice", l)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), user+":xxxxx@"+host) {
		t.Errorf("no message names the endpoint as %s:xxxxx@%s:\n%s", user, host, strings.Join(msgs, "\n"))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range auths[:6] { // open and the five reads
		if a != user+":"+pass+"true" {
			t.Errorf("the endpoint got basic auth %q, want the URL's", a)
		}
	}
}
