// Command bench measures tokenwatt's load generator against the targets
// of docs/performance.md and prints a Markdown table per section:
//
//   - maxrate: loadgen and vegeta side by side, closed loop at the same
//     concurrency against the same simulator (zero latency), streaming
//     and not, alternating rounds; the ratio loadgen/vegeta per round and
//     its median.
//   - pacing: open-loop constant and poisson arrivals at 100, 1,000 and
//     5,000 req/s: achieved rate error and schedule lag p50/p99/max.
//   - timing: measured minus configured TTFT and ITL (p50, p99) against
//     the simulator at fixed values, with the client loaded.
//   - sse: the SSE reader's Go benchmark (chunks/s/core, allocs/chunk).
//   - memory: peak RSS of loadgen after 100k and 1M requests.
//   - timer: internal/hrtimer's wake-up lateness (p50, p99, max).
//   - scale: a concurrency sweep (100 to 10,000 streams) against the
//     simulator at TTFT 100 ms and ITL 20 ms with its chunk stamps on:
//     the client's own lateness per chunk (receive − server write), the
//     simulator's timer lateness, CPU per 1,000 chunks/s, RSS per 1,000
//     streams, whether the run flagged itself saturated, and which limit
//     each point hit.
//
// It ends with a table of every figure against its target. The tests
// assert none of these by default (a busy machine cannot keep them);
// TOKENWATT_TIMING=1 ./scripts/test runs the tests' own, looser checks.
//
// Run it from the repository root: `go run ./bench` (all sections), or
// `go run ./bench -sections maxrate,pacing -duration 5s`. It builds
// loadgen and vegeta (github.com/tsenart/vegeta/v12@v12.13.0, through the
// Go module proxy) into a temporary directory, runs the simulator as its
// own process on loopback, and leaves nothing behind. Every load is
// bounded in count and time.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

const vegetaModule = "github.com/tsenart/vegeta/v12@v12.13.0"

type bench struct {
	dir      string // temporary: binaries and outputs
	loadgen  string
	vegeta   string
	duration time.Duration
	rounds   int
	conc     int
	memory   []int
	scale    []int
	scaleDur time.Duration
	targets  []target
}

func main() {
	sections := flag.String("sections", "maxrate,pacing,timing,sse,memory,timer,scale", "comma-separated sections to run")
	duration := flag.Duration("duration", 10*time.Second, "length of each maxrate round and pacing run")
	rounds := flag.Int("rounds", 3, "maxrate rounds per client and mode (alternating)")
	conc := flag.Int("concurrency", 32, "maxrate concurrency, the same for both clients")
	memory := flag.String("memory-requests", "100000,1000000", "request counts for the memory section")
	scale := flag.String("scale-concurrency", "100,1000,3000,10000", "concurrencies (streams) for the scale section")
	scaleDur := flag.Duration("scale-duration", 10*time.Second, "length of each scale run")
	flag.Parse()

	dir, err := os.MkdirTemp("", "tokenwatt-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	b := &bench{dir: dir, duration: *duration, rounds: *rounds, conc: *conc, scaleDur: *scaleDur}
	b.memory = counts("-memory-requests", *memory)
	b.scale = counts("-scale-concurrency", *scale)

	fmt.Printf("# tokenwatt benchmarks\n\n%s, %s, GOMAXPROCS %d, %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		cpuModel(), runtime.GOMAXPROCS(0), runtime.Version())
	want := strings.Split(*sections, ",")
	if slices.ContainsFunc(want, func(s string) bool { return s != "sse" && s != "timer" }) {
		b.loadgen = filepath.Join(dir, "loadgen")
		run("go", "build", "-o", b.loadgen, "./cmd/loadgen")
	}
	for _, s := range want {
		switch strings.TrimSpace(s) {
		case "maxrate":
			b.vegeta = filepath.Join(dir, "vegeta")
			cmd := exec.Command("go", "install", vegetaModule)
			cmd.Env = append(os.Environ(), "GOBIN="+dir)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				fatal(fmt.Errorf("go install %s: %w", vegetaModule, err))
			}
			b.maxRate()
		case "pacing":
			b.pacing()
		case "timing":
			b.timing()
		case "sse":
			b.sse()
		case "memory":
			b.memoryGrowth()
		case "timer":
			b.timer()
		case "scale":
			b.scaleSweep()
		default:
			fatal(fmt.Errorf("unknown section %q", s))
		}
	}
	b.printTargets()
}

// target is one measured figure against its target (DESIGN.md §8, and
// the bounds the timing tests assert with TOKENWATT_TIMING=1).
type target struct {
	name, want, got string
	met             bool
}

// check records a figure for the closing table of targets.
func (b *bench) check(name, want, got string, met bool) {
	b.targets = append(b.targets, target{name, want, got, met})
}

func (b *bench) printTargets() {
	if len(b.targets) == 0 {
		return
	}
	fmt.Print("\n## Targets\n\n| figure | target | measured | met? |\n|---|---|---|---|\n")
	for _, t := range b.targets {
		fmt.Printf("| %s | %s | %s | %s |\n", t.name, t.want, t.got, map[bool]string{true: "yes", false: "**no**"}[t.met])
	}
}

// counts parses a comma-separated list of positive counts.
func counts(flagName, list string) []int {
	var out []int
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatal(fmt.Errorf("%s: %q is not a positive count", flagName, s))
		}
		out = append(out, n)
	}
	return out
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err))
	}
}

