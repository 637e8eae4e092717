package promtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prometheus is a prometheus process started for one test, with its own
// data dir and config, on a free loopback port.
//
// It ingests native histograms: with scrape_native_histograms: true in
// its configuration on Prometheus 3.9 and later, with
// --enable-feature=native-histograms before (2.42 rejects the field, 3.9
// ignores the flag). Prometheus then asks targets for protobuf and stores
// a histogram that has native buckets as a native histogram only: its
// classic _bucket, _count and _sum series are not stored. Query such
// histograms with histogram_count, histogram_sum and histogram_quantile.
type Prometheus struct {
	p *process
}

// Job names in the generated configuration: "prometheus" scrapes the
// Prometheus itself, TargetsJob the targets given to StartPrometheus.
const (
	SelfJob    = "prometheus"
	TargetsJob = "targets"
)

// StartPrometheus starts Prometheus scraping itself (job "prometheus") and
// scrapeTargets (host:port, path /metrics, job "targets") every
// scrapeInterval, and waits until it is ready. Ready is not scraped:
// Prometheus' first scrape comes up to about 5 s later, so wait for data
// with WaitFor, e.g. on count(up{job="targets"}).
func StartPrometheus(t testing.TB, scrapeTargets []string, scrapeInterval time.Duration) *Prometheus {
	t.Helper()
	return StartPrometheusWithRules(t, scrapeTargets, scrapeInterval, nil)
}

// StartPrometheusWithRules is StartPrometheus with rule files loaded
// (absolute paths), evaluated every scrapeInterval unless a group sets
// its own interval.
func StartPrometheusWithRules(t testing.TB, scrapeTargets []string, scrapeInterval time.Duration, ruleFiles []string) *Prometheus {
	t.Helper()
	return StartPrometheusWith(t, Config{Targets: scrapeTargets, Interval: scrapeInterval, RuleFiles: ruleFiles})
}

// Config configures StartPrometheusWith.
type Config struct {
	Targets   []string      // host:port, scraped at /metrics as job "targets"
	Interval  time.Duration // scrape and rule evaluation interval
	RuleFiles []string      // absolute paths
	// ClassicHistogramsOnly leaves native histograms off: histograms are
	// stored as classic _bucket, _sum and _count series.
	ClassicHistogramsOnly bool
	// RemoteWrite, when set, is a remote_write URL (e.g. a
	// VictoriaMetrics' /api/v1/write) that gets every sample, native
	// histograms included.
	RemoteWrite string
}

// StartPrometheusWith starts Prometheus as c says and waits until it is
// ready (see StartPrometheus).
func StartPrometheusWith(t testing.TB, c Config) *Prometheus {
	t.Helper()
	scrapeTargets, scrapeInterval, ruleFiles := c.Targets, c.Interval, c.RuleFiles
	bin := binary(t, "prometheus", "prometheus")
	byConfig := BinaryVersion(t, bin).NativeHistogramsByConfig()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "prometheus.yml")
	p := start(t, "prometheus", bin, func(addr string) []string {
		conf := prometheusConfig(addr, scrapeTargets, scrapeInterval, ruleFiles, !c.ClassicHistogramsOnly && byConfig)
		if c.RemoteWrite != "" {
			// Batches go out within a second (the default waits up to 5 s
			// for a full one), so a test waits for the data, not the queue.
			conf += fmt.Sprintf("remote_write:\n  - url: %q\n    send_native_histograms: true\n    queue_config:\n      batch_send_deadline: 1s\n", c.RemoteWrite)
		}
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + data,
			"--storage.tsdb.retention.time=1d",
			"--web.listen-address=" + addr,
			"--log.level=info",
		}
		if !c.ClassicHistogramsOnly && !byConfig {
			args = append(args, "--enable-feature=native-histograms")
		}
		return args
	}, "/-/ready")
	return &Prometheus{p: p}
}

// prometheusConfig is a prometheus.yml for self (Prometheus' own address),
// targets and rule files, asking for native histograms in the
// configuration (Prometheus 3.9+) when nativeHistograms is set. YAML flow sequences of quoted strings need no
// escaping for host:port values; %q quotes paths well enough for YAML's
// double-quoted strings.
func prometheusConfig(self string, targets []string, interval time.Duration, ruleFiles []string, nativeHistograms bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		promDuration(interval), promDuration(interval), promDuration(interval))
	if nativeHistograms {
		fmt.Fprintf(&b, "  scrape_native_histograms: true\n")
	}
	if len(ruleFiles) > 0 {
		fmt.Fprintf(&b, "rule_files:\n")
		for _, f := range ruleFiles {
			fmt.Fprintf(&b, "  - %q\n", f)
		}
	}
	fmt.Fprintf(&b, "scrape_configs:\n")
	fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", SelfJob, self)
	if len(targets) > 0 {
		quoted := make([]string, len(targets))
		for i, target := range targets {
			quoted[i] = fmt.Sprintf("%q", target)
		}
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs:\n      - targets: [%s]\n", TargetsJob, strings.Join(quoted, ", "))
	}
	return b.String()
}

// promDuration writes d in Prometheus' duration syntax, which has no
// fractions: whole milliseconds.
func promDuration(d time.Duration) string {
	return fmt.Sprintf("%dms", d.Milliseconds())
}

// URL is the base URL of Prometheus' HTTP API and UI.
func (p *Prometheus) URL() string { return "http://" + p.p.addr }

// Log is everything Prometheus has logged so far.
func (p *Prometheus) Log() string { return p.p.log.String() }
