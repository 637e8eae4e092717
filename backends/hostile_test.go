package backends

import (
	"context"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/hostile"
)

// countingClient is the load client with every byte read from its
// connections counted: what a server made the client take in.
func countingClient(read *atomic.Int64) *http.Client {
	c := newLoadClient()
	tr := c.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, read: read}, nil
	}
	return c
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// hostileDo sends one request to a hostile server with the given backend
// and returns what was measured and how many bytes the client read.
func hostileDo(t *testing.T, cfg hostile.Config, backend string, stream bool, timeout time.Duration) (*Response, int64) {
	t.Helper()
	srv := hostile.Start(t, cfg)
	var read atomic.Int64
	client := countingClient(&read)
	t.Cleanup(client.CloseIdleConnections)
	var b Backend
	var err error
	switch backend {
	case "pytorch":
		b, err = NewPyTorch(PyTorchConfig{Endpoint: srv.URL, HTTPClient: client})
	default:
		b, err = NewOpenAI(OpenAIConfig{Endpoint: srv.URL, VLLM: true, HTTPClient: client})
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	resp := new(Response)
	resp.Reset()
	b.Do(ctx, &Request{Model: hostile.Model, Prompt: "p", MaxTokens: 16, Stream: stream}, resp)
	return resp, read.Load()
}

// A line that never ends costs a request in flight at most about
// MaxStreamLine (1 MiB) of reading and memory, and ends it as a
// stream_error that names the limit (issue 16, defect 9: it was 16 MiB
// read and 27-34 MiB held per request).
func TestEndlessLineIsBounded(t *testing.T) {
	if MaxStreamLine > 1<<20 {
		t.Errorf("MaxStreamLine = %d, documented as 1 MiB", MaxStreamLine)
	}
	for _, tc := range []struct {
		backend string
		mode    hostile.Mode
		stream  bool
	}{
		{"vllm", hostile.EndlessSSELine, true},
		{"pytorch", hostile.EndlessNDJSONLine, true},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			resp, read := hostileDo(t, hostile.Config{Mode: tc.mode}, tc.backend, tc.stream, 30*time.Second)
			if resp.Outcome != OutcomeStreamError || !strings.Contains(resp.Error, "longer than 1 MiB") {
				t.Errorf("outcome %s, error %q; want stream_error naming the 1 MiB limit", resp.Outcome, resp.Error)
			}
			// The limit, plus the transport's and the reader's buffers.
			if limit := int64(1<<20 + 256<<10); read > limit {
				t.Errorf("client read %d bytes of an endless line, want at most %d", read, limit)
			}
		})
	}
}

// An SSE event assembled from many short data lines is bounded the same.
func TestEndlessEventIsBounded(t *testing.T) {
	var lines strings.Builder
	for lines.Len() <= MaxStreamLine+64<<10 {
		lines.WriteString("data: " + strings.Repeat("x", 1000) + "\n")
	}
	r := newSSEReader(strings.NewReader(lines.String()+"\n"), sseBufferSize)
	if _, _, err := r.next(); err != errEventTooLong {
		t.Fatalf("event of %d bytes: %v, want errEventTooLong", lines.Len(), err)
	}
	if c := cap(r.data); c > 2*MaxStreamLine {
		t.Errorf("event buffer grew to %d bytes", c)
	}
}

