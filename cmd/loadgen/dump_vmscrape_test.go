package main

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/promtest"
)

// TestDumpAgreesOnVictoriaMetricsScrape: VictoriaMetrics' own scraper
// (-promscrape.config, every second) reads the run's /metrics. When the
// loadgen exits, VictoriaMetrics writes a staleness marker after each of
// its series, which its range selectors return as NaN samples; the test
// dumps only once they are stored. The row agrees with summary.csv:
// counts and tokens exact, energy within 1 %, percentiles within the
// classic bucket of the records' value (the scraper reads the text
// format, so no native histograms), with a warning that says so.
func TestDumpAgreesOnVictoriaMetricsScrape(t *testing.T) {
	offlineHF(t)
	addr := closedAddr(t)
	vm := promtest.StartVictoriaMetricsWith(t, promtest.VMConfig{Targets: []string{addr}, Interval: time.Second})
	vm.Flush(t)
	promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`count(up{job=%q})`, promtest.TargetsJob), 20*time.Second, promtest.Equal(1))

	out := t.TempDir()
	const runID = "dump-vm-scrape"
	res := runCLI(t, dumpRunArgs(runID, out, "--metrics-addr", addr, "--linger", "2500ms")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	// The loadgen is gone: wait until every series of the run ends with
	// its staleness marker, which is what dump must read past.
	sel := fmt.Sprintf(`{run_id=%q}`, runID)
	stale := vm.WaitForStale(t, sel, 30*time.Second)
	nan := 0
	for _, s := range stale {
		for _, p := range s.Values {
			if math.IsNaN(float64(p.Value)) {
				nan++
			}
		}
	}
	t.Logf("%d series of the run, %d NaN samples (staleness markers) stored", len(stale), nan)
	promtest.WaitFor(t, vm.URL(), `count(last_over_time(tokenwatt_run_end_timestamp_seconds`+sel+`[5m]))`, 15*time.Second, promtest.Equal(1))

	local := readLocal(t, out)
	got, stderr := dumpRow(t, "--prometheus", vm.URL(), "--run-id", runID)
	t.Logf("dump stderr:\n%s", stderr)
	checkAgreementClassic(t, got, local)
	checkEnergy(t, got, local.row)
	// A closed loop has no schedule lag (docs/metrics.md): 0 locally, and
	// 0 from the classic buckets too, not a point inside the first one.
	if l, g := local.row.ScheduleLagP99Seconds, got.ScheduleLagP99Seconds; l == nil || *l != 0 || g == nil || *g != 0 {
		t.Errorf("schedule_lag_p99_seconds: dump %v, local %v; want 0", deref(g), deref(l))
	}
	if !strings.Contains(stderr, "NaN samples dropped") {
		t.Errorf("--explain says no NaN sample was dropped: the test did not exercise the staleness markers\n%s", stderr)
	}
	if !strings.Contains(stderr, "no native histograms") {
		t.Errorf("no warning about classic buckets:\n%s", stderr)
	}
	if got.RunID != runID || !got.Simulated || got.GPUUUIDs != local.row.GPUUUIDs || math.Abs(*got.TotalDurationSeconds-*local.row.TotalDurationSeconds) > 0.001 {
		t.Errorf("row: run %q simulated %v gpu_uuids %q duration %v; local %q %q %v", got.RunID, got.Simulated, got.GPUUUIDs,
			deref(got.TotalDurationSeconds), local.row.RunID, local.row.GPUUUIDs, deref(local.row.TotalDurationSeconds))
	}
}
