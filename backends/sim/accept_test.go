package sim

import (
	"bytes"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// emfileListener fails its first n accepts as a process out of file
// descriptors does, then accepts.
type emfileListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.n > 0
	l.n--
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Accept errors at the open-files limit are counted and retried, never
// logged one line each (net/http's "http: Accept error: ... too many open
// files; retrying in 5ms" went straight into loadgen's progress output).
func TestAcceptErrorsAreCountedNotLogged(t *testing.T) {
	var logged bytes.Buffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&logged)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })

	s, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t.Context(), s, &emfileListener{Listener: ln, n: 3})
	t.Cleanup(func() { r.Close() })

	resp, err := http.Get(r.URL + "/health")
	if err != nil {
		t.Fatalf("GET /health after failed accepts: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: %s", resp.Status)
	}
	got := r.AcceptErrors()
	if got.Count != 3 || got.OpenFiles != 3 || got.Last == nil || !strings.Contains(got.Last.Error(), "too many open files") {
		t.Errorf("AcceptErrors() = %+v, want 3 of 3 for the open-files limit, the last one saying so", got)
	}
	if strings.Contains(logged.String(), "Accept error") {
		t.Errorf("accept errors logged line by line:\n%s", logged.String())
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
