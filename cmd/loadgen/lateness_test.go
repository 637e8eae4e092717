package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/report"
)

// TestClientLatenessFromStampedSim: a run against the in-process
// simulator with --sim-stamp-chunks measures every text chunk's client
// lateness: report.json's client.lateness_s counts one per text chunk
// of the records, each record has its client_lateness_max_s, and the
// table shows the lines; without stamps, none of it.
func TestClientLatenessFromStampedSim(t *testing.T) {
	offlineHF(t)
	for _, stamp := range []bool{true, false} {
		out := t.TempDir()
		args := []string{"--sim", "--sim-ttft", "1ms", "--sim-itl", "200us", "--dataset", "synthetic:mean=20,n=10",
			"--max-tokens", "16", "--ignore-eos", "--concurrency", "4", "--num-samples", "12", "--energy", "none", "--out", out}
		if stamp {
			args = append(args, "--sim-stamp-chunks")
		}
		res := runCLI(t, args...)
		if res.code != 0 {
			t.Fatalf("stamps %v: exit %d\nstderr: %s", stamp, res.code, res.stderr)
		}
		rep, err := report.ReadReport(runFile(t, out, report.ReportFileName))
		if err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, runFile(t, out, "records.jsonl"))
		chunks := 0
		for _, r := range recs {
			chunks += r.TextChunks
			if (r.ClientLatenessMax != nil) != stamp {
				t.Errorf("stamps %v: record %d client_lateness_max_s %v", stamp, r.Seq, deref(r.ClientLatenessMax))
			}
		}
		late, timer := rep.Client.LatenessS, rep.Client.ServerTimerLatenessS
		lines := regexp.MustCompile(`(?m)^  client lateness p50 / p99 / max +[0-9.]+ / [0-9.]+ / [0-9.]+ ms$`)
		if !stamp {
			if late != nil || timer != nil || strings.Contains(res.stdout, "lateness") {
				t.Errorf("without stamps: lateness %+v, timer %+v, table:\n%s", late, timer, res.stdout)
			}
			continue
		}
		if chunks != 12*16 || late == nil || late.Count != int64(chunks) || timer == nil || timer.Count != int64(chunks) {
			t.Fatalf("%d text chunks; client.lateness_s %+v, server_timer_lateness_s %+v", chunks, late, timer)
		}
		if late.Min < 0 || late.Percentiles["p99"] < late.Percentiles["p50"] || late.Max < late.Percentiles["p99"] {
			t.Errorf("client.lateness_s %+v", late)
		}
		if !lines.MatchString(res.stdout) || !regexp.MustCompile(`(?m)^  simulator timer lateness p99 +-?[0-9.]+ ms$`).MatchString(res.stdout) {
			t.Errorf("table lacks the lateness lines:\n%s", res.stdout)
		}
	}
}

// TestClientLatenessInReportFile: report.json spells the new fields as
// docs/report.md says, null when no stamp came.
func TestClientLatenessInReportFile(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=4",
		"--max-tokens", "2", "--num-samples", "4", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	raw := readFile(t, runFile(t, out, report.ReportFileName))
	if !strings.Contains(raw, `"lateness_s": null`) || !strings.Contains(raw, `"server_timer_lateness_s": null`) {
		t.Errorf("report.json lacks the null lateness fields:\n%s", raw)
	}
}
