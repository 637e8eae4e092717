package loadgen

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestParseSchedstatOfThisProcess parses the kernel's own
// /proc/self/schedstat and a thread's.
func TestParseSchedstatOfThisProcess(t *testing.T) {
	for _, path := range []string{"/proc/self/schedstat", "/proc/thread-self/schedstat"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("no schedstat: %v", err)
		}
		st, err := parseSchedstat(b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if st.run == 0 && st.wait == 0 && st.runs == 0 {
			t.Skipf("%s is %q: the kernel keeps no scheduler statistics", path, b)
		}
		if st.run <= 0 || st.runs == 0 {
			t.Errorf("%s %q: %+v, want time on a CPU and runs", path, b, st)
		}
	}
	for _, bad := range []string{"", "1 2", "1 2 3 4", "1 x 3"} {
		if _, err := parseSchedstat([]byte(bad)); err == nil {
			t.Errorf("parseSchedstat(%q) succeeded", bad)
		}
	}
}

// TestRunqueueReaderSumsThreads: /proc/self/schedstat is the main
// thread's alone; the reader counts every thread's, here also those of
// a thread other than the main one that this test keeps waking up.
func TestRunqueueReaderSumsThreads(t *testing.T) {
	read := newRunqueueReader()
	if read == nil {
		t.Skip("the kernel keeps no scheduler statistics")
	}
	done := make(chan struct{})
	defer close(done)
	threadRuns := make(chan uint64)
	var start func()
	start = func() {
		runtime.LockOSThread() // held until done: the thread is this goroutine's
		if syscall.Gettid() == os.Getpid() {
			go start() // the main thread: keep it, and try another
			<-done
			return
		}
		for range 50 {
			time.Sleep(time.Millisecond) // each wake-up is a run
		}
		b, err := os.ReadFile("/proc/thread-self/schedstat")
		st, perr := parseSchedstat(b)
		if err != nil || perr != nil {
			t.Error(err, perr)
		}
		threadRuns <- st.runs
		<-done
	}
	go start()
	thread := <-threadRuns

	b, err := os.ReadFile("/proc/self/schedstat")
	if err != nil {
		t.Fatal(err)
	}
	leader, err := parseSchedstat(b)
	if err != nil {
		t.Fatal(err)
	}
	_, runs, ok := read()
	if !ok {
		t.Fatal("read failed")
	}
	// The first read has every thread's runs since it started.
	if runs < leader.runs+thread {
		t.Errorf("threads' runs %d, want at least the main thread's %d plus the other thread's %d", runs, leader.runs, thread)
	}
	_, again, ok := read()
	if !ok || again < runs {
		t.Errorf("second read: runs %d (ok %v), want at least %d", again, ok, runs)
	}
}

// TestRunqueueReaderThreadsComeAndGo: a thread that exits takes its
// counts with it, a new thread brings all of its own, and a thread id
// reused with smaller counts is a new thread: the totals only grow, by
// what each thread gained.
func TestRunqueueReaderThreadsComeAndGo(t *testing.T) {
	dir := t.TempDir()
	set := func(tid, stat string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, tid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tid, "schedstat"), []byte(stat+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &runqueueReader{dir: dir}
	want := func(wait time.Duration, runs uint64) {
		t.Helper()
		w, n, ok := r.read()
		if !ok || w != wait || n != runs {
			t.Fatalf("read = %v, %d, %v; want %v, %d", w, n, ok, wait, runs)
		}
	}
	set("100", "5000 1000 10")
	set("101", "7000 2000 20")
	want(3000, 30)
	set("100", "9000 1500 15") // +500, +5
	if err := os.RemoveAll(filepath.Join(dir, "101")); err != nil {
		t.Fatal(err)
	}
	set("102", "100 40 4") // new: all of it
	want(3540, 39)
	set("100", "10 5 1") // reused id: a new thread
	want(3545, 40)

	// "0 0 0" everywhere: the kernel keeps no statistics.
	zero := &runqueueReader{dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(zero.dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zero.dir, "1", "schedstat"), []byte("0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := zero.read(); ok {
		t.Error("all-zero schedstat read as known")
	}
}
