package sim

import (
	"syscall"
	"time"
)

// fineSleep sleeps for d with the kernel's high-resolution timer. Go's
// runtime timers wake up to about 1 ms late on an idle Linux machine
// (epoll_wait takes whole milliseconds), too coarse for a simulator whose
// TTFT and ITL must match the configuration to well under 1 ms. Only the
// last stretch before a deadline (at most coarseMargin) is slept here, so
// few OS threads block at once.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