func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startSim runs `loadgen sim` as its own process and waits for /health.
func (b *bench) startSim(args ...string) (url string, stop func()) {
	addr := freePort()
	cmd := exec.Command(b.loadgen, append([]string{"sim", "--addr", addr}, args...)...)
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	url = "http://" + addr
	waitHealthy(url)
	return url, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

// loadgenRun runs loadgen and returns its summary row and the records
// file's path.
func (b *bench) loadgenRun(args ...string) (*report.Row, string) {
	out, err := os.MkdirTemp(b.dir, "run-")
	if err != nil {
		fatal(err)
	}
	// Each run writes OUT/<run_id>/records.jsonl; OUT/summary.csv is
	// the appended table.
	const runID = "bench"
	args = append(args, "--out", out, "--run-id", runID, "--metrics-addr=", "--energy", "none", "--idle-baseline", "0s")
	cmd := exec.Command(b.loadgen, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = nil
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("loadgen %s: %w\n%s", strings.Join(args, " "), err, stderr.String()))
	}
	rows, err := report.ReadCSV(filepath.Join(out, "summary.csv"))
	if err != nil || len(rows) != 1 {
		fatal(fmt.Errorf("summary: %v", err))
	}
	return rows[0], filepath.Join(out, runID, "records.jsonl")
}

const prompt = "Explain in one paragraph how the energy of a GPU is measured per generated token."

// maxRate compares loadgen's and vegeta's closed-loop throughput.
func (b *bench) maxRate() {
	url, stop := b.startSim("--ttft", "0s", "--itl", "0s", "--max-num-seqs", "100000")
	defer stop()
	fmt.Printf("\n## Max rate: loadgen vs vegeta (closed loop, concurrency %d, %v per round, simulator at zero latency, 16 tokens)\n\n", b.conc, b.duration)
	fmt.Println("| mode | round | loadgen req/s | vegeta req/s | ratio |")
	fmt.Println("|---|---|---|---|---|")
	for _, stream := range []bool{false, true} {
		mode := "non-streaming"
		if stream {
			mode = "streaming (SSE)"
		}
		var ratios []float64
		for round := 1; round <= b.rounds; round++ {
			// Alternate which client goes first, so drift on a noisy
			// machine does not favour one.
			var lg, vg float64
			if round%2 == 1 {
				lg, vg = b.loadgenMax(url, stream), b.vegetaMax(url, stream)
			} else {
				vg, lg = b.vegetaMax(url, stream), b.loadgenMax(url, stream)
			}
			ratios = append(ratios, lg/vg)
			fmt.Printf("| %s | %d | %.0f | %.0f | %.3f |\n", mode, round, lg, vg, lg/vg)
		}
		fmt.Printf("| %s | **median** | | | **%.3f** |\n", mode, median(ratios))
		b.check("maxrate "+mode+": loadgen/vegeta (median)", "≥ 1.0", fmt.Sprintf("%.3f", median(ratios)), median(ratios) >= 1)
	}
}

