package promtest

import (
	"net/http"
	"path/filepath"
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
