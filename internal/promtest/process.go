// Package promtest starts real Prometheus and VictoriaMetrics processes for
// tests and queries them through the Prometheus HTTP API client.
//
// Each process belongs to one test: its own data directory, config and
// free loopback port, killed in t.Cleanup, its log printed when the test
// fails. The binaries come from the Debian packages prometheus and
// victoria-metrics; without them a test is skipped, or fails when the
// environment variable CI is set, so that CI cannot pass by skipping.
//
// It must not depend on any tokenwatt package: it tests them.
package promtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a process may take to answer its readiness
// endpoint; Prometheus replays an empty WAL and is ready in about a second
// on a 2-core machine.
const startTimeout = 30 * time.Second

// binary returns the path of name on PATH. A missing binary skips the test
// with a hint, or fails it when CI is set.
func binary(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH: install the Debian package %s (.ci/run does)", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// freeAddr returns a loopback address that was free a moment ago. Another
// process may take it before ours binds; start retries when that happens.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// logBuffer collects a process's stdout and stderr; the process writes
// from its own goroutines while the test may read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a started server: its address and its log.
type process struct {
	addr string
	log  *logBuffer
}

// start runs the command that args(addr) builds on a free loopback port and
// waits until GET readyPath answers 200. If the process exits first because
// the port was taken in the meantime, it tries again on another port.
func start(t testing.TB, name, bin string, args func(addr string) []string, readyPath string) *process {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := freeAddr(t)
		p := &process{addr: addr, log: &logBuffer{}}
		cmd := exec.Command(bin, args(addr)...)
		cmd.Stdout = p.log
		cmd.Stderr = p.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		var waitErr error
		exited := make(chan struct{})
		go func() { waitErr = cmd.Wait(); close(exited) }()
		err := waitReady(addr, readyPath, exited, &waitErr)
		if err == nil {
			// Cleanups run last-registered first: kill, then print the
			// complete log if the test failed.
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("%s log (%s):\n%s", name, addr, p.log.String())
				}
			})
			t.Cleanup(func() {
				// Kill fails only when the process has already exited,
				// which the log shows.
				_ = cmd.Process.Kill()
				<-exited
			})
			return p
		}
		_ = cmd.Process.Kill()
		<-exited
		lastErr = fmt.Errorf("%w\n%s log:\n%s", err, name, p.log.String())
		if !strings.Contains(p.log.String(), "address already in use") {
			break
		}
	}
	t.Fatalf("start %s: %v", name, lastErr)
	return nil
}

var errExited = errors.New("exited before it was ready")

// waitReady polls http://addr+path until it answers 200, the process
// exits (exited closes, and *waitErr says how), or startTimeout passes.
func waitReady(addr, path string, exited <-chan struct{}, waitErr *error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	url := "http://" + addr + path
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%w: %v", errExited, *waitErr)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", startTimeout, last)
}
