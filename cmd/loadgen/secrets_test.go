package main

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// authScrape is an energy endpoint that wants basic auth: it serves the
// /metrics of upstream (a simulator's simulated GPU) to requests with
// user:pass, and makes scrapes 3 and 4 answer HTTP 500 and scrape 5 lose
// its connection, so that failures are reported mid-run.
type authScrape struct {
	*httptest.Server
	mu       sync.Mutex
	scrapes  int
	badAuths []string
}

func newAuthScrape(t *testing.T, upstream, user, pass string) *authScrape {
	t.Helper()
	a := &authScrape{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		a.mu.Lock()
		if !ok || u != user || p != pass {
			a.badAuths = append(a.badAuths, r.Header.Get("Authorization"))
			a.mu.Unlock()
			w.Header().Set("WWW-Authenticate", `Basic realm="gpu"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		a.scrapes++
		n := a.scrapes
		a.mu.Unlock()
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
		resp, err := http.Get(upstream + "/metrics")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *authScrape) counts() (scrapes int, badAuths []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.scrapes, append([]string(nil), a.badAuths...)
}

// pushSink records what is pushed to it (a Pushgateway's path: plain
// bodies).
type pushSink struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newPushSink(t *testing.T) *pushSink {
	t.Helper()
	s := &pushSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *pushSink) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.bodies, "\n")
}

// TestScrapeCredentialsAreNeverWritten: an energy endpoint's user:password
// (--energy scrape:http://user:pass@host/metrics) is sent as basic auth,
// and appears in no output of the run: stderr (the start line, every
// scrape failure), stdout, the run's files (records.jsonl, energy.jsonl
// with its header and failed samples, report.json), summary.csv and the
// pushed metrics; nor when the endpoint is down at start.
func TestScrapeCredentialsAreNeverWritten(t *testing.T) {
	offlineHF(t)
	const user, pass = "gpu-reader", "pw-do-not-leak-5150"
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 10*time.Millisecond, 5*time.Millisecond
	upstream := startSim(t, cfg)
	scr := newAuthScrape(t, upstream, user, pass)
	push := newPushSink(t)
	host := strings.TrimPrefix(scr.URL, "http://")
	secretURL := "scrape:http://" + user + ":" + pass + "@" + host + "/metrics"

	out := t.TempDir()
	res := runCLI(t, "--endpoint", upstream+"/v1", "--energy", secretURL, "--energy-interval", "20ms",
		"--dataset", "synthetic", "--num-samples", "20", "--max-tokens", "8", "--min-tokens", "8",
		"--push-url", push.URL+"/metrics/job/tokenwatt", "--push-interval", "50ms", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	scrapes, bad := scr.counts()
	if len(bad) > 0 || scrapes < 6 {
		t.Fatalf("the endpoint saw %d scrapes with the URL's credentials (want at least 6, the failures being 3 to 5) and these without: %q",
			scrapes, bad)
	}
	if !strings.Contains(res.stderr, user+":xxxxx@"+host) || !strings.Contains(res.stderr, "HTTP 500") {
		t.Errorf("stderr does not report the scrape failure with the URL redacted (%s:xxxxx@%s):\n%s", user, host, res.stderr)
	}
	if energy := readFile(t, runFile(t, out, "energy.jsonl")); !strings.Contains(energy, `"error"`) {
		t.Errorf("energy.jsonl records no failed sample:\n%s", energy)
	}
	assertNoSecret(t, pass, out, map[string]string{"stdout": res.stdout, "stderr": res.stderr, "pushed metrics": push.all()})

	// Down at start: the error names the endpoint, redacted.
	down := closedAddr(t)
	res = runCLI(t, "--endpoint", upstream+"/v1", "--energy", "scrape:http://"+user+":"+pass+"@"+down+"/metrics",
		"--dataset", "synthetic", "--num-samples", "2", "--out", out)
	if res.code != exitUsage || !strings.Contains(res.stderr, user+":xxxxx@"+down) {
		t.Errorf("exit %d, want %d with the endpoint redacted; stderr:\n%s", res.code, exitUsage, res.stderr)
	}
	assertNoSecret(t, pass, out, map[string]string{"stdout": res.stdout, "stderr": res.stderr})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertNoSecret fails if secret is in any file under dir or any of the
// named outputs.
func assertNoSecret(t *testing.T, secret, dir string, outputs map[string]string) {
	t.Helper()
	for name, s := range outputs {
		if strings.Contains(s, secret) {
			t.Errorf("the secret appears in %s:\n%s", name, s)
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		if s := readFile(t, path); strings.Contains(s, secret) {
			t.Errorf("the secret appears in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Errorf("no files under %s", dir)
	}
}

// TestRedirectsAreNotFollowed: an endpoint that redirects generation
// requests (307) to another port of the same host gets its requests
// recorded as failures naming the Location, and the other server never
// sees a request, nor the API key; an endpoint whose /v1/models
// redirects stops the run before it starts, naming the Location.
func TestRedirectsAreNotFollowed(t *testing.T) {
	offlineHF(t)
	const key = "sk-do-not-forward-1618"
	t.Setenv("OPENAI_API_KEY", key)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = time.Millisecond, time.Millisecond
	upstream, err := url.Parse(startSim(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	// other is a working server (the simulator behind a proxy) that
	// records what reaches it.
	var mu sync.Mutex
	var reached []string
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reached = append(reached, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	defer other.Close()
	// front answers /v1/models itself unless modelsToo, and redirects
	// the rest to other.
	front := func(modelsToo bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/models" && !modelsToo {
				proxy.ServeHTTP(w, r)
				return
			}
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}

	out := t.TempDir()
	res := runCLI(t, "--endpoint", front(false)+"/v1", "--dataset", "synthetic", "--num-samples", "5", "--max-tokens", "4",
		"--max-consecutive-failures", "0", "--out", out)
	if res.code != exitFailed {
		t.Errorf("exit %d, want %d (every request failed)\nstderr: %s", res.code, exitFailed, res.stderr)
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	if len(recs) != 5 {
		t.Errorf("%d records, want 5", len(recs))
	}
	wantLoc := "redirect to " + other.URL + "/v1/chat/completions not followed"
	for _, r := range recs {
		if r.Outcome != "http_4xx" || r.HTTPStatus == nil || *r.HTTPStatus != http.StatusTemporaryRedirect || r.Error == nil ||
			!strings.Contains(*r.Error, wantLoc) {
			t.Errorf("record outcome %s status %v error %v, want http_4xx, 307 and %q", r.Outcome, deref(r.HTTPStatus), deref(r.Error), wantLoc)
		}
	}
	if rows := readSummary(t, filepath.Join(out, "summary.csv")); len(rows) != 1 || rows[0].FailedPrompts != 5 ||
		!strings.Contains(rows[0].Failures, "http_4xx=5") {
		t.Errorf("summary does not count 5 http_4xx failures: %+v", rows)
	}
	assertNoSecret(t, key, out, map[string]string{"stdout": res.stdout, "stderr": res.stderr})

	res = runCLI(t, "--endpoint", front(true)+"/v1", "--dataset", "synthetic", "--num-samples", "2", "--out", t.TempDir())
	if last := lastLine(res.stderr); res.code != exitUsage || !strings.Contains(last, "redirect to "+other.URL+"/v1/models not followed") ||
		strings.Contains(last, "cannot reach") {
		t.Errorf("models redirected: exit %d, last line %q; want %d and the Location", res.code, last, exitUsage)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(reached) > 0 {
		t.Errorf("the server redirected to was sent %d requests: %q", len(reached), reached)
	}
}