func (b *bench) loadgenMax(url string, stream bool) float64 {
	streamFlag := "--no-stream"
	if stream {
		streamFlag = "--stream"
	}
	row, _ := b.loadgenRun("--scenario", "throughput", "--endpoint", url, "--dataset", "synthetic:mean=20,n=100",
		"--concurrency", strconv.Itoa(b.conc), "--duration", b.duration.String(), "--num-samples", "0",
		"--max-tokens", "16", "--min-tokens", "16", streamFlag)
	if row.FailedPrompts > 0 {
		fatal(fmt.Errorf("loadgen: %d failed requests", row.FailedPrompts))
	}
	return float64(row.TotalPrompts) / *row.TotalDurationSeconds
}

func (b *bench) vegetaMax(url string, stream bool) float64 {
	body, _ := json.Marshal(map[string]any{
		"model": "tokenwatt-sim", "messages": []map[string]string{{"role": "user", "content": prompt}},
		"max_tokens": 16, "min_tokens": 16, "stream": stream,
	})
	bodyFile := filepath.Join(b.dir, "body.json")
	targets := filepath.Join(b.dir, "targets.txt")
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		fatal(err)
	}
	t := fmt.Sprintf("POST %s/v1/chat/completions\nContent-Type: application/json\n@%s\n", url, bodyFile)
	if err := os.WriteFile(targets, []byte(t), 0o644); err != nil {
		fatal(err)
	}
	attack := exec.Command(b.vegeta, "attack", "-targets", targets, "-rate", "0", "-max-workers", strconv.Itoa(b.conc),
		"-workers", strconv.Itoa(b.conc), "-duration", b.duration.String(), "-keepalive", "-http2=false")
	rep := exec.Command(b.vegeta, "report", "-type", "json")
	pipe, err := attack.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	rep.Stdin = pipe
	var out, stderr bytes.Buffer
	rep.Stdout, attack.Stderr, rep.Stderr = &out, &stderr, &stderr
	if err := rep.Start(); err != nil {
		fatal(err)
	}
	if err := attack.Run(); err != nil {
		fatal(fmt.Errorf("vegeta attack: %w\n%s", err, stderr.String()))
	}
	if err := rep.Wait(); err != nil {
		fatal(fmt.Errorf("vegeta report: %w\n%s", err, stderr.String()))
	}
	var r struct {
		Requests    int     `json:"requests"`
		Throughput  float64 `json:"throughput"`
		Success     float64 `json:"success"`
		StatusCodes map[string]int
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		fatal(fmt.Errorf("vegeta report: %w: %s", err, out.String()))
	}
	if r.Success < 1 {
		fatal(fmt.Errorf("vegeta: success ratio %v, status codes %v", r.Success, r.StatusCodes))
	}
	return r.Throughput
}

// record is the part of a records.jsonl line the benchmarks read.
type record struct {
	SchedUnix   float64   `json:"sched_unix"`
	SendUnix    float64   `json:"send_unix"`
	ScheduleLag float64   `json:"schedule_lag_s"`
	TTFT        *float64  `json:"ttft_s"`
	ITL         []float64 `json:"itl_s"`
	Outcome     string    `json:"outcome"`
}

