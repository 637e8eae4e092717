package sim

import (
	"container/heap"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/hrtimer"
)

// clock waits for one stream's absolute deadlines on the monotonic clock.
// Waiting for deadlines rather than sleeping for gaps keeps a stream on
// its schedule: a late wake-up delays one token, not every later one.
//
// The streams of a server share one high-resolution timer (timers): a
// timer per stream cost two timerfd system calls and two netpoller
// wake-ups per token, and a file descriptor per stream, which at 10,000
// streams, beside their connections, is the whole of a 20,000 open-files
// limit.
type clock struct {
	timers *timers
	s      sleeper
}

// newClock returns a clock for one stream.
func (t *timers) newClock() *clock {
	return &clock{timers: t, s: sleeper{wake: make(chan struct{}, 1), index: -1}}
}

// waitHook, when a test sets it (before starting a server), replaces every
// stream's timer wait: it sees each token's deadline and decides when the
// wait ends. It lets the schedule be tested with a controlled clock. nil
// outside tests.
var waitHook func(ctx context.Context, deadline time.Time) bool

// sleepUntil waits until deadline and reports true, or reports false as
// soon as ctx ends. It reports false at once if ctx has already ended, and
// true at once if deadline has passed. It never returns true before
// deadline.
func (c *clock) sleepUntil(ctx context.Context, deadline time.Time) bool {
	if waitHook != nil {
		return waitHook(ctx, deadline)
	}
	if ctx.Err() != nil {
		return false
	}
	if !time.Now().Before(deadline) {
		return true
	}
	c.timers.add(&c.s, deadline)
	select {
	case <-c.s.wake:
	case <-ctx.Done():
		if !c.timers.remove(&c.s) {
			<-c.s.wake // woken meanwhile
		}
		return false
	}
	// Woken up to timerSlack early, with others due about then: yield
	// for the rest.
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return false
		}
		runtime.Gosched()
	}
	return true
}

// timerSlack is how far ahead of its deadline a stream may be woken
// together with one that is due: the timer goroutine then never waits for
// less than this, which internal/hrtimer would spend yielding in a loop
// (its own threshold is the same), and the woken stream yields for the
// rest of its wait.
const timerSlack = 50 * time.Microsecond

// timersLinger is how long the timer goroutine waits for new deadlines
// once none is left before it exits (and closes its timerfd).
const timersLinger = time.Second

// timers wakes the sleepers of a server at their deadlines, in deadline
// order, from one goroutine waiting on one high-resolution timer for the
// earliest.
type timers struct {
	mu      sync.Mutex
	heap    sleepers
	running bool      // the timer goroutine is running
	armed   time.Time // when its current wait ends; zero when it is not waiting
	// kick ends the timer goroutine's current wait, when a deadline
	// earlier than armed comes in; kicked is its context.
	kicked context.Context
	kick   context.CancelFunc
}

// sleeper is one stream's pending wait.
type sleeper struct {
	deadline time.Time
	wake     chan struct{} // receives once when deadline is (nearly) reached
	index    int           // in timers.heap; -1 when not in it
}

// add makes s wait for deadline.
func (t *timers) add(s *sleeper, deadline time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.deadline = deadline
	heap.Push(&t.heap, s)
	switch {
	case !t.running:
		t.running = true
		t.kicked, t.kick = context.WithCancel(context.Background())
		go t.run()
	case s.index == 0 && (t.armed.IsZero() || deadline.Before(t.armed)):
		t.kick()
	}
}

// remove takes s out of the heap and reports whether it was there; if it
// was not, it has been woken (its wake channel holds the signal).
func (t *timers) remove(s *sleeper) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.index < 0 {
		return false
	}
	heap.Remove(&t.heap, s.index)
	return true
}

// run is the timer goroutine: it wakes the sleepers that are due, waits
// for the next deadline (or a kick), and exits after timersLinger with
// none.
func (t *timers) run() {
	timer, err := hrtimer.New()
	if err != nil {
		// Out of file descriptors: runtime timers' resolution rather than
		// no simulator.
		timer = new(hrtimer.Timer)
	}
	defer timer.Close()
	for {
		t.mu.Lock()
		if t.kicked.Err() != nil {
			t.kicked, t.kick = context.WithCancel(context.Background())
		}
		now := time.Now()
		for len(t.heap) > 0 && t.heap[0].deadline.Sub(now) < timerSlack {
			s := heap.Pop(&t.heap).(*sleeper)
			s.wake <- struct{}{}
		}
		next, idle := now.Add(timersLinger), true
		if len(t.heap) > 0 {
			next, idle = t.heap[0].deadline, false
		}
		t.armed = next
		kicked := t.kicked
		t.mu.Unlock()
		if timer.SleepUntil(kicked, next) && idle {
			t.mu.Lock()
			if len(t.heap) == 0 {
				t.running, t.armed = false, time.Time{}
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
		}
	}
}

// sleepers is a min-heap of sleepers by deadline (container/heap).
type sleepers []*sleeper

func (h sleepers) Len() int           { return len(h) }
func (h sleepers) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h sleepers) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *sleepers) Push(x any) {
	s := x.(*sleeper)
	s.index = len(*h)
	*h = append(*h, s)
}

func (h *sleepers) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.index = -1
	return s
}
