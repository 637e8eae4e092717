package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// torchPython is a Python 3 that can import torch: python3 on PATH, else
// Debian's /usr/bin/python3 (python3-torch). Without one the test skips,
// or fails when CI is set (.ci/run installs python3-torch).
func torchPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import torch").Run() == nil {
			return path
		}
	}
	msg := "no python3 that can import torch: install the Debian package python3-torch (.ci/run does)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

const serverPy = "../../backends/pytorch/server.py"

// lockedBuffer is a bytes.Buffer a child process writes while a test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTorchServer runs backends/pytorch/server.py with args on a free
// loopback port, waits for /ping, and returns its base URL and its output
// so far. The server is killed when the test ends; its output is logged
// if the test failed.
func startTorchServer(t *testing.T, args ...string) (string, func() string) {
	t.Helper()
	py := torchPython(t)
	addr := closedAddr(t)
	host, port, _ := strings.Cut(addr, ":")
	var out lockedBuffer
	cmd := exec.Command(py, append([]string{serverPy, "--host", host, "--port", port, "--threads", "1"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("server.py output:\n%s", out.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("server.py exited before serving:\n%s", out.String())
		default:
		}
		if resp, err := http.Get(base + "/ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base, out.String
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server.py did not answer /ping within 90 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPyTorchBackendAgainstTinyServer: loadgen --backend pytorch against
// the reference server's tiny model, a real PyTorch forward pass per
// token on the CPU. With min = max new tokens every request yields
// exactly that many tokens, and the records' timings are consistent.
func TestPyTorchBackendAgainstTinyServer(t *testing.T) {
	offlineHF(t)
	base, _ := startTorchServer(t, "--tiny", "--device", "cpu")
	out := t.TempDir()
	const maxTokens = 12
	res := runCLI(t, "--backend", "pytorch", "--endpoint", base, "--dataset", "synthetic:mean=40,n=20", "--num-samples", "20",
		"--max-tokens", fmt.Sprint(maxTokens), "--min-tokens", fmt.Sprint(maxTokens), "--temperature", "0",
		"--energy", "none", "--out", out, "--run-id", "torch-tiny")
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	recs := readRecords(t, runFile(t, out, "records.jsonl"))
	if len(recs) != 20 {
		t.Fatalf("%d records, want 20", len(recs))
	}
	for _, r := range recs {
		if r.Outcome != "ok" || r.Backend != "pytorch" || r.Model != "tiny" {
			t.Fatalf("record %d: outcome %s backend %s model %s error %v", r.Seq, r.Outcome, r.Backend, r.Model, deref(r.Error))
		}
		if r.OutputTokens == nil || *r.OutputTokens != maxTokens || r.TokensSource == nil || *r.TokensSource != "usage" || r.TextChunks != maxTokens {
			t.Errorf("record %d: %v output tokens (%v), %d text chunks; want %d from usage", r.Seq, deref(r.OutputTokens), deref(r.TokensSource), r.TextChunks, maxTokens)
		}
		if r.PromptTokens == nil || *r.PromptTokens <= 0 {
			t.Errorf("record %d: prompt tokens %v", r.Seq, deref(r.PromptTokens))
		}
		// min = max new tokens: server.py stops at max_new_tokens.
		if deref(r.FinishReason) != "length" || r.Text != nil || r.Prompt != nil {
			t.Errorf("record %d: finish reason %v, text %v, prompt %v; want length and no text", r.Seq, deref(r.FinishReason), deref(r.Text), r.Prompt)
		}
		if r.TTFT == nil || *r.TTFT <= 0 || r.E2E == nil || len(r.ITL) != maxTokens-1 {
			t.Fatalf("record %d: ttft %v e2e %v, %d ITLs", r.Seq, deref(r.TTFT), deref(r.E2E), len(r.ITL))
		}
		sum := *r.TTFT
		for _, g := range r.ITL {
			if g <= 0 {
				t.Errorf("record %d: ITL %v", r.Seq, g)
			}
			sum += g
		}
		// E2E is the last chunk minus send: TTFT plus every gap.
		if d := sum - *r.E2E; d > 1e-6 || d < -1e-6 {
			t.Errorf("record %d: ttft + ITLs = %v, e2e %v", r.Seq, sum, *r.E2E)
		}
		if r.TPOT == nil || *r.TPOT <= 0 {
			t.Errorf("record %d: tpot %v", r.Seq, deref(r.TPOT))
		}
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.Backend != "pytorch" || row.TotalPrompts != 20 || row.SuccessfulPrompts != 20 || deref(row.TotalCompletionTokens) != int64(20*maxTokens) ||
		row.TTFTP50Seconds == nil || row.ITLP99Seconds == nil || row.E2EP99Seconds == nil || row.TPOTMeanSeconds == nil ||
		row.TotalDurationSeconds == nil || row.ThroughputTokensPerSecond == nil || row.AvgLatencySeconds == nil {
		t.Errorf("summary row incomplete: %+v", row)
	}

	// --no-stream: server.py answers one JSON body; E2E and usage are
	// measured, TTFT, ITL and TPOT are not. --save-text keeps the prompt
	// and the answer.
	out = t.TempDir()
	res = runCLI(t, "--backend", "pytorch", "--endpoint", base, "--no-stream", "--save-text", "--dataset", "synthetic:mean=40,n=3", "--num-samples", "3",
		"--max-tokens", fmt.Sprint(maxTokens), "--min-tokens", fmt.Sprint(maxTokens), "--temperature", "0",
		"--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("--no-stream: exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
		if !r.OK() || r.E2E == nil || *r.E2E <= 0 || r.TTFT != nil || r.TPOT != nil || r.ITL != nil ||
			r.OutputTokens == nil || *r.OutputTokens != maxTokens || deref(r.TokensSource) != "usage" {
			t.Errorf("--no-stream record %d: outcome %s e2e %v ttft %v tpot %v itl %v, %v output tokens (%v)", r.Seq, r.Outcome,
				deref(r.E2E), deref(r.TTFT), deref(r.TPOT), r.ITL, deref(r.OutputTokens), deref(r.TokensSource))
		}
		if prompt, _ := r.Prompt.(string); deref(r.FinishReason) != "length" || r.Text == nil || *r.Text == "" || prompt == "" {
			t.Errorf("--no-stream --save-text record %d: finish reason %v, text %q, prompt %q", r.Seq, deref(r.FinishReason), deref(r.Text), prompt)
		}
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.TTFTP50Seconds != nil || row.TPOTMeanSeconds != nil ||
		row.ITLP50Seconds != nil || row.E2EP50Seconds == nil {
		t.Errorf("--no-stream summary: ttft p50 %v tpot mean %v itl p50 %v e2e p50 %v", deref(row.TTFTP50Seconds),
			deref(row.TPOTMeanSeconds), deref(row.ITLP50Seconds), deref(row.E2EP50Seconds))
	}

	// Bad input: a model the server does not serve.
	res = runCLI(t, "--backend", "pytorch", "--endpoint", base, "--model", "gpt2", "--dataset", "synthetic",
		"--num-samples", "1", "--energy", "none", "--out", t.TempDir())
	if res.code != 2 || !strings.Contains(res.stderr, `model "gpt2" is not served at `+base+`; served: "tiny"`) {
		t.Errorf("wrong model: exit %d, stderr %s", res.code, res.stderr)
	}
}

// TestPOCPyTorchConfigRunsAgainstTinyServer: the Python POC's
// pytorch_test.yaml shape (backend.type pytorch, microsoft/phi-2, min 10
// and max 50 new tokens) runs against the tiny server serving under that
// name. Only the dataset is swapped: the test has no network for the
// Hugging Face dataset.
func TestPOCPyTorchConfigRunsAgainstTinyServer(t *testing.T) {
	offlineHF(t)
	base, _ := startTorchServer(t, "--tiny", "--device", "cpu", "--model-name", "microsoft/phi-2")
	fixture, err := filepath.Abs("../../loadgen/scenario/testdata/poc/pytorch_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	res := runCLI(t, "--config", fixture, "--endpoint", base, "--dataset", "synthetic:mean=40,n=5", "--energy", "none")
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	rows := readSummary(t, "results/pytorch_test_results.csv")
	if len(rows) != 1 || rows[0].Backend != "pytorch" || rows[0].Model != "microsoft/phi-2" || rows[0].TotalPrompts != 5 || rows[0].SuccessfulPrompts != 5 {
		t.Fatalf("summary: %+v", rows)
	}
	for _, r := range readRecords(t, runFile(t, "benchmark_output", "records.jsonl")) {
		if n := deref(r.OutputTokens); r.OutputTokens == nil || *r.OutputTokens < 10 || *r.OutputTokens > 50 {
			t.Errorf("record %d: %v output tokens, want 10..50 (min_new_tokens, max_new_tokens)", r.Seq, n)
		}
	}
}

func hasTransformers(py string) bool {
	return exec.Command(py, "-c", "import transformers").Run() == nil
}

// TestTorchServerBadInput: server.py's own errors, each one line on
// stderr and exit 2.
func TestTorchServerBadInput(t *testing.T) {
	py := torchPython(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tiny", "--device", "cuda"}, "CUDA is not available"},
		{[]string{"--tiny", "--batch", "0"}, "--batch must be at least 1"},
		// Without transformers (as in CI) the message says so; with it,
		// it names the model that was not found.
		{[]string{"--model", "/nonexistent/model"}, map[bool]string{true: "/nonexistent/model", false: "transformers"}[hasTransformers(py)]},
	} {
		cmd := exec.Command(py, append([]string{serverPy, "--port", "0"}, c.args...)...)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) || strings.Contains(string(out), "Traceback") {
			t.Errorf("server.py %v: %v\n%s\nwant exit 2 and %q", c.args, err, out, c.want)
		}
	}
}

// TestPyTorchBatchedServer: server.py --batch 4 batches concurrent
// requests (one prefill and one decode step per token for the batch),
// as its --verbose log shows; each request still gets exactly its
// min = max new tokens.
func TestPyTorchBatchedServer(t *testing.T) {
	offlineHF(t)
	base, output := startTorchServer(t, "--tiny", "--device", "cpu", "--batch", "4", "--batch-delay", "20", "--verbose")
	out := t.TempDir()
	res := runCLI(t, "--backend", "pytorch", "--endpoint", base, "--dataset", "synthetic:mean=40,n=16", "--num-samples", "16",
		"--concurrency", "4", "--max-tokens", "8", "--min-tokens", "8", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	for _, r := range readRecords(t, runFile(t, out, "records.jsonl")) {
		if r.Outcome != "ok" || deref(r.OutputTokens) != 8 || r.TextChunks != 8 {
			t.Errorf("record %d: %s, %v tokens, %d chunks, error %v", r.Seq, r.Outcome, deref(r.OutputTokens), r.TextChunks, deref(r.Error))
		}
	}
	batched := 0
	for _, n := range []string{"2", "3", "4"} {
		batched += strings.Count(output(), "server.py: batch of "+n+"\n")
	}
	if batched == 0 {
		t.Errorf("no batch of more than one request formed with 4 in flight; server output:\n%s", output())
	}
	if strings.Contains(output(), "batch of 5") {
		t.Errorf("a batch over --batch 4:\n%s", output())
	}
}
