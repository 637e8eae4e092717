package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// hideSimulated serves target through a reverse proxy that drops
// X-Tokenwatt-Simulated from every answer: the simulator's API without
// its own word that it is simulated.
func hideSimulated(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(r *http.Response) error {
		r.Header.Del(sim.SimulatedHeader)
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStandaloneSimDetected: a run against a standalone `loadgen sim`,
// without --sim, is SIMULATED in every output (the table's first line,
// summary.csv, the records, tokenwatt_run_info, the log), whether the
// server's X-Tokenwatt-Simulated header or the energy source's
// simulated="true" gives it away; a server and energy source that say
// neither leave the run real.
func TestStandaloneSimDetected(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 2*time.Millisecond, time.Millisecond
	simURL := startSim(t, cfg)
	hidden := hideSimulated(t, simURL)
	energy := "scrape:" + simURL + "/metrics"
	for _, tc := range []struct {
		name, endpoint, energy string
		why                    string // what the log says was detected; "" for a real run
	}{
		{"server and energy", simURL, energy, "the server at " + simURL + "/v1 answers X-Tokenwatt-Simulated: true; " +
			`the energy source's tokenwatt_energy_exporter_info says simulated="true"`},
		{"server", simURL, "none", "the server at " + simURL + "/v1 answers X-Tokenwatt-Simulated: true)"},
		{"energy", hidden, energy, `(detected: the energy source's tokenwatt_energy_exporter_info says simulated="true")`},
		{"neither", hidden, "none", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			res, fams := runScraped(t, "--endpoint", tc.endpoint, "--energy", tc.energy, "--energy-interval", "50ms",
				"--idle-baseline", "0s", "--dataset", "synthetic", "--num-samples", "4", "--max-tokens", "8",
				"--min-tokens", "0", "--out", out)
			if res.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
			}
			want := tc.why != ""
			if got := strings.Contains(res.stderr, "SIMULATED run (detected: ") && strings.Contains(res.stderr, tc.why); got != want {
				t.Errorf("log says detected %v, want %v (%s):\n%s", got, want, tc.why, res.stderr)
			}
			if got := strings.HasPrefix(res.stdout, "SIMULATED"); got != want {
				t.Errorf("table opens with SIMULATED: %v, want %v:\n%s", got, want, res.stdout)
			}
			if !want && (strings.Contains(res.stdout, "SIMULATED") || strings.Contains(res.stderr, "SIMULATED")) {
				t.Errorf("a real run says SIMULATED:\n%s\n%s", res.stderr, res.stdout)
			}
			if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.Simulated != want {
				t.Errorf("summary.csv simulated = %v, want %v", row.Simulated, want)
			}
			recs := readRecords(t, runFile(t, out, "records.jsonl"))
			for _, r := range recs {
				if r.Simulated != want || !r.OK() {
					t.Errorf("record %d: simulated %v (want %v), outcome %s", r.Seq, r.Simulated, want, r.Outcome)
				}
			}
			if len(recs) != 4 {
				t.Errorf("%d records, want 4", len(recs))
			}
			info := fams["tokenwatt_run_info"].GetMetric()
			if len(info) != 1 {
				t.Fatalf("%d tokenwatt_run_info series, want 1", len(info))
			}
			for _, l := range info[0].GetLabel() {
				if l.GetName() == "simulated" && (l.GetValue() == "true") != want {
					t.Errorf(`tokenwatt_run_info{simulated=%q}, want %v`, l.GetValue(), want)
				}
			}
		})
	}
}
