//go:build !race

package hrtimer

// raceEnabled reports whether the race detector, which slows every wake-up,
// is on; accuracy is only asserted without it.
const raceEnabled = false
