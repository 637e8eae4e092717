package main

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

var loadgenBuiltins = scenario.Builtins

func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// progress prints a live status line on a terminal (redrawn in place) or a
// plain log line every few seconds otherwise.
//
// It also watches for a saturated client (loadgen.SaturationMonitor)
// every second: the state goes to the metrics, the progress line, a
// warning the first time, and the summary.
type progress struct {
	done chan struct{}
	quit chan struct{}

	mon       *loadgen.SaturationMonitor
	latest    atomic.Pointer[loadgen.Saturation]
	monDone   chan struct{}
	setMetric func(saturated bool, cpu float64)
}

func startProgress(e *env, r *loadgen.Runner, s *lockedSummary, sc *scenario.Scenario, simulated bool, setMetric func(bool, float64)) *progress {
	p := &progress{done: make(chan struct{}), quit: make(chan struct{}), monDone: make(chan struct{}),
		mon: loadgen.NewSaturationMonitor(&r.Progress), setMetric: setMetric}
	go p.watch(e)
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
				line := progressLine(r, s, sc, simulated, time.Since(start), p.latest.Load())
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

// watch ticks the saturation monitor every second until stop.
func (p *progress) watch(e *env) {
	defer close(p.monDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	warned := false
	for {
		select {
		case now := <-t.C:
			st := p.mon.Tick(now)
			p.latest.Store(&st)
			p.setMetric(st.Saturated, st.CPU)
			if st.Saturated && !warned {
				warned = true
				fmt.Fprintf(e.stderr, "%sloadgen: warning: the client is saturated (%s): latencies may describe the load generator, not the server\n",
					map[bool]string{true: "\r\033[K", false: ""}[e.isTerminal], st.Reason)
			}
		case <-p.quit:
			return
		}
	}
}

// stop ends the progress line and the monitoring, closing the last
// window, and says whether the client was ever saturated.
func (p *progress) stop() (saturated bool, summary string) {
	close(p.quit)
	<-p.done
	<-p.monDone
	st := p.mon.Tick(time.Now())
	p.setMetric(st.Saturated, st.CPU)
	n, windows, worst := p.mon.Summary()
	if n == 0 {
		return false, ""
	}
	return true, fmt.Sprintf("the client was saturated in %d of %d one-second windows (worst: %s); latencies may describe the load generator, not the server", n, windows, worst)
}

func progressLine(r *loadgen.Runner, s *lockedSummary, sc *scenario.Scenario, simulated bool, elapsed time.Duration, sat *loadgen.Saturation) string {
	done := r.Progress.Done.Load()
	failed := r.Progress.Failed.Load()
	var b strings.Builder
	if simulated {
		b.WriteString("[SIMULATED] ")
	}
	switch {
	case sc.NumSamples > 0:
		fmt.Fprintf(&b, "%d/%d (%.0f%%)", done, sc.NumSamples, 100*float64(done)/float64(sc.NumSamples))
	case sc.Duration > 0:
		fmt.Fprintf(&b, "%d done, %s/%s", done, elapsed.Round(time.Second), sc.Duration)
	default:
		fmt.Fprintf(&b, "%d done, %s", done, elapsed.Round(time.Second))
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	fmt.Fprintf(&b, "  %.1f req/s  ok %d  failed %d  in flight %d", rate, done-failed, failed, r.Progress.InFlight.Load())
	if p50, ok := s.ttftP50(); ok {
		fmt.Fprintf(&b, "  ttft p50 %s", time.Duration(p50*float64(time.Second)).Round(100*time.Microsecond))
	}
	if eta, ok := progressETA(done, rate, elapsed, sc); ok {
		fmt.Fprintf(&b, "  eta %s", eta.Round(time.Second))
	}
	if sat != nil && sat.Saturated {
		fmt.Fprintf(&b, "  CLIENT SATURATED (%s)", sat.Reason)
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
