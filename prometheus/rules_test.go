// Package prometheus holds no code, only tests of the shipped Prometheus
// configuration: prometheus.yml, the recording and alerting rules in
// rules/ and their promtool unit tests in rules/tests/.
package prometheus

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// promtool returns the path of promtool on PATH. A missing binary skips
// the test with a hint, or fails it when CI is set, so that CI cannot pass
// by skipping (the convention of internal/promtest).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	msg := "promtool not found on PATH: install the Debian package prometheus (.ci/run does)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runPromtool runs promtool with args in this directory and fails the
// test, with promtool's output, unless it exits 0.
func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	runPromtoolIn(t, ".", args...)
}

// runPromtoolIn is runPromtool in directory dir.
func runPromtoolIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	runPromtoolBin(t, promtool(t), dir, args...)
}

// runPromtoolBin runs the promtool at bin with args in dir.
func runPromtoolBin(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func glob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %s", pattern)
	}
	return files
}

// promtoolVersion is the major and minor version of promtool on PATH; a
// build without version ldflags counts as current (99.0).
func promtoolVersion(t *testing.T, bin string) (major, minor int) {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool --version: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`version (\d+)\.(\d+)\.`).FindStringSubmatch(string(out))
	if m == nil {
		return 99, 0
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor
}

func atLeast(major, minor, wantMajor, wantMinor int) bool {
	return major > wantMajor || major == wantMajor && minor >= wantMinor
}

// forPromtool returns the directory to run promtool in: this one, or, for
// a promtool older than what the files are written for (Prometheus 3.x),
// a copy without the lines it would reject: scrape_native_histograms in
// prometheus.yml (from 3.8; 2.x users pass
// --enable-feature=native-histograms instead, as the README says) and the
// rule tests' fuzzy_compare (from 3.5; 2.42's floats are the tests'
// exact expectations).
func forPromtool(t *testing.T, bin string) string {
	t.Helper()
	major, minor := promtoolVersion(t, bin)
	drop := map[string]bool{}
	if !atLeast(major, minor, 3, 8) {
		drop["scrape_native_histograms: true"] = true
	}
	if !atLeast(major, minor, 3, 5) {
		drop["fuzzy_compare: true"] = true
	}
	if len(drop) == 0 {
		return "."
	}
	dir := t.TempDir()
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var kept []string
		for _, l := range strings.SplitAfter(string(b), "\n") {
			if !drop[strings.TrimSpace(l)] {
				kept = append(kept, l)
			}
		}
		dst := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, []byte(strings.Join(kept, "")), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("promtool %d.%d: checking a copy without %v", major, minor, slices.Sorted(maps.Keys(drop)))
	return dir
}

// TestCheckConfig checks prometheus.yml, and through it the rule files
// its rule_files glob (resolved relative to the config file) loads.
func TestCheckConfig(t *testing.T) {
	runPromtoolIn(t, forPromtool(t, promtool(t)), "check", "config", "prometheus.yml")
}

func TestCheckRules(t *testing.T) {
	runPromtool(t, append([]string{"check", "rules"}, glob(t, "rules/*.yml")...)...)
}

// Which promtool runs which rule test file (rules/tests):
//
//   - tokenwatt.rules.test.yml and tokenwatt.alerts.test.yml: every
//     promtool from 2.42 (Debian's, TestDebianPromtool) on; before 3.5
//     without their fuzzy_compare line (forPromtool).
//   - tokenwatt.native_histograms.test.yml: promtool 3.5 and later
//     (ruleTestMinVersion); older ones skip it, saying why.
//
// .ci/run puts a current promtool (3.16, scripts/servers) first on PATH, so
// TestRuleUnitTests runs all three and TestDebianPromtool the first two.

// minVersion is the oldest promtool a rule test file is written for, and
// why.
type minVersion struct {
	major, minor int
	why          string
}

// nativeHistogramTests is the rule test file whose input series are
// native histograms.
const nativeHistogramTests = "tokenwatt.native_histograms.test.yml"

