package promtest

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
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
// answers. It scrapes nothing: data comes in through ImportURL or
// remote_write.
func StartVictoriaMetrics(t testing.TB) *VictoriaMetrics {
	t.Helper()
	return StartVictoriaMetricsWith(t, VMConfig{})
}

// VMConfig configures StartVictoriaMetricsWith.
type VMConfig struct {
	// Targets (host:port, path /metrics) are scraped by VictoriaMetrics'
	// own scraper (promscrape) as job TargetsJob every Interval. Its
	// scraper reads the text format, so histograms are stored as classic
	// _bucket, _sum and _count series. When a target stops answering,
	// VictoriaMetrics writes a staleness marker after each series of its
	// last scrape, as Prometheus does; unlike Prometheus, its range
	// selectors return those markers as NaN samples.
	Targets  []string
	Interval time.Duration
}

// StartVictoriaMetricsWith starts VictoriaMetrics as c says and waits
// until /health answers. Its first scrape comes within one Interval, but
// a new series takes up to 10 s to be searchable: Flush, then WaitFor.
// -promscrape.config is a flag of 1.79 and current releases alike.
func StartVictoriaMetricsWith(t testing.TB, c VMConfig) *VictoriaMetrics {
	t.Helper()
	bin := binary(t, "victoria-metrics", "victoria-metrics")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var scrape string
	if len(c.Targets) > 0 {
		if c.Interval <= 0 {
			t.Fatal("StartVictoriaMetricsWith: targets without a scrape interval")
		}
		scrape = filepath.Join(dir, "scrape.yml")
		if err := os.WriteFile(scrape, []byte(vmScrapeConfig(c.Targets, c.Interval)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, "victoria-metrics", bin, func(addr string) []string {
		args := []string{
			"-httpListenAddr=" + addr,
			"-storageDataPath=" + data,
			"-retentionPeriod=1d",
			"-search.latencyOffset=0s",
			"-search.disableCache",
			"-loggerLevel=INFO",
		}
		if scrape != "" {
			args = append(args, "-promscrape.config="+scrape)
		}
		return args
	}, "/health")
	return &VictoriaMetrics{p: p}
}

// vmScrapeConfig is a -promscrape.config file (Prometheus' scrape_configs
// syntax) that scrapes targets as job TargetsJob every interval.
func vmScrapeConfig(targets []string, interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n", promDuration(interval), promDuration(interval))
	quoted := make([]string, len(targets))
	for i, target := range targets {
		quoted[i] = fmt.Sprintf("%q", target)
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", TargetsJob, strings.Join(quoted, ", "))
	return b.String()
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

// WaitForStale flushes and polls until VictoriaMetrics holds a staleness
// marker after the last sample of every series selector picks in the
// last 5 minutes (at least one series): a scraped target went away and
// its series are marked stale. It returns those series' raw samples,
// markers (NaN) included, and fails the test when timeout passes first.
func (v *VictoriaMetrics) WaitForStale(t testing.TB, selector string, timeout time.Duration) model.Matrix {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v.Flush(t)
		m := MatrixAt(t, v.URL(), selector+"[5m]", time.Now())
		fresh := 0
		for _, s := range m {
			if n := len(s.Values); n == 0 || !math.IsNaN(float64(s.Values[n-1].Value)) {
				fresh++
			}
		}
		if len(m) > 0 && fresh == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d series not marked stale within %v", selector, fresh, len(m), timeout)
		}
		time.Sleep(5 * pollInterval)
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
