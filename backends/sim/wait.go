package sim

import (
	"context"
	"time"
)

// coarseMargin is how long before a deadline sleepUntil switches from a
// runtime timer, which can overshoot by about 1 ms, to fineSleep.
const coarseMargin = 2 * time.Millisecond

// clock waits for absolute deadlines on the monotonic clock. Waiting for
// deadlines rather than sleeping for gaps keeps a stream on its schedule:
// a late wake-up delays one token, not every later one.
type clock struct {
	timer *time.Timer
}

func newClock() *clock {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &clock{timer: t}
}

// sleepUntil waits until deadline and reports true, or reports false as
// soon as ctx ends (noticed at the latest coarseMargin before deadline).
func (c *clock) sleepUntil(ctx context.Context, deadline time.Time) bool {
	if d := time.Until(deadline) - coarseMargin; d > 0 {
		c.timer.Reset(d)
		select {
		case <-c.timer.C:
		case <-ctx.Done():
			c.timer.Stop()
			return false
		}
	}
	if ctx.Err() != nil {
		return false
	}
	if d := time.Until(deadline); d > 0 {
		fineSleep(d)
	}
	return ctx.Err() == nil
}

func (c *clock) stop() { c.timer.Stop() }
