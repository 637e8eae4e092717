//go:build !linux

package hrtimer

import (
	"context"
	"time"
)

// Timer waits for deadlines on one goroutine at a time. Outside Linux it
// has the resolution of the runtime's timers. The zero Timer is ready to
// use.
type Timer struct{}

// New returns a Timer. Outside Linux it cannot fail.
func New() (*Timer, error) { return &Timer{}, nil }

// Close releases the Timer's resources; there are none outside Linux.
func (t *Timer) Close() error { return nil }

func (t *Timer) wait(ctx context.Context, deadline time.Time) bool {
	return sleepCoarse(ctx, time.Until(deadline))
}