func readRecords(path string) []record {
	f, err := os.Open(path)
	if err != nil {
		fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (b *bench) pacing() {
	url, stop := b.startSim("--ttft", "0s", "--itl", "0s", "--max-num-seqs", "100000")
	defer stop()
	fmt.Printf("\n## Pacing (open loop, %v per run, simulator at zero latency, 4 tokens, --low-latency where permitted)\n\n", b.duration)
	fmt.Println("| arrival | rate (req/s) | sent | scheduled (req/s) | achieved (req/s) | rate error | lag p50 (ms) | lag p99 (ms) | lag max (ms) | client saturated |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, arrival := range []string{"constant", "poisson"} {
		for _, rate := range []int{100, 1000, 5000} {
			row, recs := b.loadgenRun("--scenario", "soak", "--endpoint", url, "--dataset", "synthetic:mean=20,n=100",
				"--rate", strconv.Itoa(rate), "--arrival", arrival, "--duration", b.duration.String(), "--num-samples", "0",
				"--concurrency", "0", "--max-tokens", "4", "--min-tokens", "4", "--seed", "1", "--low-latency")
			rs := readRecords(recs)
			var lags []float64
			first, last := math.Inf(1), math.Inf(-1)
			sFirst, sLast := math.Inf(1), math.Inf(-1)
			for _, r := range rs {
				lags = append(lags, r.ScheduleLag*1e3)
				first, last = math.Min(first, r.SendUnix), math.Max(last, r.SendUnix)
				sFirst, sLast = math.Min(sFirst, r.SchedUnix), math.Max(sLast, r.SchedUnix)
			}
			// Achieved: the sends' own rate, first to last actual send;
			// scheduled: the same over the intended send times (for
			// poisson, the draw's own rate). The error is the client's.
			achieved := float64(len(rs)-1) / (last - first)
			scheduled := float64(len(rs)-1) / (sLast - sFirst)
			sat := "-"
			if row.ClientSaturated != nil {
				sat = strconv.FormatBool(*row.ClientSaturated)
			}
			fmt.Printf("| %s | %d | %d | %.1f | %.1f | %+.3f %% | %.3f | %.3f | %.3f | %s |\n", arrival, rate, len(rs), scheduled, achieved,
				100*(achieved/scheduled-1), quantile(lags, 0.5), quantile(lags, 0.99), quantile(lags, 1), sat)
			name := fmt.Sprintf("pacing %s %d req/s", arrival, rate)
			rateErr := 100 * (achieved/scheduled - 1)
			b.check(name+": rate error", "within ±1 %", fmt.Sprintf("%+.3f %%", rateErr), math.Abs(rateErr) <= 1)
			if rate <= 1000 {
				b.check(name+": schedule lag p99", "< 1 ms", fmt.Sprintf("%.3f ms", quantile(lags, 0.99)), quantile(lags, 0.99) < 1)
			}
			b.check(name+": client saturated", "false", sat, sat == "false")
		}
	}
	fmt.Println("\nScheduled is (sent − 1) / (last − first intended send time), achieved the same over the actual send times (records.jsonl), and the rate error compares the two: the client's own error. A Poisson schedule's rate differs from the nominal one by the draw itself (about ±1/√n).")

	// Overload: far more than two cores can send, capped at 32 in flight
	// (TestTimingClientSaturationIsReported): the client must say so.
	row, _ := b.loadgenRun("--scenario", "soak", "--endpoint", url, "--dataset", "synthetic:mean=20,n=50",
		"--rate", "50000", "--duration", "2s", "--num-samples", "0", "--concurrency", "32",
		"--max-tokens", "1", "--min-tokens", "0")
	sat := "-"
	if row.ClientSaturated != nil {
		sat = strconv.FormatBool(*row.ClientSaturated)
	}
	fmt.Printf("\nOverload (open loop 50,000 req/s for 2s, at most 32 in flight): client saturated **%s**.\n", sat)
	b.check("overload 50,000 req/s: client saturated", "true", sat, sat == "true")
}

func (b *bench) timing() {
	const ttft, itl = 50 * time.Millisecond, 10 * time.Millisecond
	url, stop := b.startSim("--ttft", ttft.String(), "--itl", itl.String(), "--max-num-seqs", "100000", "--stamp-chunks")
	defer stop()
	fmt.Printf("\n## Timing truth (simulator TTFT %v, ITL %v; open loop 200 req/s, 32 tokens, %v)\n\n", ttft, itl, b.duration)
	_, recs := b.loadgenRun("--scenario", "soak", "--endpoint", url, "--dataset", "synthetic:mean=20,n=100",
		"--rate", "200", "--duration", b.duration.String(), "--num-samples", "0", "--concurrency", "0",
		"--max-tokens", "32", "--min-tokens", "32", "--low-latency")
	var dTTFT, dITL, dLast []float64
	for _, r := range readRecords(recs) {
		if r.Outcome != "ok" || r.TTFT == nil {
			continue
		}
		dTTFT = append(dTTFT, (*r.TTFT-ttft.Seconds())*1e3)
		last := *r.TTFT
		for _, g := range r.ITL {
			dITL = append(dITL, (g-itl.Seconds())*1e3)
			last += g
		}
		// The last token against the absolute schedule: drift, if the
		// simulator's wake-ups added up.
		dLast = append(dLast, (last-(ttft+time.Duration(len(r.ITL))*itl).Seconds())*1e3)
	}
	fmt.Println("| metric | samples | measured − configured p50 (ms) | p99 (ms) |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| TTFT | %d | %+.3f | %+.3f |\n", len(dTTFT), quantile(dTTFT, 0.5), quantile(dTTFT, 0.99))
	fmt.Printf("| ITL | %d | %+.3f | %+.3f |\n", len(dITL), quantile(dITL, 0.5), quantile(dITL, 0.99))
	fmt.Printf("| last token (TTFT + ΣITL) | %d | %+.3f | %+.3f |\n", len(dLast), quantile(dLast, 0.5), quantile(dLast, 0.99))
	b.check("timing: TTFT error p99", "< 1 ms", fmt.Sprintf("%+.3f ms", quantile(dTTFT, 0.99)), math.Abs(quantile(dTTFT, 0.99)) < 1)
	b.check("timing: ITL error p99", "< 1 ms", fmt.Sprintf("%+.3f ms", quantile(dITL, 0.99)), math.Abs(quantile(dITL, 0.99)) < 1)
	b.check("timing: last-token error p99 (no drift)", "< 1 ms", fmt.Sprintf("%+.3f ms", quantile(dLast, 0.99)), math.Abs(quantile(dLast, 0.99)) < 1)
	// The simulator's stamps split the error: how late it wrote each
	// token (its timer), and how late the client read it.
	rep, err := report.ReadReport(filepath.Join(filepath.Dir(recs), "report.json"))
	if err != nil || rep.Client.LatenessS == nil || rep.Client.ServerTimerLatenessS == nil {
		fatal(fmt.Errorf("timing: no client lateness in report.json (%v)", err))
	}
	late, simLate := rep.Client.LatenessS, rep.Client.ServerTimerLatenessS
	fmt.Printf("| simulator timer lateness (write − deadline) | %d | %+.3f | %+.3f |\n", simLate.Count, seconds(simLate, "p50")*1e3, seconds(simLate, "p99")*1e3)
	fmt.Printf("| client lateness (receive − write) | %d | %+.3f | %+.3f |\n", late.Count, seconds(late, "p50")*1e3, seconds(late, "p99")*1e3)
	b.check("timing: client lateness p99", "< 1 ms", fmtMs(seconds(late, "p99")), seconds(late, "p99") < 1e-3)
	fmt.Println("\nMeasured − configured is the simulator's timer lateness plus the client's lateness (and, for TTFT, the request's way to the simulator); the last two rows split them with the simulator's chunk stamps (`--stamp-chunks`).")
}

var (
	chunksPerSec   = regexp.MustCompile(`([0-9.e+]+) chunks/s`)
	allocsPerChunk = regexp.MustCompile(`([0-9.e+-]+) allocs/chunk`)
)

func (b *bench) sse() {
	fmt.Print("\n## SSE parsing (BenchmarkSSEChat: realistic vLLM chat chunks, one goroutine; Stamped: with the simulator's chunk stamps)\n\n")
	cmd := exec.Command("go", "test", "./backends", "-run", "^$", "-bench", "BenchmarkSSEChat", "-benchmem", "-count", "3", "-cpu", "1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("go test -bench: %w\n%s", err, out.String()))
	}
	fmt.Println("| benchmark | run | chunks/s/core | allocs/chunk |")
	fmt.Println("|---|---|---|---|")
	runs := map[string]int{}
	for _, l := range strings.Split(out.String(), "\n") {
		c, a := chunksPerSec.FindStringSubmatch(l), allocsPerChunk.FindStringSubmatch(l)
		if c != nil && a != nil {
			name := strings.Fields(l)[0]
			runs[name]++
			v, _ := strconv.ParseFloat(c[1], 64)
			fmt.Printf("| %s | %d | %.2f M | %s |\n", name, runs[name], v/1e6, a[1])
			allocs, _ := strconv.ParseFloat(a[1], 64)
			if name == "BenchmarkSSEChat" { // the target; the stamped variant is for comparison
				b.check(fmt.Sprintf("sse %s run %d: chunks/s/core", name, runs[name]), "≥ 2 M", fmt.Sprintf("%.2f M", v/1e6), v >= 2e6)
			}
			b.check(fmt.Sprintf("sse %s run %d: allocs/chunk", name, runs[name]), "0", a[1], allocs == 0)
		}
	}
}

// memoryGrowth runs loadgen for each request count (closed loop,
// non-streaming, against the zero-latency simulator) and reports its peak
// RSS: records stream to disk and the summary keeps sketches, so it must
// not grow with the count.
func (b *bench) memoryGrowth() {
	url, stop := b.startSim("--ttft", "0s", "--itl", "0s", "--max-num-seqs", "100000")
	defer stop()
	fmt.Print("\n## Memory (peak RSS of the loadgen process, closed loop, concurrency 32, non-streaming, 4 tokens)\n\n")
	fmt.Println("| requests | wall (s) | req/s | peak RSS (MiB) | growth vs first |")
	fmt.Println("|---|---|---|---|---|")
	var first float64
	for _, n := range b.memory {
		out, err := os.MkdirTemp(b.dir, "mem-")
		if err != nil {
			fatal(err)
		}
		cmd := exec.Command(b.loadgen, "--scenario", "throughput", "--endpoint", url, "--dataset", "synthetic:mean=20,n=100",
			"--concurrency", "32", "--duration", "0s", "--num-samples", strconv.Itoa(n), "--max-tokens", "4", "--min-tokens", "4",
			"--no-stream", "--out", out, "--metrics-addr=", "--energy", "none", "--idle-baseline", "0s")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			fatal(fmt.Errorf("loadgen: %w\n%s", err, stderr.String()))
		}
		wall := time.Since(start).Seconds()
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			fatal(errors.New("no rusage"))
		}
		rss := float64(ru.Maxrss) / 1024 // KiB on Linux
		if first == 0 {
			first = rss
		}
		fmt.Printf("| %d | %.1f | %.0f | %.1f | %+.1f %% |\n", n, wall, float64(n)/wall, rss, 100*(rss/first-1))
		if rss != first {
			b.check(fmt.Sprintf("memory: RSS growth to %d requests", n), "< 10 %", fmt.Sprintf("%+.1f %%", 100*(rss/first-1)), rss/first-1 < 0.10)
		}
		_ = os.RemoveAll(out)
	}
}

