package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// runScraped runs loadgen with args, serving its metrics at a free
// loopback address and lingering after the run, and returns the result
// and the /metrics page as it was once the run had ended (its
// tokenwatt_run_end_timestamp_seconds present).
func runScraped(t *testing.T, args ...string) (cliResult, map[string]*dto.MetricFamily) {
	t.Helper()
	addr := closedAddr(t)
	done := make(chan cliResult, 1)
	go func() {
		done <- runCLI(t, append(args, "--metrics-addr", addr, "--linger", "3s")...)
	}()
	var fams map[string]*dto.MetricFamily
	for fams == nil {
		select {
		case res := <-done:
			t.Fatalf("the run ended before its final metrics were read: exit %d\nstderr: %s", res.code, res.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		got, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("/metrics: %v", err)
		}
		if got["tokenwatt_run_end_timestamp_seconds"] != nil {
			fams = got
		}
	}
	return <-done, fams
}

// histogramCount is the number of observations of the histogram name
// (summed over its series; 0 when it has none).
func histogramCount(fams map[string]*dto.MetricFamily, name string) uint64 {
	var n uint64
	for _, m := range fams[name].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// tableCells are the values of the summary table's line that starts
// with label (nil when there is none).
func tableCells(table, label string) []string {
	for _, line := range strings.Split(table, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			return strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '/' })
		}
	}
	return nil
}

// TestNoStreamMeasuresE2EOnly: a non-streaming response has no chunk
// timing, so --no-stream leaves TTFT, ITL and TPOT unmeasured: null in
// records.jsonl, empty in summary.csv, dashes in the table, never
// observed by the run's histograms. E2E is measured, and the token counts
// still come from usage.
func TestNoStreamMeasuresE2EOnly(t *testing.T) {
	offlineHF(t)
	const n, tokens = 6, 8
	for _, api := range []string{"chat", "completions"} {
		t.Run(api, func(t *testing.T) {
			out := t.TempDir()
			res, fams := runScraped(t, "--sim", "--sim-ttft", "5ms", "--sim-itl", "1ms", "--api", api, "--no-stream",
				"--dataset", "synthetic", "--num-samples", fmt.Sprint(n), "--max-tokens", fmt.Sprint(tokens),
				"--min-tokens", fmt.Sprint(tokens), "--energy", "none", "--out", out)
			if res.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
			}

			raw, err := os.ReadFile(runFile(t, out, "records.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			for _, field := range []string{`"ttft_s":null`, `"tpot_s":null`, `"itl_s":null`} {
				if got := strings.Count(string(raw), field); got != n {
					t.Errorf("%d records with %s, want all %d:\n%s", got, field, n, raw)
				}
			}
			recs := readRecords(t, runFile(t, out, "records.jsonl"))
			if len(recs) != n {
				t.Fatalf("%d records, want %d", len(recs), n)
			}
			for _, r := range recs {
				if !r.OK() || r.E2E == nil || *r.E2E <= 0 || r.OutputTokens == nil || *r.OutputTokens != tokens ||
					r.TokensSource == nil || *r.TokensSource != "usage" || r.PromptTokens == nil {
					t.Errorf("record %d: outcome %s e2e %v output tokens %v (%v) prompt tokens %v", r.Seq, r.Outcome,
						deref(r.E2E), deref(r.OutputTokens), deref(r.TokensSource), deref(r.PromptTokens))
				}
			}

			row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
			for name, v := range map[string]*float64{
				"ttft_mean": row.TTFTMeanSeconds, "ttft_p50": row.TTFTP50Seconds, "ttft_p90": row.TTFTP90Seconds,
				"ttft_p99": row.TTFTP99Seconds, "itl_p50": row.ITLP50Seconds, "itl_p90": row.ITLP90Seconds,
				"itl_p99": row.ITLP99Seconds, "tpot_mean": row.TPOTMeanSeconds,
			} {
				if v != nil {
					t.Errorf("summary %s_seconds = %v, want empty (not measured)", name, *v)
				}
			}
			if row.E2EP50Seconds == nil || row.E2EP99Seconds == nil || deref(row.TotalCompletionTokens) != int64(n*tokens) {
				t.Errorf("summary: e2e p50 %v p99 %v, %v output tokens; want E2E and %d tokens",
					deref(row.E2EP50Seconds), deref(row.E2EP99Seconds), deref(row.TotalCompletionTokens), n*tokens)
			}

			for label, want := range map[string]int{"TTFT mean / p50 / p90 / p99": 4, "ITL p50 / p90 / p99": 3, "TPOT mean": 1} {
				cells := tableCells(res.stdout, label)
				if len(cells) != want || strings.Trim(strings.Join(cells, ""), "-") != "" {
					t.Errorf("table %q: %q, want %d dashes\n%s", label, cells, want, res.stdout)
				}
			}

			for _, h := range []string{"tokenwatt_request_ttft_seconds", "tokenwatt_request_itl_seconds", "tokenwatt_request_tpot_seconds"} {
				if got := histogramCount(fams, h); got != 0 {
					t.Errorf("%s observed %d values, want none", h, got)
				}
			}
			if got := histogramCount(fams, "tokenwatt_request_duration_seconds"); got != n {
				t.Errorf("tokenwatt_request_duration_seconds observed %d values, want %d", got, n)
			}
		})
	}
}
