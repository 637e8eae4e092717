package sim

import (
	"context"
	"sync"
)

// scheduler hands out MaxNumSeqs sequence slots in arrival order, like
// vLLM's scheduler with --max-num-seqs: a request beyond the limit waits
// in a FIFO queue, and that wait is part of its TTFT.
type scheduler struct {
	mu      sync.Mutex
	max     int
	running int
	queue   []*waiter
	// onChange reports the running and waiting counts after every change,
	// under mu so that the reported values are never out of order.
	onChange func(running, waiting int)
}

type waiter struct {
	ready   chan struct{} // closed when the slot is handed over
	granted bool          // set under scheduler.mu together with closing ready
}

func newScheduler(maxSeqs int, onChange func(running, waiting int)) *scheduler {
	s := &scheduler{max: maxSeqs, onChange: onChange}
	s.onChange(0, 0)
	return s
}

// acquire takes a slot, waiting in line if none is free, and reports
// whether it had to wait. It returns ctx's error if ctx ends first; the
// request then holds no slot and has left the queue.
func (s *scheduler) acquire(ctx context.Context) (queued bool, err error) {
	s.mu.Lock()
	if s.running < s.max && len(s.queue) == 0 {
		s.running++
		s.onChange(s.running, len(s.queue))
		s.mu.Unlock()
		return false, nil
	}
	w := &waiter{ready: make(chan struct{})}
	s.queue = append(s.queue, w)
	s.onChange(s.running, len(s.queue))
	s.mu.Unlock()

	select {
	case <-w.ready:
		return true, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		// The slot arrived while ctx ended: pass it on rather than leak it.
		s.releaseLocked()
		return true, ctx.Err()
	}
	for i, q := range s.queue {
		if q == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			break
		}
	}
	s.onChange(s.running, len(s.queue))
	return true, ctx.Err()
}

// release frees a slot taken by acquire, handing it to the longest waiter.
func (s *scheduler) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked()
}

func (s *scheduler) releaseLocked() {
	if len(s.queue) > 0 {
		w := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		w.granted = true
		close(w.ready)
	} else {
		s.running--
	}
	s.onChange(s.running, len(s.queue))
}

// runningNow is the number of sequences holding a slot.
func (s *scheduler) runningNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}
