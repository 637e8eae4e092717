package run

import (
	"sync"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// lockedSummary lets the progress line read the summary that the runner's
// collector goroutine writes.
type lockedSummary struct {
	mu sync.Mutex
	s  *loadgen.Summary
}

// Observe implements loadgen.Sink.
func (l *lockedSummary) Observe(rec *loadgen.Record) {
	l.mu.Lock()
	l.s.Add(rec)
	l.mu.Unlock()
}

func (l *lockedSummary) ttftP50() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.TTFTQuantile(0.5)
}

func (l *lockedSummary) row(info loadgen.RunInfo) *report.Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Row(info)
}

func (l *lockedSummary) failures() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Failures()
}

func (l *lockedSummary) finishReasons() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.FinishReasons()
}

func (l *lockedSummary) distributions() map[string]*report.Distribution {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Distributions()
}

func (l *lockedSummary) quantile(name string, q float64) (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Quantile(name, q)
}

func (l *lockedSummary) clientLateness() (lateness, timer *report.Distribution) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lateness, timer, _ = l.s.ClientLateness()
	return lateness, timer
}
