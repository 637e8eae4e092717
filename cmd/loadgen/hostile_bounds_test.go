package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/internal/hostile"
	"github.com/tokenwatt/tokenwatt/report"
)

// hostileRunArgs are a short run against a hostile server's URL.
func hostileRunArgs(url, out string, n int, extra ...string) []string {
	return append([]string{"--endpoint", url, "--model", hostile.Model, "--energy", "none",
		"--dataset", "synthetic:mean=8,n=4", "--num-samples", strconv.Itoa(n), "--out", out}, extra...)
}

// A server streaming more text chunks than a record lists (issue 16,
// defect 8: an endless stream grew the record line to 130 MB): each
// record lists backends.MaxITL gaps and counts the rest in
// itl_truncated, its line stays a few hundred kB, and the summary
// (report.json) and the ITL histogram still count every gap.
func TestRecordsCapITLs(t *testing.T) {
	offlineHF(t)
	const n, extra = 2, 900
	chunks := backends.MaxITL + 1 + extra
	srv := hostile.Start(t, hostile.Config{Mode: hostile.EndlessSSEChunks, Limit: int64(chunks)})
	out := t.TempDir()
	res, fams := runScraped(t, hostileRunArgs(srv.URL, out, n, "--timeout", "2m")...)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}

	f, err := os.Open(runFile(t, out, "records.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	lines := 0
	for sc.Scan() {
		lines++
		if len(sc.Bytes()) > 400<<10 {
			t.Errorf("record line of %d bytes", len(sc.Bytes()))
		}
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		itl, _ := rec["itl_s"].([]any)
		if rec["outcome"] != "ok" || len(itl) != backends.MaxITL || rec["itl_truncated"] != float64(extra) ||
			rec["text_chunks"] != float64(chunks) {
			t.Errorf("record: outcome %v, %d itl_s, itl_truncated %v, text_chunks %v; want ok, %d, %d, %d",
				rec["outcome"], len(itl), rec["itl_truncated"], rec["text_chunks"], backends.MaxITL, extra, chunks)
		}
	}
	if err := sc.Err(); err != nil || lines != n {
		t.Fatalf("%d records (%v), want %d", lines, err, n)
	}

	raw, err := os.ReadFile(runFile(t, out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	want := n * (chunks - 1)
	if d := rep.Latency["itl"]; d == nil || d.Count != int64(want) {
		t.Errorf("report.json ITL distribution %+v, want %d gaps", d, want)
	}
	if got := histogramCount(fams, "tokenwatt_request_itl_seconds"); got != uint64(want) {
		t.Errorf("ITL histogram counted %d gaps, want %d", got, want)
	}
}

// A push target answering 500 with a body without end (issue 16, defect
// 6: 8.7 GB RSS and a 1.59 GB log line): the run succeeds, and every
// warning about it quotes at most a few KiB of the body. The target stops
// after 2 MiB, so that code which reads it all fails here cheaply.
func TestPushTargetWithEndlessErrorBody(t *testing.T) {
	offlineHF(t)
	srv := hostile.Start(t, hostile.Config{Mode: hostile.EndlessBody, Status: 500, Limit: 2 << 20})
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=8,n=4",
		"--num-samples", "20", "--energy", "none", "--out", t.TempDir(), "--metrics-addr=",
		"--push-url", srv.URL+"/api/v1/import/prometheus", "--push-interval", "20ms")
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %.2000s", res.code, res.stderr)
	}
	warned := false
	for _, line := range strings.Split(res.stderr, "\n") {
		if len(line) > 16<<10 {
			t.Errorf("a %d-byte line on stderr: %.200s…", len(line), line)
		}
		warned = warned || strings.Contains(line, "push to "+srv.URL)
	}
	if !warned || srv.Requests() == 0 {
		t.Errorf("%d pushes, no warning about them:\n%.2000s", srv.Requests(), res.stderr)
	}
}

// `loadgen dump --timeout` is one deadline for every query of the
// command (issue 16, defect 7: dump overran --timeout 15s by 10 s):
// against a Prometheus that answers each query, correctly, in 0.3 s, a
// 0.7 s timeout ends dump within its third query; against one that never
// finishes an answer, within the first. Either way: exit 2, saying so.
func TestDumpTimeoutCoversEveryQuery(t *testing.T) {
	empty := `{"status":"success","data":{"resultType":"vector","result":[]}}`
	for _, tc := range []struct {
		name string
		cfg  hostile.Config
	}{
		{"slow answers", hostile.Config{Mode: hostile.SlowBody, Interval: 100 * time.Millisecond, Limit: 3, Body: empty}},
		{"endless answer", hostile.Config{Mode: hostile.SlowBody, Interval: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := hostile.Start(t, tc.cfg)
			start := time.Now()
			res := runCLI(t, "dump", "--prometheus", srv.URL, "--all", "--timeout", "700ms")
			if res.code != 2 || !strings.Contains(res.stderr, "did not answer within --timeout 700ms") {
				t.Errorf("exit %d, stderr %q; want 2 and the timeout named", res.code, res.stderr)
			}
			// Generous, for a busy machine: only a deadline per query
			// (or none) takes this long.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("dump took %v with --timeout 700ms", d)
			}
			if n := srv.Requests(); tc.cfg.Limit > 0 && n < 2 {
				t.Errorf("%d queries answered before the deadline, want at least 2", n)
			}
		})
	}
}
