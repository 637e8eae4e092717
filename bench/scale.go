package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

// The scale section's simulator: a decode-heavy stream, 64 tokens at
// 20 ms (50 chunks/s per stream), so that N streams are N×50 chunks/s.
const (
	scaleTTFT   = 100 * time.Millisecond
	scaleITL    = 20 * time.Millisecond
	scaleTokens = 64
	// latenessBound is the client lateness p99 above which a run must
	// flag itself saturated (issue 20; loadgen's --saturation-lateness
	// default).
	latenessBound = 5 * time.Millisecond
)

// windowsRE finds how many one-second windows of a run were saturated
// in report.json's client.saturation.
var windowsRE = regexp.MustCompile(`saturated in (\d+ of \d+) one-second windows`)

// ms formats a distribution's percentile ("p50", "p99"; or "max") in
// milliseconds; "-" when it is null.
func ms(d *report.Distribution, p string) string {
	v := seconds(d, p)
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v*1e3, 'f', 2, 64)
}

// seconds is a distribution's percentile ("p50", "p99"; or "max"); NaN
// when it is null.
func seconds(d *report.Distribution, p string) float64 {
	if d == nil {
		return math.NaN()
	}
	if p == "max" {
		return d.Max
	}
	v, ok := d.Percentiles[p]
	if !ok {
		return math.NaN()
	}
	return v
}

// procUsage is a finished process's CPU time and peak RSS.
type procUsage struct {
	cpu    time.Duration
	rssMiB float64
}

func usage(ps *os.ProcessState) procUsage {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		fatal(errors.New("no rusage"))
	}
	return procUsage{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		rssMiB: float64(ru.Maxrss) / 1024, // KiB on Linux
	}
}

// scalePoint is one concurrency's measurement.
type scalePoint struct {
	conc            int
	rep             *report.Report
	wall            time.Duration // loadgen process, start to exit
	lg, sim         procUsage
	chunksPerSec    float64 // stamped text chunks received per second of the run window
	lgCores, simCPU float64 // CPU used, in cores, over the loadgen's wall time
}

// scaleSweep runs a closed loop of N streams for each N against a fresh
// simulator (its own process, chunk stamps on) and reports the client's
// own lateness, its cost and the limit it reached.
func (b *bench) scaleSweep() {
	fmt.Printf("\n## Scale: concurrent streams (closed loop, %v per run; simulator TTFT %v, ITL %v, %d tokens, chunk stamps on)\n\n",
		b.scaleDur, scaleTTFT, scaleITL, scaleTokens)
	var points []scalePoint
	for _, c := range b.scale {
		points = append(points, b.scalePoint(c))
	}
	fmt.Println("| streams | requests ok / failed | chunks/s | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | client lateness p50 / p99 / max (ms) | sim timer lateness p99 (ms) | loadgen CPU (cores) | sim CPU (cores) | CPU per 1,000 chunks/s (% of a core) | peak RSS (MiB) | RSS per 1,000 streams (MiB) | flagged saturated (seconds) | limit hit |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range points {
		r := p.rep
		sat := "-"
		if r.Client.Saturated != nil {
			sat = strconv.FormatBool(*r.Client.Saturated)
			if m := windowsRE.FindStringSubmatch(r.Client.Saturation); m != nil {
				sat += " (" + m[1] + " s)"
			}
		}
		fmt.Printf("| %d | %d / %d | %.0f | %s / %s | %s / %s | %s / %s / %s | %s | %.2f | %.2f | %.2f | %.0f | %.0f | %s | %s |\n",
			p.conc, r.Requests.OK, r.Requests.Total-r.Requests.OK, p.chunksPerSec,
			ms(r.Latency["ttft"], "p50"), ms(r.Latency["ttft"], "p99"),
			ms(r.Latency["itl"], "p50"), ms(r.Latency["itl"], "p99"),
			ms(r.Client.LatenessS, "p50"), ms(r.Client.LatenessS, "p99"), ms(r.Client.LatenessS, "max"),
			ms(r.Client.ServerTimerLatenessS, "p99"),
			p.lgCores, p.simCPU, 100*p.lgCores/(p.chunksPerSec/1000),
			p.lg.rssMiB, p.lg.rssMiB/(float64(p.conc)/1000), sat, p.limit())
	}
	fmt.Printf(`
Client lateness is, per text chunk, the client's receive time minus the
simulator's write time stamped into the stream (`+"`: tokenwatt-sent`"+`, same host,
same clock): the kernel's loopback and the client's own delay, without the
simulator's timer lateness (its wake-up after the token's deadline, the
next column). CPU per 1,000 chunks/s is the loadgen process's CPU time over
its wall time, per 1,000 chunks/s received; RSS is the loadgen's peak
(getrusage maxrss). Both processes share this machine's %d CPUs.
`, runtime.NumCPU())

	for _, p := range points {
		late := seconds(p.rep.Client.LatenessS, "p99")
		flagged := p.rep.Client.Saturated != nil && *p.rep.Client.Saturated
		name := fmt.Sprintf("scale %d streams", p.conc)
		if p.conc == 1000 {
			b.check(name+": client lateness p99", "< 1 ms", fmtMs(late), late < 1e-3)
		}
		if late > latenessBound.Seconds() || math.IsNaN(late) {
			b.check(name+": lateness p99 above 5 ms is flagged", "saturated", fmt.Sprintf("p99 %s, saturated %v", fmtMs(late), flagged), flagged)
		}
		if p.conc >= 3000 {
			b.check(name+": flagged saturated", "true", strconv.FormatBool(flagged), flagged)
		}
		if p.conc >= 10000 {
			b.check(name+": peak RSS", "< 1 GiB", fmt.Sprintf("%.0f MiB", p.lg.rssMiB), p.lg.rssMiB < 1024)
			b.check(name+": all streams held (no connect errors)", "0", strconv.Itoa(p.rep.Requests.Outcomes["connect_error"]),
				p.rep.Requests.Outcomes["connect_error"] == 0)
		}
	}
}