// ruleTestMinVersion holds, by base name, the rule test files that need a
// newer promtool than Debian's 2.42.
var ruleTestMinVersion = map[string]minVersion{
	// Native-histogram input series ({{schema:0 ...}}) are read from 2.47
	// (prometheus/prometheus#12668), a series whose increment changes
	// ({{a}}+{{b}}x60 {{c}}+{{d}}x29) from 3.4; the expected quantiles are
	// derived for the exponential interpolation inside a bucket of 3.0
	// (#14677), and come within one unit in the last place only with
	// fuzzy_compare (3.5).
	nativeHistogramTests: {3, 5, "native-histogram input series, quantiles interpolated as from Prometheus 3.0, compared with fuzzy_compare"},
}

// runRuleTests runs each rule test file in rules/tests with the promtool
// at bin, one subtest per file. A file written for a newer promtool is
// skipped with the reason; where required (the promtool on PATH) and CI is
// set it fails instead, so that CI cannot pass by skipping it.
func runRuleTests(t *testing.T, bin string, required bool) {
	t.Helper()
	major, minor := promtoolVersion(t, bin)
	dir := forPromtool(t, bin)
	for _, f := range glob(t, "rules/tests/*.yml") {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if v, ok := ruleTestMinVersion[filepath.Base(f)]; ok && !atLeast(major, minor, v.major, v.minor) {
				msg := fmt.Sprintf("promtool %d.%d is older than %d.%d, which %s needs (%s)", major, minor, v.major, v.minor, f, v.why)
				if required && os.Getenv("CI") != "" {
					t.Fatal(msg + "; CI needs a current promtool first on PATH (scripts/servers)")
				}
				t.Skip(msg)
			}
			runPromtoolBin(t, bin, dir, "test", "rules", f)
		})
	}
}

// TestRuleUnitTests runs the promtool unit tests in rules/tests that the
// promtool on PATH can run.
func TestRuleUnitTests(t *testing.T) {
	runRuleTests(t, promtool(t), true)
}

// debianPromtool is Debian's promtool (Prometheus 2.42) when it is
// installed and is not the one on PATH (which .ci/run makes a current
// 3.x): what a 2.x user checks the shipped files with.
const debianPromtool = "/usr/bin/promtool"

