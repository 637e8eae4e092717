//go:build !unix

package loadgen

import "time"

// processCPU is unknown here: only the pacing signal is used.
func processCPU() (time.Duration, bool) { return 0, false }
