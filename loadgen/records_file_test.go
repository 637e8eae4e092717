package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestRecordsFileAfterACrash: a records file whose last line a killed run
// cut short gets a newline before the next record, so that record is a
// whole line of its own; the cut line stays as it was.
func TestRecordsFileAfterACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), RecordsFileName)
	killed := `{"run_id":"killed","seq":0}` + "\n" + `{"run_id":"killed","seq":1,"outc`
	if err := os.WriteFile(path, []byte(killed), 0o644); err != nil {
		t.Fatal(err)
	}
	rf, err := OpenRecordsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !rf.Repaired() {
		t.Error("Repaired() = false for a file cut mid-line")
	}
	rf.Observe(&Record{RunID: "next", Seq: 0})
	rf.Observe(&Record{RunID: "next", Seq: 1})
	if err := rf.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), killed+"\n") {
		t.Fatalf("the killed run's lines changed:\n%s", raw)
	}
	var next []int64
	for sc := bufio.NewScanner(strings.NewReader(string(raw))); sc.Scan(); {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.RunID == "next" {
			next = append(next, r.Seq)
		}
	}
	if len(next) != 2 {
		t.Fatalf("%d of the next run's 2 records parse, want both:\n%s", len(next), raw)
	}
}

// TestRecordsFileReportsAWriteErrorAtOnce: on a full disk (/dev/full)
// the first write error goes to OnError at once, from the flush within
// a second or so, not at Close, and only once; Close returns it too.
func TestRecordsFileReportsAWriteErrorAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), RecordsFileName)
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	rf, err := OpenRecordsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 10)
	var calls atomic.Int32
	rf.OnError(func(err error) {
		calls.Add(1)
		got <- err
	})
	rf.Observe(&Record{RunID: "r", Seq: 0})
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), path) {
			t.Errorf("OnError(%v), want ENOSPC naming %s", err, path)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no write error reported while the run goes on")
	}
	rf.Observe(&Record{RunID: "r", Seq: 1}) // dropped: the file has failed
	if err := rf.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Close() = %v, want the write error", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("OnError called %d times, want once", n)
	}
}