// TestDebianPromtool is the backward-compatibility check: with Debian's
// Prometheus 2.42, prometheus.yml (less the 3.x scrape_native_histograms
// line, as the README tells 2.x users) and the rules load, and the rule
// unit tests (less fuzzy_compare) pass, but for those written for a newer
// promtool (ruleTestMinVersion), which it skips. Skipped when promtool on
// PATH is that same binary: the tests above ran it.
func TestDebianPromtool(t *testing.T) {
	if _, err := os.Stat(debianPromtool); err != nil {
		t.Skip("no Debian promtool at " + debianPromtool)
	}
	if path, err := exec.LookPath("promtool"); err == nil {
		if a, b := realPath(path), realPath(debianPromtool); a == b {
			t.Skip("promtool on PATH is Debian's; TestCheckConfig and TestRuleUnitTests ran it")
		}
	}
	dir := forPromtool(t, debianPromtool)
	runPromtoolBin(t, debianPromtool, dir, "check", "config", "prometheus.yml")
	runRuleTests(t, debianPromtool, false)
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// recordName is level:metric:operations, each part non-empty.
var recordName = regexp.MustCompile(`^[a-z_]+:[a-zA-Z0-9_]+:[a-z0-9_]+$`)

// TestRuleConventions checks what promtool does not: recording rule names
// follow level:metric:operations and come in 5m and 1h pairs; every alert
// has summary, description and runbook annotations and a for duration;
// every alert has a promtool test in which it fires and one in which it
// must not; the main recording rules have value tests; and every
// recording rule that reads a histogram (histogram_quantile) has one in
// the native-histogram test file, whose input is native histograms.
func TestRuleConventions(t *testing.T) {
	records := map[string]bool{}
	var histRecords []string
	var alerts []string
	for _, f := range glob(t, "rules/*.yml") {
		var rf ruleFile
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				switch {
				case r.Record != "":
					if !recordName.MatchString(r.Record) {
						t.Errorf("%s: record %q is not level:metric:operations", f, r.Record)
					}
					if records[r.Record] {
						t.Errorf("%s: record %q defined twice", f, r.Record)
					}
					records[r.Record] = true
					if strings.Contains(r.Expr, "histogram_quantile(") {
						histRecords = append(histRecords, r.Record)
					}
				case r.Alert != "":
					alerts = append(alerts, r.Alert)
					for _, a := range []string{"summary", "description", "runbook"} {
						if strings.TrimSpace(r.Annotations[a]) == "" {
							t.Errorf("%s: alert %s has no %s annotation", f, r.Alert, a)
						}
					}
					if r.For == "" {
						t.Errorf("%s: alert %s has no for duration", f, r.Alert)
					}
				}
			}
		}
	}
	for r := range records {
		for _, pair := range [][2]string{{"rate5m", "rate1h"}, {"rate1h", "rate5m"}} {
			if strings.HasSuffix(r, pair[0]) {
				if other := strings.TrimSuffix(r, pair[0]) + pair[1]; !records[other] {
					t.Errorf("record %s has no %s counterpart %s", r, pair[1], other)
				}
			}
		}
	}
	want := []string{
		"TokenwattJoulesPerTokenRegression",
		"TokenwattWhPer1000QueriesRegression",
		"TokenwattTTFTp99SLOBreach",
		"TokenwattErrorRatioHigh",
		"TokenwattEnergyDataAbsent",
		"TokenwattGPUDown",
		"TokenwattGPUSeriesGone",
		"TokenwattEnergySourceDown",
		"TokenwattIdlePowerAboveBaseline",
		"TokenwattLoadgenBehindSchedule",
	}
	if fmt.Sprint(alerts) != fmt.Sprint(want) {
		t.Errorf("alerts = %v, want %v", alerts, want)
	}

	fires := map[string]bool{}
	silent := map[string]bool{}
	tested := map[string]bool{}
	nativeTested := map[string]bool{}
	for _, f := range glob(t, "rules/tests/*.yml") {
		var tf ruleTestFile
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
			for _, e := range tc.PromQLExprTest {
				tested[e.Expr] = true
				if filepath.Base(f) == nativeHistogramTests {
					nativeTested[e.Expr] = true
				}
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("alert %s has no promtool test in which it fires", a)
		}
		if !silent[a] {
			t.Errorf("alert %s has no promtool test in which it must not fire", a)
		}
	}
	for _, r := range []string{
		"run_id:tokenwatt_joules_per_output_token:ratio_rate5m",
		"run_id:tokenwatt_joules_per_output_token:ratio_rate1h",
		"run_id:tokenwatt_wh_per_1000_queries:ratio_rate5m",
		"run_id:tokenwatt_wh_per_1000_queries:ratio_rate1h",
		"run_id_phase:tokenwatt_attributed_energy_joules:ratio_rate5m",
		"run_id:tokenwatt_output_tokens:rate5m",
		"run_id:tokenwatt_requests:rate5m",
		"run_id:tokenwatt_request_errors:ratio_rate5m",
		"hostname_gpu:tokenwatt_gpu_energy_joules:rate5m",
		"cluster:tokenwatt_gpu_energy_joules:rate5m",
		"cluster:vllm_joules_per_generation_token:ratio_rate5m",
	} {
		if !records[r] {
			t.Errorf("recording rule %s is missing", r)
		}
		if !tested[r] {
			t.Errorf("recording rule %s has no promql_expr_test", r)
		}
	}
	if len(histRecords) == 0 {
		t.Error("no recording rule reads a histogram")
	}
	for _, r := range histRecords {
		if !nativeTested[r] {
			t.Errorf("recording rule %s reads a histogram but has no promql_expr_test in rules/tests/%s", r, nativeHistogramTests)
		}
	}
}
