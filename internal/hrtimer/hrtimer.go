// Package hrtimer sleeps until a deadline with sub-millisecond accuracy
// without holding an OS thread.
//
// Go's runtime timers on Linux can fire up to about 1 ms late, because the
// scheduler waits for them in epoll_wait, whose timeout is whole
// milliseconds. A blocking nanosleep is accurate but pins its thread and
// its P until sysmon retakes the P, which starves other goroutines when
// many streams sleep at once. A Timer instead arms a timerfd and parks the
// goroutine in the netpoller until the fd becomes readable: the kernel's
// high-resolution timer wakes epoll_wait, and no thread is held meanwhile.
// Outside Linux it falls back to runtime timers.
//
// The package depends only on the standard library and golang.org/x/sys.
package hrtimer

import (
	"context"
	"runtime"
	"time"
)

// spinBelow is the longest wait that yields in a loop instead of arming
// the timer. A netpoller wake-up costs tens of microseconds, so for waits
// this short yielding is both more accurate and cheap; any longer and the
// loop would burn CPU that the process shares with the server it drives.
const spinBelow = 50 * time.Microsecond

// earlyWake is how far ahead of a long wait's deadline a first wake-up
// is aimed. After a long idle stretch a CPU (a virtual one above all)
// wakes up late, by about 1 ms after 200 ms on our 2-core VMs, whatever
// the timer: nanosleep, timerfd and runtime timers alike. A second, short
// wait from an awake CPU lands within tens of microseconds.
const earlyWake = 2 * time.Millisecond

// SleepUntil waits until deadline and reports true, or reports false as
// soon as ctx ends. It reports false at once if ctx has already ended, and
// true at once if deadline has passed.
func (t *Timer) SleepUntil(ctx context.Context, deadline time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	d := time.Until(deadline)
	switch {
	case d <= 0:
		return true
	case d < spinBelow:
		return spinUntil(ctx, deadline)
	case d > 2*earlyWake:
		if !t.wait(ctx, deadline.Add(-earlyWake)) {
			return false
		}
	}
	return t.wait(ctx, deadline)
}

// spinUntil yields until deadline, so other goroutines run meanwhile.
func spinUntil(ctx context.Context, deadline time.Time) bool {
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// sleepCoarse waits for d on a runtime timer, with its resolution.
func sleepCoarse(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