func fmtMs(s float64) string {
	if math.IsNaN(s) {
		return "none"
	}
	return strconv.FormatFloat(s*1e3, 'f', 2, 64) + " ms"
}

// limit names what bounded the point: connections, memory, CPU (which
// process), or nothing.
func (p scalePoint) limit() string {
	var limits []string
	if n := p.rep.Requests.Outcomes["connect_error"]; n > 0 {
		limits = append(limits, fmt.Sprintf("connections (%d connect errors)", n))
	}
	if p.lg.rssMiB >= 1024 {
		limits = append(limits, "memory")
	}
	cpus := float64(runtime.NumCPU())
	if used := p.lgCores + p.simCPU; used >= 0.8*cpus {
		who := "the simulator"
		if p.lgCores > p.simCPU {
			who = "loadgen"
		}
		limits = append(limits, fmt.Sprintf("CPU (%.2f of %.0f cores; most: %s)", used, cpus, who))
	}
	late := seconds(p.rep.Client.LatenessS, "p99")
	simLate := seconds(p.rep.Client.ServerTimerLatenessS, "p99")
	if len(limits) == 0 && simLate > latenessBound.Seconds() && !(late > latenessBound.Seconds()) {
		limits = append(limits, "the simulator's timers")
	}
	if len(limits) == 0 {
		return "none"
	}
	return strings.Join(limits, "; ")
}

// scalePoint measures c streams: a fresh simulator with chunk stamps, a
// loadgen closed loop of c for b.scaleDur, both processes' CPU and RSS.
func (b *bench) scalePoint(c int) scalePoint {
	addr := freePort()
	sim := exec.Command(b.loadgen, "sim", "--addr", addr, "--ttft", scaleTTFT.String(), "--itl", scaleITL.String(),
		"--max-num-seqs", "1000000", "--stamp-chunks")
	var simErr bytes.Buffer
	sim.Stderr = &simErr
	if err := sim.Start(); err != nil {
		fatal(err)
	}
	url := "http://" + addr
	waitHealthy(url)
	simStart := time.Now()

	out, err := os.MkdirTemp(b.dir, "scale-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(out)
	runID := "scale-" + strconv.Itoa(c)
	args := []string{"--scenario", "throughput", "--endpoint", url, "--dataset", "synthetic:mean=20,n=1000",
		"--concurrency", strconv.Itoa(c), "--duration", b.scaleDur.String(), "--num-samples", "0",
		"--max-tokens", strconv.Itoa(scaleTokens), "--min-tokens", strconv.Itoa(scaleTokens), "--ignore-eos", "--stream",
		"--run-id", runID, "--out", out, "--metrics-addr=", "--energy", "none", "--idle-baseline", "0s",
		// Every stream is on time or late by the run's own account; the
		// bench only bounds the run.
		"--timeout", "60s"}
	lg := exec.Command(b.loadgen, args...)
	var stderr bytes.Buffer
	lg.Stderr = &stderr
	start := time.Now()
	if err := lg.Run(); err != nil {
		_ = sim.Process.Kill()
		_ = sim.Wait()
		fatal(fmt.Errorf("loadgen %s: %w\n%s", strings.Join(args, " "), err, stderr.String()))
	}
	wall := time.Since(start)
	simWall := time.Since(simStart)
	_ = sim.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = sim.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = sim.Process.Kill()
		<-done
	}

	rep, err := report.ReadReport(filepath.Join(out, runID, "report.json"))
	if err != nil {
		fatal(fmt.Errorf("scale %d: %w\n%s", c, err, stderr.String()))
	}
	p := scalePoint{conc: c, rep: rep, wall: wall, lg: usage(lg.ProcessState), sim: usage(sim.ProcessState)}
	if p.rep.Client.LatenessS == nil {
		fatal(fmt.Errorf("scale %d: report.json has no client.lateness_s: are the simulator's chunk stamps reaching loadgen?", c))
	}
	if d := p.rep.DurationS; d != nil && *d > 0 {
		p.chunksPerSec = float64(p.rep.Client.LatenessS.Count) / *d
	}
	p.lgCores = p.lg.cpu.Seconds() / wall.Seconds()
	// The simulator lived from before the loadgen started to after it
	// ended; its idle time around the run is small against the run.
	p.simCPU = p.sim.cpu.Seconds() / simWall.Seconds()
	return p
}

// waitHealthy waits for a server's /health.
func waitHealthy(url string) {
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err := http.Get(url + "/health"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			fatal(errors.New("the simulator did not start"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
