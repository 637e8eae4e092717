package sim

import (
	"context"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/hrtimer"
)

// clock waits for absolute deadlines on the monotonic clock. Waiting for
// deadlines rather than sleeping for gaps keeps a stream on its schedule:
// a late wake-up delays one token, not every later one. Its timer wakes up
// within tens of microseconds without holding a thread, so many streams
// can wait at once on few cores.
type clock struct {
	timer *hrtimer.Timer
}

// newClock returns a clock for one stream. When no high-resolution timer
// can be had (the process is out of file descriptors) it falls back to the
// runtime timers' 1 ms resolution: the stream is served less precisely
// rather than not at all.
func newClock() *clock {
	t, err := hrtimer.New()
	if err != nil {
		t = new(hrtimer.Timer)
	}
	return &clock{timer: t}
}

// waitHook, when a test sets it (before starting a server), replaces every
// stream's timer wait: it sees each token's deadline and decides when the
// wait ends. It lets the schedule be tested with a controlled clock. nil
// outside tests.
var waitHook func(ctx context.Context, deadline time.Time) bool

// sleepUntil waits until deadline and reports true, or reports false as
// soon as ctx ends.
func (c *clock) sleepUntil(ctx context.Context, deadline time.Time) bool {
	if waitHook != nil {
		return waitHook(ctx, deadline)
	}
	return c.timer.SleepUntil(ctx, deadline)
}

// stop releases the clock's timer.
func (c *clock) stop() { c.timer.Close() }
