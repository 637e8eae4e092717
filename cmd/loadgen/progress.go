package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/run"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

var loadgenBuiltins = scenario.Builtins

func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// progress prints a live status line on a terminal (redrawn in place) or a
// plain log line every few seconds otherwise.
type progress struct {
	done chan struct{}
	quit chan struct{}
}

func startProgress(e *env, r *run.Run) *progress {
	p := &progress{done: make(chan struct{}), quit: make(chan struct{})}
	every := 5 * time.Second
	if e.isTerminal {
		every = 250 * time.Millisecond
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				line := progressLine(r, time.Since(start))
				if e.isTerminal {
					fmt.Fprintf(e.stderr, "\r\033[K%s", line)
				} else {
					fmt.Fprintf(e.stderr, "loadgen: %s\n", line)
				}
			case <-p.quit:
				if e.isTerminal {
					fmt.Fprint(e.stderr, "\r\033[K")
				}
				return
			}
		}
	}()
	return p
}

// stop ends the progress line.
func (p *progress) stop() {
	close(p.quit)
	<-p.done
}

// progressView is what a progress line shows of a run.
type progressView interface {
	Scenario() *scenario.Scenario
	Simulated() bool
	Progress() *loadgen.Progress
	TTFTP50() (float64, bool)
	Saturation() *loadgen.Saturation
}

func progressLine(r progressView, elapsed time.Duration) string {
	sc, pr := r.Scenario(), r.Progress()
	done := pr.Done.Load()
	failed := pr.Failed.Load()
	var b strings.Builder
	if r.Simulated() {
		b.WriteString("[SIMULATED] ")
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	// The share done is of whichever bound ends the run first.
	byCount := sc.NumSamples > 0
	if byCount && sc.Duration > 0 {
		left := max(sc.Duration-elapsed, 0)
		byCount = rate > 0 && float64(int64(sc.NumSamples)-done)/rate < left.Seconds()
	}
	switch {
	case byCount:
		fmt.Fprintf(&b, "%d/%d (%.0f%%)", done, sc.NumSamples, 100*float64(done)/float64(sc.NumSamples))
	case sc.Duration > 0:
		fmt.Fprintf(&b, "%d done, %s/%s (%.0f%%)", done, elapsed.Round(time.Second), sc.Duration, 100*min(elapsed.Seconds()/sc.Duration.Seconds(), 1))
	default:
		fmt.Fprintf(&b, "%d done, %s", done, elapsed.Round(time.Second))
	}
	fmt.Fprintf(&b, "  %.1f req/s  ok %d  failed %d  in flight %d", rate, done-failed, failed, pr.InFlight.Load())
	if p50, ok := r.TTFTP50(); ok {
		fmt.Fprintf(&b, "  ttft p50 %s", time.Duration(p50*float64(time.Second)).Round(100*time.Microsecond))
	}
	if eta, ok := progressETA(done, rate, elapsed, sc); ok {
		fmt.Fprintf(&b, "  eta %s", eta.Round(time.Second))
	}
	if sat := r.Saturation(); sat != nil && sat.Saturated {
		fmt.Fprintf(&b, "  CLIENT SATURATED (%s)", sat.Reason)
	}
	if rv, ok := r.(interface{ RecordsErr() error }); ok && rv.RecordsErr() != nil {
		b.WriteString("  RECORDS WRITE FAILED, stopping")
	}
	return b.String()
}

// progressETA estimates the time left from the count or the duration,
// whichever ends the run first.
func progressETA(done int64, rate float64, elapsed time.Duration, sc *scenario.Scenario) (time.Duration, bool) {
	var eta time.Duration
	known := false
	if sc.NumSamples > 0 && rate > 0 {
		eta = time.Duration(float64(int64(sc.NumSamples)-done) / rate * float64(time.Second))
		known = true
	}
	if sc.Duration > 0 {
		left := max(sc.Duration-elapsed, 0)
		if !known || left < eta {
			eta = left
		}
		known = true
	}
	return eta, known
}
