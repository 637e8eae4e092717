//go:build race

package main

// raceEnabled: the race detector slows every goroutine several-fold, so
// tests that assert timing accuracy skip under it and run in the test
// script's second, race-free pass (their names contain "Timing").
const raceEnabled = true
