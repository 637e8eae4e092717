//go:build race

package sim

// raceEnabled: timing tests (names containing "Timing") skip under the
// race detector, which slows goroutines several-fold, and run in
// scripts/test's second, race-free pass, one package at a time.
const raceEnabled = true
