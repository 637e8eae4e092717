package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// RecordsFileName is the records file inside a run's output directory.
const RecordsFileName = "records.jsonl"

// recordsFlushEvery bounds what a crash can lose: records are buffered for
// throughput but never for longer than this.
const recordsFlushEvery = time.Second

// RecordsFile appends records as JSON lines to a file as they complete.
// It is a Sink. Lines from several runs can share a file: each carries its
// run_id.
type RecordsFile struct {
	mu     sync.Mutex
	f      *os.File
	w      *bufio.Writer
	enc    *json.Encoder
	err    error // first write error, reported by Close
	ticker *time.Ticker
	done   chan struct{}
}

// OpenRecordsFile opens (creating it and its directory if needed) path for
// appending and starts the periodic flush.
func OpenRecordsFile(path string) (*RecordsFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open records file: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	rf := &RecordsFile{f: f, w: w, enc: json.NewEncoder(w), ticker: time.NewTicker(recordsFlushEvery), done: make(chan struct{})}
	go rf.flushLoop()
	return rf, nil
}

func (rf *RecordsFile) flushLoop() {
	for {
		select {
		case <-rf.ticker.C:
			rf.mu.Lock()
			if rf.err == nil {
				rf.err = rf.w.Flush()
			}
			rf.mu.Unlock()
		case <-rf.done:
			return
		}
	}
}

// Observe appends rec as one JSON line.
func (rf *RecordsFile) Observe(rec *Record) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.err == nil {
		rf.err = rf.enc.Encode(rec)
	}
}

// Close flushes what is buffered, syncs and closes the file. It reports
// the first error any write met.
func (rf *RecordsFile) Close() error {
	rf.ticker.Stop()
	close(rf.done)
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if rf.err == nil {
		rf.err = rf.w.Flush()
	}
	if rf.err == nil {
		rf.err = rf.f.Sync()
	}
	if err := rf.f.Close(); rf.err == nil {
		rf.err = err
	}
	if rf.err != nil {
		return fmt.Errorf("write %s: %w", rf.f.Name(), rf.err)
	}
	return nil
}
