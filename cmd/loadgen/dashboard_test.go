package main

import (
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/grafana"
	"github.com/tokenwatt/tokenwatt/internal/promtest"
	"github.com/tokenwatt/tokenwatt/loadgen"
)

// shippedRules copies prometheus/rules/*.yml into a temporary directory
// for a test Prometheus, with the 1h group's "interval: 1m" removed so it
// is evaluated at the test's 1 s evaluation interval like the 5m group:
// otherwise its first evaluation could come a minute after the run.
func shippedRules(t *testing.T) []string {
	t.Helper()
	src, err := filepath.Glob(filepath.Join("..", "..", "prometheus", "rules", "*.yml"))
	if err != nil || len(src) < 2 {
		t.Fatalf("rule files: %v %v", src, err)
	}
	dir := t.TempDir()
	var out []string
	intervals := 0
	for _, f := range src {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		intervals += strings.Count(s, "\n    interval: 1m\n")
		s = strings.ReplaceAll(s, "\n    interval: 1m\n", "\n")
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, dst)
	}
	if intervals != 1 {
		t.Fatalf("found %d group intervals of 1m in the rule files, want 1 (the 1h group): update shippedRules", intervals)
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// TestDashboardQueriesReturnData is the shipped stack in miniature: the
// simulator as the vLLM server (its vllm:* metrics and simulated GPU
// energy), a loadgen run reading that energy with --energy scrape:, and a
// real Prometheus scraping both every second with the shipped recording
// and alerting rules loaded. At the end of the run, every query of every
// shipped dashboard (panels, annotations, variables), with the variables
// set to this run, must return at least one series that is not all NaN.
func TestDashboardQueriesReturnData(t *testing.T) {
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 5*time.Millisecond, 2*time.Millisecond
	simURL := startSim(t, cfg)
	u, err := url.Parse(simURL)
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := closedAddr(t)
	prom := promtest.StartPrometheusWithRules(t, []string{u.Host, metricsAddr}, time.Second, shippedRules(t))
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"} == 1)`, 20*time.Second, promtest.Equal(1))

	const runID = "dashboard-test"
	out := t.TempDir()
	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(t, "--scenario", "soak", "--endpoint", simURL, "--dataset", "synthetic",
			"--num-samples", "200", "--rate", "40", "--max-tokens", "32",
			"--energy", "scrape:"+simURL+"/metrics", "--idle-baseline", "2s",
			"--run-id", runID, "--out", out, "--metrics-addr", metricsAddr, "--linger", "15s")
	}()
	sel := fmt.Sprintf(`{run_id=%q}`, runID)
	promtest.WaitFor(t, prom.URL(), `count(tokenwatt_run_end_timestamp_seconds`+sel+`)`, 40*time.Second, promtest.Equal(1))
	// The run has ended and Prometheus has its final values; let the rules
	// (every second) catch up, then query everything at one instant
	// before the loadgen stops serving and its series go stale.
	promtest.WaitFor(t, prom.URL(), `count(run_id:tokenwatt_joules_per_output_token:ratio_rate1h`+sel+`)`, 10*time.Second, promtest.Equal(1))
	time.Sleep(2 * time.Second)
	at := time.Now()

	// The quantile recording rules' native-histogram branch (promtool
	// cannot test it): this Prometheus stores only native histograms, and
	// the rules' values match the records within a bucket (factor 1.1).
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	ttfts := samplesOf(recs, func(r *loadgen.Record) []float64 { return one(r.TTFT) })
	itls := samplesOf(recs, func(r *loadgen.Record) []float64 { return r.ITL })
	for _, c := range []struct {
		rule string
		xs   []float64
		q    float64
	}{
		{"run_id:tokenwatt_request_ttft_seconds:p50_rate5m", ttfts, 0.5},
		{"run_id:tokenwatt_request_ttft_seconds:p99_rate5m", ttfts, 0.99},
		{"run_id:tokenwatt_request_itl_seconds:p50_rate5m", itls, 0.5},
		{"run_id:tokenwatt_request_itl_seconds:p99_rate1h", itls, 0.99},
	} {
		got, found := promtest.QueryAt(t, prom.URL(), c.rule+sel, at)
		lo, hi := bracket(c.xs, c.q)
		if !found || got < lo || got > hi {
			t.Errorf("%s = %v (found %v), want within [%v, %v] from records.jsonl", c.rule, got, found, lo, hi)
		}
	}

	vars := map[string]string{
		"run_id": runID, "scenario": "soak", "model": cfg.Model, "gpu": "0",
		// The compare dashboard's two runs: the same one, so each ratio is 1.
		"base": runID, "new": runID,
		// Grafana's own: a rate window covering the run, and the range.
		"__rate_interval": "1m", "__range": "1h", "__interval": "15s",
	}
	substitute := func(expr string) string {
		for k, v := range vars {
			expr = strings.ReplaceAll(expr, "${"+k+"}", v)
		}
		// Longest names first, so $__range_s could not be cut short.
		for _, k := range []string{"__rate_interval", "__interval", "__range", "scenario", "run_id", "model", "gpu", "base", "new"} {
			expr = strings.ReplaceAll(expr, "$"+k, vars[k])
		}
		return expr
	}

	files, err := filepath.Glob(filepath.Join("..", "..", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		qs, err := grafana.QueriesOf(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, q := range qs {
			name := filepath.Base(f) + ": " + q.Where
			expr := substitute(q.Expr)
			if strings.Contains(expr, "$") {
				t.Errorf("%s: unknown variable left in %q", name, expr)
				continue
			}
			checked++
			if m := labelValues.FindStringSubmatch(expr); m != nil {
				// A variable: its label must take the run's value.
				want := vars[strings.TrimPrefix(q.Where, "variable ")]
				v := promtest.VectorAt(t, prom.URL(), fmt.Sprintf("count by (%s) (%s)", m[2], m[1]), at)
				found := false
				for _, s := range v {
					found = found || string(s.Metric[model.LabelName(m[2])]) == want
				}
				if !found {
					t.Errorf("%s: %s offers %v, not %q", name, expr, v, want)
				}
				continue
			}
			v := promtest.VectorAt(t, prom.URL(), expr, at)
			if len(v) == 0 {
				t.Errorf("%s returns no series: %s", name, expr)
				continue
			}
			allNaN := true
			for _, s := range v {
				allNaN = allNaN && s.Histogram == nil && math.IsNaN(float64(s.Value))
			}
			if allNaN {
				t.Errorf("%s returns only NaN: %s = %v", name, expr, v)
			}
			// The compare dashboard's ratios of a run to itself are 1.
			if strings.Contains(q.Where, "new / base") && (len(v) != 1 || math.Abs(float64(v[0].Value)-1) > 1e-9) {
				t.Errorf("%s: a run over itself is %v, want 1", name, v)
			}
		}
	}
	if checked < 40 {
		t.Errorf("checked %d queries; the dashboards should have more", checked)
	}
	t.Logf("checked %d dashboard queries", checked)

	res := <-done
	if res.code != 0 {
		t.Fatalf("loadgen exit %d\nstderr: %s", res.code, res.stderr)
	}
}
