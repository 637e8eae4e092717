package hrtimer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Timer waits for deadlines on a timerfd that the netpoller watches. It
// serves one goroutine at a time. The zero Timer is ready to use but has
// only the runtime timers' resolution; New returns a high-resolution one.
type Timer struct {
	file *os.File
	// fd is file's descriptor, kept because File.Fd would switch it to
	// blocking mode and take it out of the netpoller.
	fd        int
	buf       [8]byte
	interrupt func()
	// interrupted receives once from each interrupt that ran, so a wait
	// knows the read deadline it clears will not be set again after.
	interrupted chan struct{}
}

// New returns a high-resolution Timer, which holds a file descriptor until
// Close.
func New() (*Timer, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hrtimer: timerfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "timerfd")
	// Only a file in the netpoller has deadlines; without them a read
	// would block its thread, which is what this package avoids.
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		file.Close()
		return nil, fmt.Errorf("hrtimer: timerfd not in the netpoller: %w", err)
	}
	t := &Timer{file: file, fd: fd, interrupted: make(chan struct{}, 1)}
	t.interrupt = func() {
		t.file.SetReadDeadline(time.Unix(1, 0))
		t.interrupted <- struct{}{}
	}
	return t, nil
}

// Close releases the Timer's file descriptor. The Timer must not be used
// afterwards.
func (t *Timer) Close() error {
	if t.file == nil {
		return nil
	}
	return t.file.Close()
}

// wait arms the timerfd for deadline and parks in the netpoller until it
// expires or ctx ends.
func (t *Timer) wait(ctx context.Context, deadline time.Time) bool {
	if t.file == nil {
		return sleepCoarse(ctx, time.Until(deadline))
	}
	// A relative expiry measured just before arming: an absolute one
	// would need the runtime's monotonic origin, which time does not
	// expose, and reading CLOCK_MONOTONIC here would cost as much.
	d := time.Until(deadline)
	if d <= 0 {
		return true
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		return sleepCoarse(ctx, d)
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, t.interrupt)
	}
	_, err := t.file.Read(t.buf[:])
	if stop != nil && !stop() {
		<-t.interrupted
		t.file.SetReadDeadline(time.Time{})
	}
	if err == nil {
		return true
	}
	t.disarm()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return sleepCoarse(ctx, time.Until(deadline))
}

// disarm stops the timer and drops an expiry that may have landed since
// the read gave up, so the next wait cannot return early on it.
func (t *Timer) disarm() {
	unix.TimerfdSettime(t.fd, 0, &unix.ItimerSpec{}, nil)
	unix.Read(t.fd, t.buf[:])
}
