package promtest

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// VictoriaMetrics is a single-node victoria-metrics process started for
// one test, with its own storage dir, on a free loopback port.
//
// It runs with -search.latencyOffset=0s and -search.disableCache, so a
// sample is queryable as soon as VictoriaMetrics has made it searchable,
// not 30 s later and not hidden behind a cached result. Searchable takes
// about 1 s for a new sample of a known series but 8-10 s for a series'
// first sample (VictoriaMetrics 1.79 flushes its index that rarely): call
// Flush after ingesting, then poll with WaitFor.
type VictoriaMetrics struct {
	p *process
}

// StartVictoriaMetrics starts VictoriaMetrics and waits until /health
// answers.
func StartVictoriaMetrics(t testing.TB) *VictoriaMetrics {
	t.Helper()
	bin := binary(t, "victoria-metrics", "victoria-metrics")
	data := filepath.Join(t.TempDir(), "data")
	p := start(t, "victoria-metrics", bin, func(addr string) []string {
		return []string{
			"-httpListenAddr=" + addr,
			"-storageDataPath=" + data,
			"-retentionPeriod=1d",
			"-search.latencyOffset=0s",
			"-search.disableCache",
			"-loggerLevel=INFO",
		}
	}, "/health")
	return &VictoriaMetrics{p: p}
}

// URL is the base URL of VictoriaMetrics' Prometheus-compatible query API
// (URL()+"/api/v1/query").
func (v *VictoriaMetrics) URL() string { return "http://" + v.p.addr }

// ImportURL accepts the Prometheus text exposition format, the format that
// loadgen --push-url sends.
func (v *VictoriaMetrics) ImportURL() string { return v.URL() + "/api/v1/import/prometheus" }

// Log is everything VictoriaMetrics has logged so far.
func (v *VictoriaMetrics) Log() string { return v.p.log.String() }

// Flush makes everything ingested so far searchable within about a second
// (GET /internal/force_flush), instead of the 8-10 s a new series
// otherwise takes to appear in queries.
func (v *VictoriaMetrics) Flush(t testing.TB) {
	t.Helper()
	resp, err := http.Get(v.URL() + "/internal/force_flush")
	if err != nil {
		t.Fatalf("flush victoria-metrics: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("flush victoria-metrics: GET /internal/force_flush: %s", resp.Status)
	}
}

// Version is VictoriaMetrics' release, from vm_app_version at /metrics;
// unknown (Known false) for builds without version ldflags, Debian's
// 1.79 among them.
func (v *VictoriaMetrics) Version(t testing.TB) Version {
	t.Helper()
	resp, err := http.Get(v.URL() + "/metrics")
	if err != nil {
		t.Fatalf("victoria-metrics /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := vmVersionRE.FindSubmatch(b)
	if m == nil {
		return Version{}
	}
	var ver Version
	ver.Major, _ = strconv.Atoi(string(m[1]))
	ver.Minor, _ = strconv.Atoi(string(m[2]))
	ver.Known = true
	return ver
}

var vmVersionRE = regexp.MustCompile(`vm_app_version\{[^}]*short_version="v(\d+)\.(\d+)\.`)