var latenessMetric = regexp.MustCompile(`([0-9.]+) (p50|p99|max)-µs`)

// timer runs internal/hrtimer's lateness benchmark: how late a wake-up
// for a 1–5 ms wait comes, with the timerfd timer and with time.Sleep
// (TestTimingAccuracy's figure).
func (b *bench) timer() {
	fmt.Print("\n## Timer wake-ups (internal/hrtimer BenchmarkLateness: 2,000 waits of 1–5 ms)\n\n")
	cmd := exec.Command("go", "test", "./internal/hrtimer", "-run", "^$", "-bench", "BenchmarkLateness", "-benchtime", "2000x", "-count", "3")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("go test -bench: %w\n%s", err, out.String()))
	}
	fmt.Println("| timer | run | lateness p50 (µs) | p99 (µs) | max (µs) |")
	fmt.Println("|---|---|---|---|---|")
	runs := map[string]int{}
	var p99s []float64
	for _, l := range strings.Split(out.String(), "\n") {
		name, _, ok := strings.Cut(strings.TrimPrefix(l, "BenchmarkLateness/"), "-")
		if !ok || !strings.HasPrefix(l, "BenchmarkLateness/") {
			continue
		}
		m := map[string]string{}
		for _, g := range latenessMetric.FindAllStringSubmatch(l, -1) {
			m[g[2]] = g[1]
		}
		runs[name]++
		fmt.Printf("| %s | %d | %s | %s | %s |\n", name, runs[name], m["p50"], m["p99"], m["max"])
		if name == "hrtimer" {
			v, _ := strconv.ParseFloat(m["p99"], 64)
			p99s = append(p99s, v)
		}
	}
	if len(p99s) > 0 {
		best := slices.Min(p99s)
		b.check("timer: hrtimer wake-up lateness p99 (best of 3)", "< 500 µs", fmt.Sprintf("%.0f µs", best), best < 500)
	}
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile is the nearest-rank q-quantile of xs; NaN for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(math.Ceil(q*float64(len(s))))-1+boolInt(q == 0)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
