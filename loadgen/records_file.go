package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/appendfile"
)

// RecordsFileName is the records file inside a run's output directory.
const RecordsFileName = "records.jsonl"

// recordsFlushEvery bounds what a crash can lose: records are buffered for
// throughput but never for longer than this.
const recordsFlushEvery = time.Second

// RecordsFile appends records as JSON lines to a file as they complete.
// It is a Sink. Lines from several runs can share a file: each carries its
// run_id. After the first write error it writes nothing more: that error
// goes to the OnError function at once, and Close returns it.
type RecordsFile struct {
	mu       sync.Mutex
	f        *os.File
	w        *bufio.Writer
	enc      *json.Encoder
	err      error // first write error, reported by Close
	onError  func(error)
	repaired bool
	ticker   *time.Ticker
	done     chan struct{}
}

// OpenRecordsFile opens (creating it and its directory if needed) path for
// appending and starts the periodic flush. A file whose last line was cut
// short (a killed run) gets a newline first, so the first record appended
// is a line of its own (Repaired reports it).
func OpenRecordsFile(path string) (*RecordsFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	f, repaired, err := appendfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open records file: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	rf := &RecordsFile{f: f, w: w, enc: json.NewEncoder(w), repaired: repaired,
		ticker: time.NewTicker(recordsFlushEvery), done: make(chan struct{})}
	go rf.flushLoop()
	return rf, nil
}

// Repaired reports whether the file ended mid-line when it was opened
// (the last line of a run that was killed): a newline was added before
// the first record.
func (rf *RecordsFile) Repaired() bool { return rf.repaired }

// OnError makes f be called once, with the first write error, from the
// goroutine that met it (the sink's caller, or the flush every second),
// as soon as it happens; f must not call the RecordsFile.
func (rf *RecordsFile) OnError(f func(error)) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	rf.onError = f
}

// fail records err, the result of a write, and returns the function to
// call outside the lock when it is the first error.
func (rf *RecordsFile) fail(err error) func(error) {
	if err == nil || rf.err != nil {
		return nil
	}
	rf.err = err
	return rf.onError
}

// wrapErr names the file in err unless err already does.
func (rf *RecordsFile) wrapErr(err error) error {
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return err
	}
	return fmt.Errorf("write %s: %w", rf.f.Name(), err)
}

func (rf *RecordsFile) flushLoop() {
	for {
		select {
		case <-rf.ticker.C:
			rf.mu.Lock()
			var notify func(error)
			if rf.err == nil {
				notify = rf.fail(rf.w.Flush())
			}
			err := rf.err
			rf.mu.Unlock()
			if notify != nil {
				notify(rf.wrapErr(err))
			}
		case <-rf.done:
			return
		}
	}
}

// Observe appends rec as one JSON line.
func (rf *RecordsFile) Observe(rec *Record) {
	rf.mu.Lock()
	var notify func(error)
	if rf.err == nil {
		notify = rf.fail(rf.enc.Encode(rec))
	}
	err := rf.err
	rf.mu.Unlock()
	if notify != nil {
		notify(rf.wrapErr(err))
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
		return rf.wrapErr(rf.err)
	}
	return nil
}
