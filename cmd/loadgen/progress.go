package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

var loadgenBuiltins = scenario.Builtins

func stderrIsTerminal() bool { return term.IsTerminal(int(os.Stderr.Fd())) }

// terminalWidth is stderr's width in columns: the terminal's, else
// $COLUMNS, else 80.
func terminalWidth() int {
	if w, _, err := term.GetSize(int(os.Stderr.Fd())); err == nil && w > 0 {
		return w
	}
	if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 0 {
		return c
	}
	return 80
}

// progress prints a live status line on a terminal (redrawn in place,
// never wider than the terminal) or a plain log line every few seconds
// otherwise.
type progress struct {
	done chan struct{}
	quit chan struct{}
}

func startProgress(e *env, r progressView) *progress {
	p := &progress{done: make(chan struct{}), quit: make(chan struct{})}
	every := 5 * time.Second
	if e.isTerminal {
		every = 250 * time.Millisecond
	}
	width := e.width
	if width == nil {
		width = terminalWidth
	}
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fields := progressFields(r, time.Since(measuredStart(r, start)))
				if e.isTerminal {
					// Asked each time: the terminal may have been resized.
					fmt.Fprintf(e.stderr, "\r\033[K%s", fitWidth(fields, width()))
				} else {
					fmt.Fprintf(e.stderr, "loadgen: %s\n", joinFields(fields))
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

// measuredStart is when the run's measured requests started, so that the
// elapsed time shown leaves out the idle baseline and the warm-up (now,
// before they start: no time has elapsed); for a view that does not know
// it, start.
func measuredStart(r progressView, start time.Time) time.Time {
	if sv, ok := r.(interface{ Started() time.Time }); ok {
		if t := sv.Started(); !t.IsZero() {
			return t
		}
		return time.Now()
	}
	return start
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

// progressField is one item of the progress line. Where the line is
// wider than the terminal, fields give way in order of drop (1 first);
// those with drop 0 always stay.
type progressField struct {
	sep, text string
	drop      int
}

func progressLine(r progressView, elapsed time.Duration) string {
	return joinFields(progressFields(r, elapsed))
}

func progressFields(r progressView, elapsed time.Duration) []progressField {
	sc, pr := r.Scenario(), r.Progress()
	done := pr.Done.Load()
	failed := pr.Failed.Load()
	var fs []progressField
	add := func(sep string, drop int, format string, args ...any) {
		fs = append(fs, progressField{sep: sep, text: fmt.Sprintf(format, args...), drop: drop})
	}
	simulated := ""
	if r.Simulated() {
		simulated = "[SIMULATED] "
	}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	// The share done is of whichever bound ends the run first: the
	// count, or the time (the duration, or the stages' end).
	limit := sc.TimeLimit()
	byCount := sc.NumSamples > 0
	if byCount && limit > 0 {
		left := max(limit-elapsed, 0)
		byCount = rate > 0 && float64(int64(sc.NumSamples)-done)/rate < left.Seconds()
	}
	switch {
	case byCount:
		add("", 0, "%s%d/%d (%.0f%%)", simulated, done, sc.NumSamples, 100*float64(done)/float64(sc.NumSamples))
	case limit > 0:
		add("", 0, "%s%d done, %s/%s (%.0f%%)", simulated, done, elapsed.Round(time.Second), limit, 100*min(elapsed.Seconds()/limit.Seconds(), 1))
	default:
		add("", 0, "%s%d done, %s", simulated, done, elapsed.Round(time.Second))
	}
	if tv, ok := r.(interface{ Target() loadgen.Target }); ok && sc.Staged() {
		if t := tv.Target(); t.Stage >= 0 {
			switch {
			case sc.Ramp != nil:
				add("  ", 8, "ramp %.3g req/s", t.Rate)
			case t.Rate > 0:
				add("  ", 8, "stage %d/%d %g req/s", t.Stage+1, len(sc.Stages), t.Rate)
			default:
				add("  ", 8, "stage %d/%d c%d", t.Stage+1, len(sc.Stages), t.Concurrency)
			}
		}
	}
	add("  ", 5, "%.1f req/s", rate)
	add("  ", 2, "ok %d", done-failed)
	add("  ", 6, "failed %d", failed)
	add("  ", 3, "in flight %d", pr.InFlight.Load())
	if p50, ok := r.TTFTP50(); ok {
		add("  ", 4, "ttft p50 %s", time.Duration(p50*float64(time.Second)).Round(100*time.Microsecond))
	}
	if eta, ok := progressETA(done, rate, elapsed, sc); ok {
		add("  ", 7, "eta %s", eta.Round(time.Second))
	}
	if rv, ok := r.(interface{ RecordsErr() error }); ok && rv.RecordsErr() != nil {
		add("  ", 0, "RECORDS WRITE FAILED, stopping")
	}
	if sat := r.Saturation(); sat != nil && sat.Saturated {
		add("  ", 0, "CLIENT SATURATED")
		// The run's end repeats the reason in a warning.
		add(" ", 1, "(%s)", sat.Reason)
	}
	return fs
}

func joinFields(fs []progressField) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.sep)
		b.WriteString(f.text)
	}
	return b.String()
}

// fitWidth joins fs into a line shorter than width: a line that reaches
// the last column wraps on many terminals, and a wrapped line is left
// behind by each redraw. Fields give way in their drop order; what still
// does not fit is cut.
func fitWidth(fs []progressField, width int) string {
	limit := max(width-1, 1)
	fs = slices.Clone(fs)
	line := joinFields(fs)
	for utf8.RuneCountInString(line) > limit {
		i := -1
		for j, f := range fs {
			if f.drop > 0 && (i < 0 || f.drop < fs[i].drop) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		fs = slices.Delete(fs, i, i+1)
		line = joinFields(fs)
	}
	if utf8.RuneCountInString(line) > limit {
		line = string([]rune(line)[:limit])
	}
	return line
}

// progressETA estimates the time left from the count or the time limit
// (the duration, or the stages' end), whichever ends the run first.
func progressETA(done int64, rate float64, elapsed time.Duration, sc *scenario.Scenario) (time.Duration, bool) {
	var eta time.Duration
	known := false
	if sc.NumSamples > 0 && rate > 0 {
		eta = time.Duration(float64(int64(sc.NumSamples)-done) / rate * float64(time.Second))
		known = true
	}
	if limit := sc.TimeLimit(); limit > 0 {
		left := max(limit-elapsed, 0)
		if !known || left < eta {
			eta = left
		}
		known = true
	}
	return eta, known
}
