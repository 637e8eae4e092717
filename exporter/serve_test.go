package exporter

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

func get(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testServerOptions are loadgen's, on a free loopback port.
func testServerOptions(webConfigFile string) ServerOptions {
	return ServerOptions{Addr: "127.0.0.1:0", AddrFlag: "--metrics-addr", AddrHint: "choose another address",
		WebConfigFile: webConfigFile, Program: "loadgen", Description: "test", Version: "v9.9.9"}
}

func serveTest(t *testing.T, reg *prometheus.Registry, webConfigFile string) *Server {
	t.Helper()
	s, err := Listen(testServerOptions(webConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(reg, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestServeMetrics(t *testing.T) {
	s := serveTest(t, newTestRun().Registry(), "")
	code, body := get(t, "http://"+s.Addr()+"/metrics", "", "")
	if code != 200 || !strings.Contains(body, `tokenwatt_requests_total{backend="vllm",model="m",outcome="ok",run_id="run-1",scenario="energy_star"} 3`) {
		t.Fatalf("GET /metrics: %d\n%s", code, body)
	}
	if !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Error("the Go and process collectors are not served")
	}
	if !strings.Contains(body, `loadgen_build_info{`) || !strings.Contains(body, `version="v9.9.9"`) {
		t.Error("the program's build_info is not served")
	}
}

// The landing page is exporter-toolkit's: the program, its version and a
// link to /metrics; any other path is 404.
func TestServeLandingPage(t *testing.T) {
	s := serveTest(t, newTestRun().Registry(), "")
	code, body := get(t, "http://"+s.Addr()+"/", "", "")
	if code != 200 || !strings.Contains(body, "loadgen") || !strings.Contains(body, "v9.9.9") || !strings.Contains(body, `href="/metrics"`) {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	if code, _ := get(t, "http://"+s.Addr()+"/nothing", "", ""); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}
}

// Done and Err report a server that stops on its own; Close after it
// does not hang.
func TestServeCloseReleases(t *testing.T) {
	s, err := Listen(testServerOptions(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("close before serving: %v", err)
	}
	s = serveTest(t, newTestRun().Registry(), "")
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if s.Err() != nil {
		t.Fatalf("Err after Close: %v", s.Err())
	}
}

func TestListenOnBusyAddressNamesIt(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	opts := testServerOptions("")
	opts.Addr = l.Addr().String()
	_, err = Listen(opts)
	if err == nil || !strings.Contains(err.Error(), l.Addr().String()) || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Fatalf("Listen on a busy address: %v", err)
	}
}

func TestWebConfigBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("basic_auth_users:\n  scraper: %s\n", hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := serveTest(t, newTestRun().Registry(), cfg)
	url := "http://" + s.Addr() + "/metrics"
	if code, _ := get(t, url, "", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := get(t, url, "scraper", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, body := get(t, url, "scraper", "s3cret"); code != 200 || !strings.Contains(body, "tokenwatt_run_info") {
		t.Errorf("right credentials: %d", code)
	}
}

func TestWebConfigInvalidFailsAtOnce(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(cfg, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(testServerOptions(cfg)); err == nil || !strings.Contains(err.Error(), "web.config.file") {
		t.Fatalf("invalid web config: %v", err)
	}
}

// pushSink records what a push target received.
type pushSink struct {
	mu     sync.Mutex
	bodies []string
	gzip   []bool
	fail   int // answer 503 to this many pushes first
}

func (p *pushSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Method != http.MethodPost {
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	if p.fail > 0 {
		p.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = r.Body
	gz := r.Header.Get("Content-Encoding") == "gzip"
	if gz {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	p.bodies = append(p.bodies, string(b))
	p.gzip = append(p.gzip, gz)
	w.WriteHeader(http.StatusNoContent)
}

func (p *pushSink) snapshot() ([]string, []bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...), append([]bool(nil), p.gzip...)
}

func TestPushPeriodicAndFinal(t *testing.T) {
	sink := &pushSink{fail: 1}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	m := newTestRun()
	var logs syncBuffer
	p, err := StartPush(srv.URL+"/api/v1/import/prometheus", 50*time.Millisecond, m.Registry(),
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if b, _ := sink.snapshot(); len(b) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic push within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before, _ := sink.snapshot()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	bodies, gz := sink.snapshot()
	if len(bodies) != len(before)+1 {
		t.Fatalf("%d pushes after Close, want %d (one final push)", len(bodies), len(before)+1)
	}
	last := bodies[len(bodies)-1]
	if !strings.Contains(last, `tokenwatt_output_tokens_total{backend="vllm",model="m",run_id="run-1",scenario="energy_star"} 9`) {
		t.Fatalf("final push lacks the output tokens:\n%s", last)
	}
	if strings.Contains(last, "go_goroutines") || strings.Contains(last, "process_") {
		t.Error("the Go/process metrics were pushed; only tokenwatt_* should be")
	}
	if !gz[len(gz)-1] {
		t.Error("VictoriaMetrics push was not gzip-compressed")
	}
	if logged := logs.String(); !strings.Contains(logged, "level=WARN") || !strings.Contains(logged, "503") {
		t.Errorf("the failed push was not logged as a warning: %q", logged)
	}
}

func TestPushToPushgatewayIsPlain(t *testing.T) {
	sink := &pushSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	p, err := StartPush(srv.URL+"/metrics/job/tokenwatt", time.Hour, newTestRun().Registry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, gz := sink.snapshot(); len(gz) != 1 || gz[0] {
		t.Fatalf("Pushgateway pushes (gzip flags %v), want one uncompressed", gz)
	}
}

func TestPushFailureIsNotFatal(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/api/v1/import/prometheus"
	dead.Close()
	p, err := StartPush(url, time.Hour, newTestRun().Registry(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err == nil || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("final push to a dead target: %v", err)
	}
}

func TestPushRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "victoria:8428", "ftp://x/y", "http://"} {
		if _, err := StartPush(u, time.Second, newTestRun().Registry(), testLogger(t)); err == nil {
			t.Errorf("StartPush(%q) accepted a bad URL", u)
		}
	}
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// Servers started at once (in-process runs, as the dump tests start three
// loadgens) each report their own version, with no shared global between
// them (go test -race checks the latter).
func TestServersReportTheirOwnVersion(t *testing.T) {
	var wg sync.WaitGroup
	servers := make([]*Server, 3)
	for i := range servers {
		wg.Go(func() {
			opts := testServerOptions("")
			opts.Version = fmt.Sprintf("v0.0.%d", i)
			s, err := Listen(opts)
			if err != nil {
				t.Error(err)
				return
			}
			if err := s.Serve(newTestRun().Registry(), nil); err != nil {
				t.Error(err)
			}
			servers[i] = s
		})
	}
	wg.Wait()
	for i, s := range servers {
		if s == nil {
			continue
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		if _, body := get(t, "http://"+s.Addr()+"/metrics", "", ""); !strings.Contains(body, fmt.Sprintf(`version="v0.0.%d"`, i)) {
			t.Errorf("server %d does not report its version v0.0.%d", i, i)
		}
	}
}
