package run

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/loadgen"
)

// TestSaturationIsReported: sends the pacer released late (fed to the
// runner's counters, as the pacer counts them) make the closing window
// saturated; stop says so, with the reason, for the summary's
// client_saturated column and the final warning, and the metric is set.
// Whether a real overload on this machine gets there is
// cmd/loadgen's TestTimingClientSaturationIsReported's (TOKENWATT_TIMING=1)
// and go run ./bench's.
func TestSaturationIsReported(t *testing.T) {
	rr := &loadgen.Runner{}
	m := exporter.NewRun(exporter.RunLabels{RunID: "r"}, exporter.RunOptions{})
	w := startSaturationWatch(rr, loadgen.SaturationThresholds{}, m, slog.New(slog.DiscardHandler))
	rr.Progress.Paced.Store(1000)
	rr.Progress.Late.Store(40)
	saturated, summary := w.stop()
	if !saturated || !strings.Contains(summary, "40 of 1000 sends more than 5ms behind schedule") ||
		!strings.Contains(summary, "latencies may describe the load generator") {
		t.Errorf("stop() = %v, %q; want saturated, with the late sends as the reason", saturated, summary)
	}
	const want = `
# HELP tokenwatt_client_saturated 1 while the load generator itself limits the run (behind its open-loop schedule, out of CPU, or kept waiting for a CPU), so latencies may describe the client; 0 otherwise.
# TYPE tokenwatt_client_saturated gauge
tokenwatt_client_saturated{backend="",model="",run_id="r",scenario=""} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "tokenwatt_client_saturated"); err != nil {
		t.Error(err)
	}
}
