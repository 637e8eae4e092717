package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestMain keeps the CLI's metrics server off the default port, which a
// real loadgen (or another test binary) may hold: every run in these tests
// binds a free port unless it asks for one. It also skips energy_star's
// 10 s idle baseline except where a test asks for one.
func TestMain(m *testing.M) {
	os.Setenv("TOKENWATT_METRICS_ADDR", "127.0.0.1:0")
	os.Setenv("TOKENWATT_IDLE_BASELINE", "0s")
	os.Exit(m.Run())
}

// offlineHF points the Hugging Face loader at a closed loopback port and an
// empty cache, so no test ever leaves the machine and hf:// datasets are
// "unreachable, not cached".
func offlineHF(t *testing.T) {
	t.Helper()
	t.Setenv("TOKENWATT_HF_ENDPOINT", "http://"+closedAddr(t))
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

// closedAddr returns a loopback address that refuses connections.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs loadgen in-process with args.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, &out, &errb, false)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// runFile is the path of name (records.jsonl, energy.jsonl, report.json)
// in the one run directory under out.
func runFile(t *testing.T, out, name string) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(out, "*", name))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("%s: want one run directory with %s, found %v (%v)", out, name, dirs, err)
	}
	return dirs[0]
}

func readRecords(t *testing.T, path string) []loadgen.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []loadgen.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r loadgen.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

func readSummary(t *testing.T, path string) []*report.Row {
	t.Helper()
	rows, err := report.ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestQuickStartEnergyStarSim(t *testing.T) {
	offlineHF(t)
	t.Setenv("TOKENWATT_IDLE_BASELINE", "10s") // energy_star's own, as a user gets it
	out := t.TempDir()
	res := runCLI(t, "--scenario", "energy_star", "--sim", "--num-samples", "50", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "SIMULATED") {
		t.Errorf("summary table does not say the run was simulated:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, "synthetic") {
		t.Errorf("stderr does not say synthetic prompts replaced the unreachable dataset:\n%s", res.stderr)
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	if len(recs) != 50 {
		t.Fatalf("records.jsonl has %d lines, want 50", len(recs))
	}
	for _, r := range recs {
		if !r.OK() || !r.Simulated || r.OutputTokens == nil || *r.OutputTokens < 50 || *r.OutputTokens > 100 {
			t.Fatalf("unexpected record %+v", r)
		}
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.csv"))
	if err != nil {
		t.Fatal(err)
	}
	header := strings.SplitN(string(raw), "\n", 2)[0]
	poc := "benchmark_name,backend,model,total_prompts,successful_prompts,failed_prompts,total_duration_seconds,avg_latency_seconds,total_tokens,total_prompt_tokens,total_completion_tokens,throughput_tokens_per_second,timestamp,"
	if !strings.HasPrefix(header, poc) || !strings.Contains(header, ",schema_version,") {
		t.Fatalf("summary header %q does not start with the POC's 13 columns and schema_version", header)
	}
	rows := readSummary(t, filepath.Join(out, "summary.csv"))
	if len(rows) != 1 {
		t.Fatalf("summary.csv has %d rows, want 1", len(rows))
	}
}
