//go:build !linux

package sim

import "time"

// fineSleep sleeps for d. Outside Linux it is a plain time.Sleep, with the
// runtime's timer resolution.
func fineSleep(d time.Duration) { time.Sleep(d) }
