package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// fakeView is a run as the progress line sees it.
type fakeView struct {
	sc        *scenario.Scenario
	simulated bool
	progress  loadgen.Progress
	ttftP50   float64 // 0: none yet
	sat       *loadgen.Saturation
}

func (v *fakeView) Scenario() *scenario.Scenario    { return v.sc }
func (v *fakeView) Simulated() bool                 { return v.simulated }
func (v *fakeView) Progress() *loadgen.Progress     { return &v.progress }
func (v *fakeView) TTFTP50() (float64, bool)        { return v.ttftP50, v.ttftP50 > 0 }
func (v *fakeView) Saturation() *loadgen.Saturation { return v.sat }

func TestProgressLine(t *testing.T) {
	v := &fakeView{sc: &scenario.Scenario{NumSamples: 100}, simulated: true, ttftP50: 0.0123}
	v.progress.Done.Store(40)
	v.progress.Failed.Store(2)
	v.progress.InFlight.Store(3)
	line := progressLine(v, 10*time.Second)
	for _, want := range []string{"[SIMULATED]", "40/100 (40%)", "4.0 req/s", "ok 38", "failed 2", "in flight 3", "ttft p50 12.3ms", "eta 15s"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
	// A duration-bound run counts down the time left.
	v.sc, v.simulated = &scenario.Scenario{Duration: time.Minute}, false
	if line := progressLine(v, 20*time.Second); !strings.Contains(line, "20s/1m0s") || !strings.Contains(line, "eta 40s") || strings.Contains(line, "SIMULATED") {
		t.Errorf("duration progress line %q", line)
	}
}

// TestProgressLineFollowsTheBoundThatEndsTheRun: with a count and a
// duration, the share shown is of whichever ends the run first (a --duration
// 8s run of 1,000 samples used to show "28/1000 (3%) ... eta 3s").
func TestProgressLineFollowsTheBoundThatEndsTheRun(t *testing.T) {
	v := &fakeView{sc: &scenario.Scenario{NumSamples: 1000, Duration: 8 * time.Second}}
	v.progress.Done.Store(28)
	line := progressLine(v, 5*time.Second)
	if !strings.Contains(line, "28 done, 5s/8s (62%)") || !strings.Contains(line, "eta 3s") {
		t.Errorf("time-bound run: %q", line)
	}
	v.progress.Done.Store(990)
	if line := progressLine(v, 5*time.Second); !strings.Contains(line, "990/1000 (99%)") {
		t.Errorf("count-bound run: %q", line)
	}
}

func TestProgressLineSaysClientSaturated(t *testing.T) {
	v := &fakeView{sc: &scenario.Scenario{NumSamples: 100},
		sat: &loadgen.Saturation{Saturated: true, Reason: "40 of 1000 sends more than 5ms behind schedule"}}
	if line := progressLine(v, time.Second); !strings.HasSuffix(line, "  CLIENT SATURATED (40 of 1000 sends more than 5ms behind schedule)") {
		t.Errorf("line %q", line)
	}
	v.sat = &loadgen.Saturation{}
	if line := progressLine(v, time.Second); strings.Contains(line, "SATURATED") {
		t.Errorf("unsaturated window reported: %q", line)
	}
}

// syncBuffer is a bytes.Buffer the progress goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// On a terminal every redraw of the progress line fits in the terminal's
// width (less its last column, where many terminals wrap): a wrapped line
// is left behind by the next redraw. What matters most stays: the
// SIMULATED mark, the count and the CLIENT SATURATED flag.
func TestProgressLineFitsTheTerminal(t *testing.T) {
	v := &fakeView{sc: &scenario.Scenario{NumSamples: 100000, Duration: time.Hour}, simulated: true, ttftP50: 0.0123,
		sat: &loadgen.Saturation{Saturated: true, Reason: "40 of 1000 sends more than 5ms behind schedule"}}
	v.progress.Done.Store(40000)
	v.progress.Failed.Store(2000)
	v.progress.InFlight.Store(300)
	for _, width := range []int{80, 40, 12} {
		var out syncBuffer
		e := &env{stderr: &out, isTerminal: true, width: func() int { return width }}
		p := startProgress(e, v)
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(out.String(), "\r\033[K") < 3 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		p.stop()
		draws := strings.Split(out.String(), "\r\033[K")
		if len(draws) < 3 {
			t.Fatalf("width %d: %d redraws in 20s: %q", width, len(draws)-1, out.String())
		}
		for _, d := range draws {
			if strings.Contains(d, "\n") || utf8.RuneCountInString(d) > width-1 {
				t.Errorf("width %d: %d columns drawn: %q", width, utf8.RuneCountInString(d), d)
			}
		}
		if width == 80 {
			line := draws[1]
			for _, want := range []string{"[SIMULATED] 40000/100000 (40%)", "CLIENT SATURATED", "eta "} {
				if !strings.Contains(line, want) {
					t.Errorf("width 80: %q lacks %q", line, want)
				}
			}
		}
	}
	// Off a terminal the log line keeps everything.
	if line := progressLine(v, time.Second); !strings.Contains(line, "ok 38000") || !strings.Contains(line, "(40 of 1000 sends") {
		t.Errorf("log line %q", line)
	}
}

// TestRunReportsClientSaturation: every run's summary has the
// client_saturated column filled in.
func TestRunReportsClientSaturation(t *testing.T) {
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "1ms", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "2", "--min-tokens", "0", "--rate", "100", "--num-samples", "10", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.ClientSaturated == nil {
		t.Errorf("client_saturated empty\nstderr: %s", res.stderr)
	}
}

// TestTimingClientSaturationIsReported (TOKENWATT_TIMING=1): an open-loop
// rate far beyond what two cores can send (and the in-process simulator
// answer), for two seconds, saturates the client (its CPU, here: with a
// cap of 32 in flight the late sends wait for slots and count as the
// server's); the summary's client_saturated column and a warning say so.
// A gentle run says it was not. It needs the machine to itself: a busy
// neighbour keeps this process below the CPU threshold, and can make the
// gentle run's sends late. `go run ./bench -sections pacing` reports the
// same column at 100 to 50,000 req/s.
func TestTimingClientSaturationIsReported(t *testing.T) {
	timingOptIn(t)
	offlineHF(t)
	out := t.TempDir()
	res := runCLI(t, "--sim", "--sim-ttft", "0s", "--sim-itl", "0s", "--dataset", "synthetic:mean=20,n=50",
		"--max-tokens", "1", "--min-tokens", "0", "--rate", "50000", "--duration", "2s", "--num-samples", "0", "--concurrency", "32",
		"--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	row := readSummary(t, filepath.Join(out, "summary.csv"))[0]
	if row.ClientSaturated == nil || !*row.ClientSaturated {
		t.Errorf("client_saturated %v at 50,000 req/s on this machine\nstderr: %s", deref(row.ClientSaturated), res.stderr)
	}
	if !strings.Contains(res.stderr, "loadgen: warning: the client was saturated in ") {
		t.Errorf("no saturation warning:\n%s", res.stderr)
	}

	out = t.TempDir()
	res = runCLI(t, "--sim", "--sim-ttft", "5ms", "--sim-itl", "1ms", "--dataset", "synthetic:mean=20,n=20",
		"--max-tokens", "4", "--min-tokens", "0", "--rate", "10", "--num-samples", "20", "--energy", "none", "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", res.code, res.stderr)
	}
	if row := readSummary(t, filepath.Join(out, "summary.csv"))[0]; row.ClientSaturated == nil || *row.ClientSaturated {
		t.Errorf("client_saturated %v at 10 req/s\nstderr: %s", deref(row.ClientSaturated), res.stderr)
	}
}

// stagedView is a run with stages as the progress line sees it.
type stagedView struct {
	fakeView
	target loadgen.Target
}

func (v *stagedView) Target() loadgen.Target { return v.target }

// TestProgressLineShowsTheStage: a run with stages shows the stage it is
// in (counted from 1) and its target, and its share done is of the
// stages' time.
func TestProgressLineShowsTheStage(t *testing.T) {
	v := &stagedView{fakeView: fakeView{sc: &scenario.Scenario{Stages: []scenario.Stage{
		{Duration: time.Minute, Rate: 5}, {Duration: time.Minute, Rate: 20}, {Duration: 2 * time.Minute, Concurrency: 8}}}}}
	v.target = loadgen.Target{Stage: 1, Rate: 20}
	if line := progressLine(v, time.Minute+30*time.Second); !strings.Contains(line, "stage 2/3 20 req/s") || !strings.Contains(line, "1m30s/4m0s (38%)") || !strings.Contains(line, "eta 2m30s") {
		t.Errorf("open-loop stage: %q", line)
	}
	v.target = loadgen.Target{Stage: 2, Concurrency: 8}
	if line := progressLine(v, 3*time.Minute); !strings.Contains(line, "stage 3/3 c8") {
		t.Errorf("closed-loop stage: %q", line)
	}
	v.target = loadgen.Target{Stage: -1}
	if line := progressLine(v, 5*time.Minute); strings.Contains(line, "stage") {
		t.Errorf("after the stages: %q", line)
	}
	v.sc = &scenario.Scenario{Ramp: &scenario.Ramp{From: 1, To: 50, Duration: 10 * time.Minute}}
	v.target = loadgen.Target{Stage: 0, Rate: 25.5}
	if line := progressLine(v, 5*time.Minute); !strings.Contains(line, "ramp 25.5 req/s") || !strings.Contains(line, "5m0s/10m0s (50%)") {
		t.Errorf("ramp: %q", line)
	}
}

type startedView struct {
	fakeView
	started time.Time
}

func (v *startedView) Started() time.Time { return v.started }

// TestProgressTimeIsTheMeasuredRuns: the elapsed time shown starts with
// the measured requests, not with the idle baseline before them (a 10 s
// baseline showed an 11 s ramp 91 % done before its first request).
func TestProgressTimeIsTheMeasuredRuns(t *testing.T) {
	progressStart := time.Now().Add(-10 * time.Second)
	v := &startedView{}
	if got := time.Since(measuredStart(v, progressStart)); got > 5*time.Second {
		t.Errorf("before the measured requests: %v elapsed, want none", got)
	}
	v.started = progressStart.Add(8 * time.Second)
	if got := measuredStart(v, progressStart); !got.Equal(v.started) {
		t.Errorf("measured start %v, want %v", got, v.started)
	}
	if got := measuredStart(&v.fakeView, progressStart); !got.Equal(progressStart) {
		t.Errorf("a view without a start: %v, want the progress line's %v", got, progressStart)
	}
}