// A whole (non-streamed) PyTorch answer is one NDJSON line, which may be
// far longer than a streamed one: it was cut at 16 KiB.
func TestPyTorchWholeAnswerLongLine(t *testing.T) {
	text := strings.Repeat("word ", 40000) // 200 kB
	c := torchServer(t, http.StatusOK, `{"models":[{"modelName":"m"}]}`, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"text": "` + text + `", "usage": {"prompt_tokens": 1, "completion_tokens": 40000}}`))
	})
	resp := new(Response)
	resp.Reset()
	c.Do(t.Context(), &Request{Model: "m", Prompt: "p"}, resp)
	if resp.Outcome != OutcomeOK || resp.OutputTokens != 40000 {
		t.Fatalf("outcome %s (%s), %d tokens", resp.Outcome, resp.Error, resp.OutputTokens)
	}
}

// A stream of more than MaxITL+1 text chunks keeps MaxITL gaps one by one
// and the rest in a GapSketch: the count and sum of all the gaps stay
// exact (issue 16, defect 8: an endless stream grew the slice and the
// record line without limit).
func TestITLCapped(t *testing.T) {
	const extra = 700
	for _, tc := range []struct {
		backend string
		mode    hostile.Mode
	}{
		{"vllm", hostile.EndlessSSEChunks},
		{"pytorch", hostile.EndlessNDJSONChunks},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			chunks := MaxITL + 1 + extra
			resp, _ := hostileDo(t, hostile.Config{Mode: tc.mode, Limit: int64(chunks)}, tc.backend, true, time.Minute)
			if resp.Outcome != OutcomeOK || resp.TextChunks != chunks || resp.OutputTokens != chunks {
				t.Fatalf("outcome %s (%s), %d text chunks, %d tokens; want ok, %d", resp.Outcome, resp.Error,
					resp.TextChunks, resp.OutputTokens, chunks)
			}
			checkGaps(t, resp, chunks-1)
		})
	}
}

// Plain-text chunks that never end: the gaps stay bounded until the
// deadline ends the request.
func TestEndlessTextChunksBounded(t *testing.T) {
	resp, _ := hostileDo(t, hostile.Config{Mode: hostile.EndlessTextChunks}, "pytorch", true, 2*time.Second)
	if resp.Outcome != OutcomeTimeout {
		t.Fatalf("outcome %s (%s), want timeout", resp.Outcome, resp.Error)
	}
	t.Logf("%d text chunks in 2 s", resp.TextChunks)
	checkGaps(t, resp, resp.TextChunks-1)
}

// checkGaps checks that resp holds want gaps in all, at most MaxITL of
// them one by one, and that they add up to t_last - t_first.
func checkGaps(t *testing.T, resp *Response, want int) {
	t.Helper()
	if len(resp.ITL) > MaxITL || cap(resp.ITL) > 2*MaxITL {
		t.Errorf("ITL slice holds %d gaps (capacity %d), want at most %d", len(resp.ITL), cap(resp.ITL), MaxITL)
	}
	if got := len(resp.ITL) + resp.MoreITL.Count(); got != want {
		t.Fatalf("%d + %d gaps, want %d", len(resp.ITL), resp.MoreITL.Count(), want)
	}
	if want > MaxITL && len(resp.ITL) != MaxITL {
		t.Errorf("%d gaps one by one, want the first %d", len(resp.ITL), MaxITL)
	}
	var sum float64
	for _, d := range resp.ITL {
		sum += d.Seconds()
	}
	if resp.MoreITL != nil {
		sum += resp.MoreITL.Sketch().GetSum()
		n, mean, _ := resp.MoreITL.Moments()
		if math.Abs(n*mean-resp.MoreITL.Sketch().GetSum()) > 1e-6 {
			t.Errorf("moments: n %v × mean %v ≠ sum %v", n, mean, resp.MoreITL.Sketch().GetSum())
		}
	}
	if span := resp.Last.Sub(resp.First).Seconds(); math.Abs(sum-span) > 1e-6 {
		t.Errorf("gaps add up to %v s, t_last - t_first is %v s", sum, span)
	}
}

// The rest of the hostile servers: an error body without end, headers
// that never finish, absurd usage. Each request ends, with its outcome,
// within its deadline and bounded reads.
func TestHostileServers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     hostile.Config
		backend string
		outcome Outcome
	}{
		{"endless 500 body", hostile.Config{Mode: hostile.EndlessBody}, "vllm", OutcomeHTTP5xx},
		{"endless 400 body, pytorch", hostile.Config{Mode: hostile.EndlessBody, Status: 400}, "pytorch", OutcomeHTTP4xx},
		{"slowloris headers", hostile.Config{Mode: hostile.SlowlorisHeaders}, "vllm", OutcomeTimeout},
		{"slow body", hostile.Config{Mode: hostile.SlowBody}, "vllm", OutcomeTimeout},
		{"huge usage", hostile.Config{Mode: hostile.HugeUsage}, "vllm", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, read := hostileDo(t, tc.cfg, tc.backend, true, time.Second)
			if tc.outcome != "" && resp.Outcome != tc.outcome {
				t.Errorf("outcome %s (%s), want %s", resp.Outcome, resp.Error, tc.outcome)
			}
			if resp.Outcome == "" || (resp.Outcome != OutcomeOK && resp.Error == "") {
				t.Errorf("outcome %q, error %q", resp.Outcome, resp.Error)
			}
			if len(resp.Error) > 2*maxMessage {
				t.Errorf("error message of %d bytes", len(resp.Error))
			}
			if read > 1<<20 {
				t.Errorf("client read %d bytes", read)
			}
			// Generous: the deadline is 1 s; only a read that ignores it
			// would take this long.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v with a 1 s deadline", d)
			}
		})
	}
}
