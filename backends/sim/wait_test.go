package sim

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestTimersWakeEverySleeperNeverEarly: many sleepers on one timers,
// deadlines in random order, some canceled while they wait: each wait
// that reports true ends at or after its deadline, each canceled one
// reports false, none is left in the heap, and the timer goroutine exits
// once idle.
func TestTimersWakeEverySleeperNeverEarly(t *testing.T) {
	var tm timers
	const n = 400
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		deadline := start.Add(time.Duration(rng.Int64N(int64(40 * time.Millisecond))))
		cancelAt := time.Duration(-1)
		if i%4 == 0 {
			cancelAt = time.Duration(rng.Int64N(int64(40 * time.Millisecond)))
		}
		wg.Go(func() {
			clk := tm.newClock()
			ctx := context.Background()
			if cancelAt >= 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				defer cancel()
				time.AfterFunc(cancelAt, cancel)
			}
			// Several waits on one clock, as a stream makes.
			for k := range 3 {
				due := deadline.Add(time.Duration(k) * 5 * time.Millisecond)
				ok := clk.sleepUntil(ctx, due)
				switch {
				case ok && time.Now().Before(due):
					errs <- "a wait ended before its deadline"
				case !ok && ctx.Err() == nil:
					errs <- "a wait reported false without its context ending"
				case !ok:
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	tm.mu.Lock()
	left := len(tm.heap)
	tm.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d sleepers left in the heap", left)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		tm.mu.Lock()
		running := tm.running
		tm.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer goroutine still runs %v after the last wait", 30*time.Second)
		}
	}
	// It starts again for the next wait.
	if !tm.newClock().sleepUntil(context.Background(), time.Now().Add(time.Millisecond)) {
		t.Fatal("a wait after the timer goroutine exited reported false")
	}
}

// timerfds counts this process's timerfds.
func timerfds(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && link == "anon_inode:[timerfd]" {
			n++
		}
	}
	return n
}

// TestStreamsShareOneTimer: streams waiting for their next token hold no
// file descriptor each (a timerfd per stream took half of a 20,000
// open-files limit at 10,000 streams, beside their connections).
func TestStreamsShareOneTimer(t *testing.T) {
	before := timerfds(t)
	srv := startSim(t, Config{TTFT: time.Millisecond, ITL: time.Hour})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
	t.Cleanup(client.CloseIdleConnections)
	const streams = 50
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first := make(chan error, streams)
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			resp, err := client.Do(newPost(ctx, t, srv.URL+"/v1/chat/completions", chatBody(map[string]any{"stream": true, "max_tokens": 2, "ignore_eos": true})))
			if err != nil {
				first <- err
				return
			}
			defer resp.Body.Close()
			events, err := readEvents(bufio.NewReader(resp.Body), 1) // the first token's; the second is an hour away
			if err == nil && len(events) != 1 {
				err = fmt.Errorf("HTTP %d: the stream ended without an event", resp.StatusCode)
			}
			first <- err
			<-ctx.Done()
		})
	}
	for range streams {
		if err := <-first; err != nil {
			t.Fatal(err)
		}
	}
	if got := timerfds(t) - before; got > 1 {
		t.Errorf("%d streams waiting for a token hold %d more timerfds, want at most 1 (the server's)", streams, got)
	}
	cancel()
	wg.Wait()
}
