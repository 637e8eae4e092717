package energy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// errReadTimeout marks a device read that did not return in time.
type errReadTimeout struct{ after time.Duration }

func (e errReadTimeout) Error() string {
	return fmt.Sprintf("read did not return within %v (a hung driver call?)", e.after)
}

// readTimeout bounds one device read of a local library: long enough for
// a busy driver, short enough that a hung GPU costs the others no tick.
func readTimeout(interval time.Duration) time.Duration {
	return min(max(interval, 500*time.Millisecond), 5*time.Second)
}

// boundedReader reads each device on its own goroutine, so that one hung
// library call (a GPU fallen off the bus can block NVML for tens of
// seconds) stalls only its own device. A device whose read has not
// returned within the timeout is reported failed, and is not read again
// until that call returns: a hung call is never piled upon.
type boundedReader struct {
	timeout time.Duration
	read    func(i int) Reading

	mu   sync.Mutex
	busy []bool // a read of the device has not returned yet
}

// newBoundedReader reads n devices with read, each bounded by timeout.
// read must be safe to call for different devices at once.
func newBoundedReader(n int, timeout time.Duration, read func(i int) Reading) *boundedReader {
	return &boundedReader{
		timeout: timeout, read: read,
		busy: make([]bool, n),
	}
}

// Read appends one Reading per device to dst, in device order. It
// returns within about the timeout whatever the devices do.
func (b *boundedReader) Read(ctx context.Context, dst []Reading) []Reading {
	n := len(b.busy)
	results := make([]Reading, n)
	ready := make([]chan struct{}, n)
	b.mu.Lock()
	for i := range n {
		if b.busy[i] {
			continue // still hung in an earlier call
		}
		b.busy[i] = true
		ch := make(chan struct{})
		ready[i] = ch
		go func(i int) {
			r := b.read(i)
			b.mu.Lock()
			results[i] = r
			b.busy[i] = false
			b.mu.Unlock()
			close(ch)
		}(i)
	}
	b.mu.Unlock()

	timer := time.NewTimer(b.timeout)
	defer timer.Stop()
	expired := false
	for i := range n {
		if ready[i] == nil || expired {
			continue
		}
		select {
		case <-ready[i]:
		case <-timer.C:
			expired = true
		case <-ctx.Done():
			expired = true
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range n {
		r := Reading{Time: time.Now(), EnergyJ: math.NaN(), PowerW: math.NaN()}
		switch {
		case ready[i] == nil:
			r.Err = errReadTimeout{b.timeout}
		default:
			select {
			case <-ready[i]:
				r = results[i]
			default:
				r.Err = errReadTimeout{b.timeout}
			}
		}
		dst = append(dst, r)
	}
	return dst
}

// callGuard keeps a GPU whose library call has not returned from getting
// another: the bounded readers of a source's opening and of its reads are
// separate, and a call that outlived one must not be piled upon by the
// next.
type callGuard struct {
	mu      sync.Mutex
	pending map[int]bool
}

// errCallPending: the GPU's earlier call has not returned.
var errCallPending = errors.New("an earlier call for this GPU has not returned (a hung driver call?)")

// do runs f for GPU i unless a call for it is pending. A nil guard runs f.
func (g *callGuard) do(i int, f func()) error {
	if g == nil {
		f()
		return nil
	}
	g.mu.Lock()
	if g.pending[i] {
		g.mu.Unlock()
		return errCallPending
	}
	if g.pending == nil {
		g.pending = map[int]bool{}
	}
	g.pending[i] = true
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.pending, i)
		g.mu.Unlock()
	}()
	f()
	return nil
}

// eachBounded runs f(i) for i in [0, n) at once, each through guard, and
// waits at most timeout for them (guard may be nil): done[i] says
// whether f(i) returned in time. f must only write state of its own i, and the caller must read
// state only of the i that are done.
func eachBounded(n int, timeout time.Duration, guard *callGuard, f func(i int)) (done []bool) {
	finished := make([]chan struct{}, n)
	for i := range n {
		finished[i] = make(chan struct{})
		go func() {
			defer close(finished[i])
			_ = guard.do(i, func() { f(i) })
		}()
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	done = make([]bool, n)
	for i := range n {
		select {
		case <-finished[i]:
			done[i] = true
		case <-timer.C:
			// Out of time: the rest are done only if they already are.
			for j := i; j < n; j++ {
				select {
				case <-finished[j]:
					done[j] = true
				default:
				}
			}
			return done
		}
	}
	return done
}
