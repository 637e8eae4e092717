package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// runqueueReader sums, over this process's threads, the time they spent
// waiting on a kernel run queue and the number of times they were given
// a CPU: the second and third fields of /proc/<pid>/task/<tid>/schedstat.
// /proc/self/schedstat alone is the main thread's (the kernel reports
// the task the directory names, not its thread group), and a thread's
// counts vanish when it exits, so the reader keeps each thread's last
// values and accumulates what each gained: the totals it returns only
// grow.
type runqueueReader struct {
	dir  string // /proc/self/task
	last map[string]schedstat
	wait time.Duration
	runs uint64
}

// schedstat is one thread's /proc/.../schedstat.
type schedstat struct {
	run, wait time.Duration // on a CPU; waiting on a run queue
	runs      uint64        // times given a CPU
}

// newRunqueueReader is nil where the kernel keeps no schedstat (it is
// missing, or all zeros: scheduler statistics off).
func newRunqueueReader() func() (time.Duration, uint64, bool) {
	r := &runqueueReader{dir: "/proc/self/task"}
	if _, _, ok := r.read(); !ok {
		return nil
	}
	return r.read
}

// read is the total run-queue wait and runs of the process's threads
// since the first read (which returns what they had then).
func (r *runqueueReader) read() (time.Duration, uint64, bool) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return 0, 0, false
	}
	next := make(map[string]schedstat, len(ents))
	var ran, wait time.Duration
	var runs uint64
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(r.dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread exited
		}
		st, err := parseSchedstat(b)
		if err != nil {
			return 0, 0, false
		}
		ran += st.run
		next[e.Name()] = st
		prev, seen := r.last[e.Name()]
		if !seen || st.wait < prev.wait || st.runs < prev.runs {
			prev = schedstat{} // new thread (or a reused thread id)
		}
		wait += st.wait - prev.wait
		runs += st.runs - prev.runs
	}
	if ran == 0 {
		return 0, 0, false // "0 0 0": the kernel keeps no statistics
	}
	r.last, r.wait, r.runs = next, r.wait+wait, r.runs+runs
	return r.wait, r.runs, true
}

// parseSchedstat parses "RUN_NS WAIT_NS RUNS\n".
func parseSchedstat(b []byte) (schedstat, error) {
	f := bytes.Fields(b)
	if len(f) != 3 {
		return schedstat{}, fmt.Errorf("schedstat: %q: want three fields", b)
	}
	var n [3]uint64
	for i := range n {
		v, err := strconv.ParseUint(string(f[i]), 10, 64)
		if err != nil {
			return schedstat{}, fmt.Errorf("schedstat: %w", err)
		}
		n[i] = v
	}
	return schedstat{run: time.Duration(n[0]), wait: time.Duration(n[1]), runs: n[2]}, nil
}
