//go:build race

package compare

// raceEnabled: the race detector slows the resampling loops several-fold;
// the property test then draws fewer resamples of smaller runs.
const raceEnabled = true
