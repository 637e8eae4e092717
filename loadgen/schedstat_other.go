//go:build !linux

package loadgen

import "time"

// newRunqueueReader is nil off Linux: no run-queue signal.
func newRunqueueReader() func() (time.Duration, uint64, bool) { return nil }
