package main

import (
	"log/slog"
	"strings"
	"testing"
)

// loadgen's log lines read as they did before slog: the program's name,
// "warning:" or "error:" for those levels, the message, then any
// attributes; on a terminal each line first clears the progress line.
func TestHumanLogLines(t *testing.T) {
	var b strings.Builder
	log := newLogger(&b, "loadgen", false)
	log.Info("run r1: scenario energy_star")
	log.Warn("the client is saturated")
	log.Error("records: disk full")
	log.With("gpu", 0).WithGroup("dcgm").Info("skipped", "why", "no counter")
	want := "loadgen: run r1: scenario energy_star\n" +
		"loadgen: warning: the client is saturated\n" +
		"loadgen: error: records: disk full\n" +
		"loadgen: skipped gpu=0 dcgm.why=no counter\n"
	if b.String() != want {
		t.Errorf("log lines:\n%q\nwant\n%q", b.String(), want)
	}

	b.Reset()
	newLogger(&b, "loadgen dump", true).Log(t.Context(), slog.LevelWarn, "scrape gap")
	if got := b.String(); got != "\r\033[Kloadgen dump: warning: scrape gap\n" {
		t.Errorf("terminal line %q", got)
	}
}

// Debug lines show only with TOKENWATT_DEBUG set.
func TestHumanLogDebugLines(t *testing.T) {
	var b strings.Builder
	t.Setenv("TOKENWATT_DEBUG", "")
	newLogger(&b, "loadgen", false).Debug("open-files limit 1024")
	if b.String() != "" {
		t.Errorf("debug line shown by default: %q", b.String())
	}
	t.Setenv("TOKENWATT_DEBUG", "1")
	newLogger(&b, "loadgen", false).Debug("open-files limit 1024")
	if want := "loadgen: debug: open-files limit 1024\n"; b.String() != want {
		t.Errorf("debug line %q, want %q", b.String(), want)
	}
}
