package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// runHealth runs `energy-exporter health --url url` in process.
func runHealth(t *testing.T, url string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	e := &env{ctx: t.Context(), stdout: &out, stderr: &out}
	code := run(e, []string{"health", "--url", url, "--timeout", "5s"})
	return code, out.String()
}

// The health check passes only while GPU series are served: an open port
// with an empty /metrics (every GPU gone quiet) is unhealthy, and so is a
// port where nothing listens.
func TestHealthNeedsGPUSeries(t *testing.T) {
	src := &fakeSource{energy: []float64{1000, 2000}, failing: []bool{false, false}}
	addr, stderr, stop := startInProcess(t, src, "--source", "auto", "--interval", "20ms")
	defer stop()
	url := "http://" + addr + "/metrics"
	pollMetrics(t, url, func(b string) bool { return strings.Contains(b, gpu1Series) })
	if code, out := runHealth(t, url); code != exitOK || !strings.Contains(out, "healthy: 2 GPU(s)") {
		t.Fatalf("serving 2 GPUs: exit %d, %q", code, out)
	}

	src.fail(0)
	src.fail(1)
	pollMetrics(t, url, func(b string) bool { return !strings.Contains(b, "tokenwatt_gpu_energy_joules_total{") })
	code, out := runHealth(t, url)
	if code == exitOK || !strings.Contains(out, "serves no tokenwatt_gpu_energy_joules_total series") {
		t.Fatalf("no GPU answering: exit %d, %q; want unhealthy\n%s", code, out, stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/metrics"
	l.Close()
	start := time.Now()
	if code, out := runHealth(t, closed); code == exitOK || !strings.HasPrefix(out, "energy-exporter: unhealthy:") || strings.Count(out, "\n") != 1 {
		t.Fatalf("nothing listening: exit %d, %q; want one unhealthy line", code, out)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the check took %v", time.Since(start))
	}
}
