package backends

import (
	"context"
	"io"
	"testing"
	"time"
)

// streamBudget is how much of a repeated pattern FuzzStreamBounds feeds
// the readers: well past MaxStreamLine, and past MaxITL+1 short chunks.
const streamBudget = 3 << 20

// cycleReader yields its pattern over and over, n bytes in all: a server
// that sends the same thing without end, cut where the test must stop.
type cycleReader struct {
	pattern []byte
	off     int
	n       int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	if r.n <= 0 || len(r.pattern) == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), r.n)]
	k := 0
	for k < len(p) {
		c := copy(p[k:], r.pattern[r.off:])
		k += c
		r.off = (r.off + c) % len(r.pattern)
	}
	r.n -= k
	return k, nil
}

// FuzzStreamBounds feeds the SSE and NDJSON readers an arbitrary pattern
// repeated for streamBudget bytes (issue 16: a hostile server's endless
// lines, events and chunks) and checks that what a request holds stays
// bounded whatever the pattern: the line and event buffers by
// MaxStreamLine, the gaps kept one by one by MaxITL (with every gap still
// counted), the error message by a few hundred bytes. The seeds run with
// the tests; `go test -fuzz FuzzStreamBounds ./backends` runs it longer.
func FuzzStreamBounds(f *testing.F) {
	for _, seed := range []string{
		`data: {"choices":[{"delta":{"content":"x"}}]}` + "\n\n",
		`{"text": "x"}` + "\n",
		"a",
		"data: a\n",
		": keep-alive\n",
		"event: error\ndata: {\"error\":\"x\"}\n\n",
		"data: {\"choices\":[{\"text\":\"",
		"\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, pattern []byte) {
		if len(pattern) > 4096 {
			return
		}
		sr := newSSEReader(&cycleReader{pattern: pattern, n: streamBudget}, sseBufferSize)
		var resp Response
		resp.Reset()
		resp.Send = time.Now()
		readStream(context.Background(), sr, &resp, true, nil)
		checkBounded(t, "SSE", &resp)
		if c := max(cap(sr.long), cap(sr.data)); c > 2*MaxStreamLine {
			t.Fatalf("SSE reader holds a %d-byte buffer", c)
		}

		resp.Reset()
		resp.Send = time.Now()
		readNDJSON(context.Background(), &cycleReader{pattern: pattern, n: streamBudget}, &resp, true, MaxStreamLine)
		checkBounded(t, "NDJSON", &resp)
	})
}

func checkBounded(t *testing.T, what string, resp *Response) {
	t.Helper()
	if resp.Outcome == "" || resp.Done.IsZero() {
		t.Fatalf("%s: unfinished response: %+v", what, resp)
	}
	if len(resp.ITL) > MaxITL {
		t.Fatalf("%s: %d gaps kept one by one, want at most %d", what, len(resp.ITL), MaxITL)
	}
	if got, want := len(resp.ITL)+resp.MoreITL.Count(), max(resp.TextChunks-1, 0); got != want {
		t.Fatalf("%s: %d gaps counted for %d text chunks", what, got, resp.TextChunks)
	}
	if len(resp.Error) > maxMessage+256 {
		t.Fatalf("%s: error message of %d bytes", what, len(resp.Error))
	}
}
