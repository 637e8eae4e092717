package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Running is a simulator serving on a listener.
type Running struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8000 (without
	// /v1).
	URL string

	srv      *http.Server
	ln       *retryAccept
	cancel   context.CancelFunc // ends every request's context
	served   chan struct{}      // closed when Serve has returned
	serveErr error
	once     sync.Once
	closeErr error
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves a
// simulator with cfg until ctx is done or Close is called. Its error
// names the bad config field or the address it could not listen on.
func Start(ctx context.Context, addr string, cfg Config) (*Running, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simulator: listen on %s: %w", addr, err)
	}
	return serve(ctx, s, ln), nil
}

// serve serves s on ln until ctx is done or Close is called.
func serve(ctx context.Context, s *Server, listener net.Listener) *Running {
	ln := newRetryAccept(listener)
	// Requests get a context that Close cancels, so that streams in
	// progress (a stalled one never ends by itself) stop at once.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &Running{
		URL: "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           s,
			BaseContext:       func(net.Listener) context.Context { return base },
			ReadHeaderTimeout: 10 * time.Second, // a client that never finishes its headers holds no goroutine forever
		},
		ln:     ln,
		cancel: cancel,
		served: make(chan struct{}),
	}
	go func() {
		defer close(r.served)
		if err := r.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.serveErr = err
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = r.Close()
		case <-r.served:
		}
	}()
	return r
}

// AcceptErrors is how many times accepting a connection has failed so
// far (each retried after a pause, none logged), and why.
func (r *Running) AcceptErrors() AcceptErrors { return r.ln.errors() }

// Close stops the server: requests in progress end at once (streams are
// cut off) and the listener closes. It returns the error that ended
// serving, if serving failed; later calls return the same.
func (r *Running) Close() error {
	r.once.Do(func() {
		// Closing the connections first cuts streams off mid-body, as a
		// server going away would; cancelling then ends their handlers.
		err := r.srv.Close()
		r.cancel()
		<-r.served
		r.closeErr = errors.Join(r.serveErr, err)
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("simulator at %s: %w", r.URL, r.closeErr)
		}
	})
	return r.closeErr
}
