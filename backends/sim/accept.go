package sim

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// AcceptErrors counts a simulator's failed accepts of connections. At
// high rates a process runs out of file descriptors (EMFILE, "too many
// open files"); net/http would log one line per failed accept, straight
// into loadgen's progress output. The simulator retries as net/http does
// and counts instead.
type AcceptErrors struct {
	// Count is the failed accepts, each retried.
	Count int64
	// OpenFiles is those that failed for the open-files limit: this
	// process's (EMFILE) or the system's (ENFILE).
	OpenFiles int64
	// Last is the last failure (nil: none).
	Last error
}

// retryAccept wraps a listener: accept errors that pass (out of file
// descriptors or memory) are counted and retried after a pause that
// doubles from 5 ms to 1 s, as http.Server does; any other error ends
// serving as before.
type retryAccept struct {
	net.Listener
	closed    chan struct{}
	closeOnce sync.Once

	count, openFiles atomic.Int64
	mu               sync.Mutex
	last             error
}

func newRetryAccept(ln net.Listener) *retryAccept {
	return &retryAccept{Listener: ln, closed: make(chan struct{})}
}

func (l *retryAccept) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !passing(err) {
			return c, err
		}
		l.count.Add(1)
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			l.openFiles.Add(1)
		}
		l.mu.Lock()
		l.last = err
		l.mu.Unlock()
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-l.closed:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

func (l *retryAccept) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *retryAccept) errors() AcceptErrors {
	l.mu.Lock()
	defer l.mu.Unlock()
	return AcceptErrors{Count: l.count.Load(), OpenFiles: l.openFiles.Load(), Last: l.last}
}

// passing reports whether an accept error goes away by itself: the
// process or the system is out of file descriptors, or of memory for
// the socket.
func passing(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
