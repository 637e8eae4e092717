package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/compare"
)

// simRun runs the simulator for compare: 200 requests of exactly 8
// tokens, 20 at a time, whose TTFT and gaps are jittered widely (the
// same jitter in every run: the simulator's seed) so that the machine's
// own timing noise is small beside the requests' spread.
func simRun(t *testing.T, out, id string, extra ...string) string {
	t.Helper()
	args := append([]string{"--sim", "--scenario", "throughput", "--dataset", "synthetic", "--num-samples", "200", "--concurrency", "20",
		"--max-tokens", "8", "--min-tokens", "8", "--sim-ttft", "40ms", "--sim-itl", "20ms", "--sim-jitter", "20ms", "--sim-max-num-seqs", "16",
		"--energy", "sim", "--run-id", id, "--out", out}, extra...)
	if res := runCLI(t, args...); res.code != 0 {
		t.Fatalf("run %s: exit %d\nstderr: %s", id, res.code, res.stderr)
	}
	return filepath.Join(out, id)
}

func compareJSON(t *testing.T, res cliResult) *compare.Result {
	t.Helper()
	var r compare.Result
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("compare --format json: %v\nstdout: %s\nstderr: %s", err, res.stdout, res.stderr)
	}
	return &r
}

// TestCompareSimRuns: a run compared with an identical copy of itself
// differs in no tested figure; a run whose simulated GPU spends 10 % more
// energy per token has a significantly higher J per output token at 95 %
// confidence, and --fail-on exits 1 for it; a run with other token bounds
// is refused, naming them, unless --allow-different. The simulated energy
// is per token only (no idle or per-sequence power), so J per output token
// does not depend on how fast this machine ran each run. Two separate runs
// of the same seeded simulator are compared too; that they differ in no
// latency figure holds only on an otherwise idle machine, so it is
// checked with TOKENWATT_TIMING=1 (a busy neighbour slows one run and not
// the other, which compare rightly reports).
func TestCompareSimRuns(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	perToken := func(j string) []string {
		return []string{"--sim-idle-watts", "0", "--sim-watts-per-seq", "0", "--sim-joules-per-token", j}
	}
	base := simRun(t, out, "base", perToken("1")...)
	copyOf := filepath.Join(out, "copy")
	if err := os.CopyFS(copyOf, os.DirFS(base)); err != nil {
		t.Fatal(err)
	}
	hot := simRun(t, out, "hot", perToken("1.1")...)
	tok := simRun(t, out, "tok", "--max-tokens", "12", "--num-samples", "5") // fewer prompts: another dataset too

	const failOn = "joules_per_output_token>+5%"
	identical := func(what, other string, strict bool) {
		res := runCLI(t, "compare", base, other, "--format", "json", "--fail-on", failOn)
		if res.code != 0 {
			t.Errorf("%s: exit %d, want 0\nstderr: %s", what, res.code, res.stderr)
		}
		r := compareJSON(t, res)
		tested := 0
		for _, f := range r.Comparisons[0].Figures {
			if f.CI == nil {
				continue
			}
			tested++
			t.Logf("%s: %-24s %+6.1f %% [%+.1f, %+.1f] %s", what, f.Name, *f.Estimate, f.CI.Lo, f.CI.Hi, f.Verdict)
			if (strict || f.Name == "joules_per_output_token") && f.Verdict != compare.VerdictNone {
				t.Errorf("%s: %s %s (%+.1f %%, CI [%+.1f, %+.1f])", what, f.Name, f.Verdict, *f.Estimate, f.CI.Lo, f.CI.Hi)
			}
		}
		if tested < 6 {
			t.Errorf("%s: %d figures tested, want J/output token, TTFT p50 and p99, TPOT mean, E2E p50 and p99", what, tested)
		}
	}
	identical("a run and its copy", copyOf, true)
	same := simRun(t, out, "same", perToken("1")...)
	identical("two runs of one seeded simulator", same, timingEnabled())
	var res cliResult

	res = runCLI(t, "compare", base, hot, "--format", "json", "--fail-on", failOn)
	if res.code != 1 || !strings.Contains(res.stderr, "regression beyond --fail-on "+failOn) {
		t.Errorf("10 %% more power: exit %d, want 1\nstderr: %s", res.code, res.stderr)
	}
	r := compareJSON(t, res)
	c := r.Comparisons[0]
	i := slices.IndexFunc(c.Figures, func(f compare.Figure) bool { return f.Name == "joules_per_output_token" })
	f := c.Figures[i]
	if f.CI == nil || f.CI.Lo <= 0 || f.Verdict != compare.VerdictHigher || !f.Worse || *f.Estimate < 7 || *f.Estimate > 13 {
		t.Errorf("10 %% more power: J/output token %+v (estimate %v), want about +10 %%, significant at 95 %%", f, deref(f.Estimate))
	} else {
		t.Logf("10 %% more power: J/output token %+.1f %% [%+.1f, %+.1f] at %.0f %%", *f.Estimate, f.CI.Lo, f.CI.Hi, 100*r.Method.Confidence)
	}
	if len(c.Regressions) != 1 || r.Method.Confidence != 0.95 || r.Method.Name != "percentile bootstrap" {
		t.Errorf("regressions %q, method %+v", c.Regressions, r.Method)
	}
	// The table says the same, with its method.
	res = runCLI(t, "compare", base, hot, "--fail-on", failOn)
	for _, want := range []string{"higher, worse", "REGRESSION joules_per_output_token>+5.0%: +", "Method: percentile bootstrap", "central 95 %", "SIMULATED"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, res.stdout)
		}
	}

	res = runCLI(t, "compare", base, tok)
	if res.code != 2 || !strings.Contains(res.stderr, "is not comparable with the base run: ") || !strings.Contains(res.stderr, "; max_tokens: 8 vs 12") ||
		!strings.Contains(res.stderr, "--allow-different") {
		t.Errorf("other token bounds: exit %d, want 2 naming max_tokens\nstderr: %s", res.code, res.stderr)
	}
	res = runCLI(t, "compare", filepath.Join(base, "report.json"), tok, "--allow-different", "--format", "markdown")
	if res.code != 0 || !strings.Contains(res.stdout, "**different** (`--allow-different`): max_tokens: 8 vs 12") ||
		!strings.Contains(res.stdout, "| figure | base | new |") {
		t.Errorf("--allow-different: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, bad := range [][]string{{base, same, "--fail-on", "itl_p50>+5%"}, {base, filepath.Join(out, "nope")}, {base, same, "--confidence", "95"}} {
		if res := runCLI(t, append([]string{"compare"}, bad...)...); res.code != 2 {
			t.Errorf("compare %q: exit %d, want 2\nstderr: %s", bad, res.code, res.stderr)
		}
	}
}
