package promtest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestPrometheusScrapesItself(t *testing.T) {
	p := StartPrometheus(t, nil, time.Second)
	if !strings.HasPrefix(p.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want a loopback URL", p.URL())
	}
	WaitFor(t, p.URL(), `up{job="prometheus"}`, 20*time.Second, Equal(1))
	if v, found := Query(t, p.URL(), "1 + 1"); !found || v != 2 {
		t.Errorf("scalar 1 + 1 = %v, %v; want 2, true", v, found)
	}
	if _, found := Query(t, p.URL(), "no_such_metric"); found {
		t.Error("no_such_metric found")
	}
}

// TestPrometheusNativeHistograms shows what Prometheus 2.42 does with a
// histogram that has both native and classic buckets (the shape of
// tokenwatt's latency histograms): it stores the native histogram and
// drops the classic series. After the target goes away the series are
// stale; QueryAt a time before that still reads them (last_over_time does
// not: in 2.42 it turns a native histogram into the float 0).
func TestPrometheusNativeHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "promtest_latency_seconds",
		Help:                        "Test latencies.",
		Buckets:                     prometheus.DefBuckets,
		NativeHistogramBucketFactor: 1.1,
	})
	reg.MustRegister(h)
	for i := 1; i <= 100; i++ {
		h.Observe(float64(i) / 1000)
	}
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()
	p := StartPrometheus(t, []string{strings.TrimPrefix(target.URL, "http://")}, time.Second)

	WaitFor(t, p.URL(), `histogram_count(promtest_latency_seconds)`, 20*time.Second, Equal(100))
	if v, _ := Query(t, p.URL(), `histogram_sum(promtest_latency_seconds)`); v < 5.049 || v > 5.051 {
		t.Errorf("histogram_sum = %v, want 5.05", v)
	}
	q := `histogram_quantile(0.99, promtest_latency_seconds)`
	if v, _ := Query(t, p.URL(), q); v < 0.099/1.1 || v > 0.099*1.1 {
		t.Errorf("%s = %v, want 0.099 within a native bucket (factor 1.1)", q, v)
	}
	if v, found := Query(t, p.URL(), `promtest_latency_seconds_count`); found {
		t.Logf("Prometheus now stores classic series beside native ones (_count = %v); update the Prometheus doc comment", v)
	}

	up := time.Now()
	target.Close()
	WaitFor(t, p.URL(), `count(up{job="targets"} == 0)`, 10*time.Second, Equal(1))
	WaitFor(t, p.URL(), `count(histogram_count(promtest_latency_seconds)) or vector(0)`, 5*time.Second, Equal(0))
	if v, _ := QueryAt(t, p.URL(), `histogram_count(promtest_latency_seconds)`, up); v != 100 {
		t.Errorf("histogram_count at %v, before the target went away = %v, want 100", up, v)
	}
	if v, _ := Query(t, p.URL(), `histogram_count(last_over_time(promtest_latency_seconds[1m]))`); v == 100 {
		t.Log("last_over_time now keeps native histograms; update this test's comment")
	}
}

func TestVictoriaMetricsImport(t *testing.T) {
	v := StartVictoriaMetrics(t)
	if !strings.HasSuffix(v.ImportURL(), "/api/v1/import/prometheus") || !strings.HasPrefix(v.ImportURL(), v.URL()) {
		t.Errorf("ImportURL() = %q", v.ImportURL())
	}
	body := "promtest_requests_total{outcome=\"ok\"} 7\npromtest_requests_total{outcome=\"timeout\"} 2\n"
	resp, err := http.Post(v.ImportURL(), "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", v.ImportURL(), resp.Status)
	}
	v.Flush(t)
	WaitFor(t, v.URL(), `sum(promtest_requests_total)`, 5*time.Second, Equal(9))
}

