package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBinaryRedactsScrapeCredentials: with --source
// scrape:http://user:pass@host/metrics the real binary sends the
// credentials as basic auth, and neither its log (the start line, scrape
// failures: HTTP 500, a lost connection) nor its /metrics names the
// password; nor its error when the endpoint is down at start.
func TestBinaryRedactsScrapeCredentials(t *testing.T) {
	bin := buildExporter(t)
	const user, pass = "gpu-reader", "pw-do-not-leak-6502"
	var mu sync.Mutex
	scrapes, badAuths := 0, 0
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		mu.Lock()
		if !ok || u != user || p != pass {
			badAuths++
			mu.Unlock()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		scrapes++
		n := scrapes
		mu.Unlock()
		switch n {
		case 3, 4:
			http.Error(w, "exporter broke", http.StatusInternalServerError)
			return
		case 5:
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		fmt.Fprintf(w, `# TYPE tokenwatt_gpu_energy_joules_total counter
tokenwatt_gpu_energy_joules_total{gpu="0",uuid="GPU-up-0",gpu_model="NVIDIA L4",hostname="up"} %d
# TYPE tokenwatt_gpu_power_watts gauge
tokenwatt_gpu_power_watts{gpu="0",uuid="GPU-up-0",gpu_model="NVIDIA L4",hostname="up"} 71.5
`, 1000+10*n)
	}))
	defer upstream.Close()
	host := strings.TrimPrefix(upstream.URL, "http://")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(bin, "--source", "scrape:http://"+user+":"+pass+"@"+host+"/metrics", "--interval", "20ms", "--listen", addr)
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var body string
	for deadline := time.Now().Add(20 * time.Second); ; {
		mu.Lock()
		n := scrapes
		mu.Unlock()
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		if n >= 8 && strings.Contains(body, `tokenwatt_gpu_power_watts{gpu="0"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %d scrapes, /metrics:\n%s\nstderr:\n%s", n, body, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	log := stderr.String()
	mu.Lock()
	if badAuths > 0 {
		t.Errorf("%d scrapes came without the URL's credentials", badAuths)
	}
	mu.Unlock()
	if !strings.Contains(log, user+":xxxxx@"+host) || !strings.Contains(log, "HTTP 500") {
		t.Errorf("the log does not report the scrape failure with the URL redacted (%s:xxxxx@%s):\n%s", user, host, log)
	}
	for name, s := range map[string]string{"the log": log, "/metrics": body} {
		if strings.Contains(s, pass) {
			t.Errorf("the password appears in %s:\n%s", name, s)
		}
	}

	// Down at start: one error line, redacted.
	upstream.Close()
	out, err := exec.Command(bin, "--source", "scrape:http://"+user+":"+pass+"@"+host+"/metrics", "--listen", "127.0.0.1:0").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || strings.Contains(string(out), pass) || !strings.Contains(string(out), user+":xxxxx@"+host) {
		t.Errorf("endpoint down: %v, output:\n%s\nwant exit %d and the endpoint redacted", err, out, exitUsage)
	}
}
