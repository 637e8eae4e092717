package hrtimer

import (
	"os"
	"sync"
	"testing"
	"time"
)

// count returns the number of entries in dir, a /proc listing.
func count(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestWaitsHoldNoThread checks that a waiting goroutine is parked in the
// netpoller: were its read blocking, each waiter would hold an OS thread.
func TestWaitsHoldNoThread(t *testing.T) {
	const waiters = 64
	before := count(t, "/proc/self/task")
	var wg sync.WaitGroup
	deadline := time.Now().Add(300 * time.Millisecond)
	for range waiters {
		tm := newTimer(t)
		wg.Go(func() { tm.SleepUntil(t.Context(), deadline) })
	}
	time.Sleep(150 * time.Millisecond)
	during := count(t, "/proc/self/task")
	wg.Wait()
	if during-before > waiters/4 {
		t.Errorf("threads went from %d to %d with %d waiters", before, during, waiters)
	}
}

func TestCloseReleasesDescriptor(t *testing.T) {
	before := count(t, "/proc/self/fd")
	timers := make([]*Timer, 100)
	for i := range timers {
		tm, err := New()
		if err != nil {
			t.Fatal(err)
		}
		tm.SleepUntil(t.Context(), time.Now().Add(100*time.Microsecond))
		timers[i] = tm
	}
	if during := count(t, "/proc/self/fd"); during < before+len(timers) {
		t.Fatalf("%d descriptors open with %d timers, %d before", during, len(timers), before)
	}
	for _, tm := range timers {
		if err := tm.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := count(t, "/proc/self/fd"); after != before {
		t.Errorf("%d descriptors open after Close, %d before", after, before)
	}
}