// TestVictoriaMetricsScrapes: VictoriaMetrics' own scraper stores a
// target's counter; when the target goes away it writes a staleness
// marker, which a range selector returns as a NaN sample (dump must drop
// it) while last_over_time skips it.
func TestVictoriaMetricsScrapes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "promtest_requests_total", Help: "Test requests."})
	reg.MustRegister(c)
	c.Add(7)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()
	v := StartVictoriaMetricsWith(t, VMConfig{Targets: []string{strings.TrimPrefix(target.URL, "http://")}, Interval: time.Second})
	v.Flush(t)
	WaitFor(t, v.URL(), `promtest_requests_total{job="targets"}`, 20*time.Second, Equal(7))

	target.Close()
	m := v.WaitForStale(t, `promtest_requests_total`, 20*time.Second)
	if s := m[0].Values; len(m) != 1 || len(s) < 2 || s[len(s)-2].Value != 7 {
		t.Errorf("raw samples %v; want 7s, then one NaN", m)
	}
	// An instant query finds nothing on 1.151; 1.79 still returns 7.
	if x, found := Query(t, v.URL(), `promtest_requests_total`); found && x != 7 {
		t.Errorf("instant query = %v, want 7 or nothing", x)
	}
	if x, _ := Query(t, v.URL(), `last_over_time(promtest_requests_total[5m])`); x != 7 {
		t.Errorf("last_over_time = %v, want 7 (the marker skipped)", x)
	}
}

func TestQueryRejectsResultsThatAreNotOneValue(t *testing.T) {
	p := StartPrometheus(t, nil, time.Second)
	for _, tc := range []struct {
		promql string
		want   error
	}{
		{`vector(1) or label_replace(vector(2), "a", "b", "", "")`, errNotSingle},
		{`vector(1)[1m:]`, errNotSingle},
		{`sum(`, nil},
	} {
		_, _, err := query(p.URL(), tc.promql, time.Now())
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("query(%q) error = %v, want %v", tc.promql, err, tc.want)
		}
	}
}

// recordingTB records how a test would end instead of ending it.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recordingTB) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestMissingBinarySkipsOrFailsInCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		rec := &recordingTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			StartPrometheus(rec, nil, time.Second)
		}()
		<-done
		got, other := rec.skipped, rec.failed
		if ci != "" {
			got, other = rec.failed, rec.skipped
		}
		if !strings.Contains(got, "install the Debian package prometheus (.ci/run does)") || other != "" {
			t.Errorf("CI=%q: skipped %q, failed %q", ci, rec.skipped, rec.failed)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	got := prometheusConfig("127.0.0.1:9090", []string{"127.0.0.1:1", "127.0.0.1:2"}, 1500*time.Millisecond, []string{"/r/a.yml"}, false)
	want := `global:
  scrape_interval: 1500ms
  scrape_timeout: 1500ms
  evaluation_interval: 1500ms
rule_files:
  - "/r/a.yml"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:9090"]
  - job_name: targets
    static_configs:
      - targets: ["127.0.0.1:1", "127.0.0.1:2"]
`
	if got != want {
		t.Errorf("config:\n%s\nwant:\n%s", got, want)
	}
	// Prometheus 3.9 and later: native histograms by configuration.
	got = prometheusConfig("127.0.0.1:9090", nil, time.Second, nil, true)
	if !strings.Contains(got, "global:\n  scrape_interval: 1000ms\n  scrape_timeout: 1000ms\n  evaluation_interval: 1000ms\n  scrape_native_histograms: true\n") {
		t.Errorf("config with native histograms:\n%s", got)
	}
}

func TestVersionParsing(t *testing.T) {
	for _, tc := range []struct {
		v        Version
		byConfig bool
	}{
		{Version{2, 42, true}, false},
		{Version{3, 8, true}, false},
		{Version{3, 9, true}, true},
		{Version{3, 16, true}, true},
		{Version{4, 0, true}, true},
		{Version{}, true}, // a build without version ldflags is current
	} {
		if got := tc.v.NativeHistogramsByConfig(); got != tc.byConfig {
			t.Errorf("%+v: by config %v, want %v", tc.v, got, tc.byConfig)
		}
	}
	for out, want := range map[string]Version{
		"prometheus, version 2.42.0+ds (branch: debian/sid, revision: 2.42.0+ds-5+b5)": {2, 42, true},
		"promtool, version 3.16.0 (branch: HEAD, revision: abc)":                       {3, 16, true},
		"prometheus, version  (branch: , revision: unknown)":                           {},
	} {
		if v := parseVersion(out); v != want {
			t.Errorf("%q: %+v, want %+v", out, parseVersion(out), want)
		}
	}
}
