// Package hostile is an HTTP server for tests that misbehaves on purpose,
// one Mode per way a server can try to exhaust a client's memory or time:
// bodies, lines and streams without end, absurd numbers, headers that
// never finish. It answers every path the same way, except the model
// lists (OpenAI's /v1/models, TorchServe's /ping and /models), which are
// well-formed and name the one model Model, so that a client's checks
// before its first request pass.
//
// "Without end" is literal when Config.Limit is 0: the server writes until
// the client hangs up or the test ends. Tests that must also run against
// code that does not bound its reads (to show a regression test fails
// there) set a small Limit instead, after which the response ends
// properly.
package hostile

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Model is the one model the server lists.
const Model = "hostile"

// Mode is how the server misbehaves.
type Mode int

// The modes.
const (
	// EndlessBody answers Config.Status (default 500) with a body of
	// 'a's that never ends.
	EndlessBody Mode = iota
	// EndlessSSELine answers 200 text/event-stream with "data: " and then
	// bytes that never reach a newline.
	EndlessSSELine
	// EndlessSSEChunks answers 200 text/event-stream with OpenAI chat
	// chunks, each carrying one token of text, without end; with a Limit,
	// that many chunks, then usage and [DONE].
	EndlessSSEChunks
	// EndlessNDJSONLine answers 200 application/x-ndjson with one line
	// that never ends.
	EndlessNDJSONLine
	// EndlessNDJSONChunks answers 200 application/x-ndjson with
	// {"text": "x"} lines without end.
	EndlessNDJSONChunks
	// EndlessTextChunks answers 200 text/plain with a chunked body, one
	// flushed token per chunk, without end.
	EndlessTextChunks
	// EndlessVector answers a Prometheus API query with a success whose
	// vector result never ends.
	EndlessVector
	// SlowBody answers Config.Status (default 200) and sends one byte of
	// its body, a space, every Config.Interval (default 50ms): forever,
	// or, with a Limit, that many and then Config.Body.
	SlowBody
	// SlowlorisHeaders sends the status line and then one byte of a
	// header every Config.Interval (default 50ms), never finishing the
	// headers.
	SlowlorisHeaders
	// HugeUsage answers 200 text/event-stream with one text chunk and a
	// usage of 2^63-1 prompt and completion tokens, then [DONE].
	HugeUsage
)

var modeNames = map[Mode]string{
	EndlessBody: "endless body", EndlessSSELine: "endless SSE line", EndlessSSEChunks: "endless SSE chunks",
	EndlessNDJSONLine: "endless NDJSON line", EndlessNDJSONChunks: "endless NDJSON chunks",
	EndlessTextChunks: "endless text chunks", EndlessVector: "endless vector", SlowBody: "slow body",
	SlowlorisHeaders: "slowloris headers", HugeUsage: "huge usage",
}

func (m Mode) String() string {
	if s, ok := modeNames[m]; ok {
		return s
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Modes lists every mode.
func Modes() []Mode {
	ms := make([]Mode, 0, len(modeNames))
	for m := EndlessBody; m <= HugeUsage; m++ {
		ms = append(ms, m)
	}
	return ms
}

// Config says how the server misbehaves.
type Config struct {
	Mode Mode
	// Status is the HTTP status of EndlessBody (default 500) and SlowBody
	// (default 200).
	Status int
	// Limit ends the response properly after this many body bytes
	// (EndlessBody, the endless lines; EndlessVector: its result, rounded
	// down to whole 32 KiB blocks so that it stays valid JSON) or chunks
	// (the chunk modes); 0 means never.
	Limit int64
	// Interval is the pace of SlowBody and SlowlorisHeaders (default
	// 50ms).
	Interval time.Duration
	// Body ends SlowBody's answer after Limit spaces: a JSON answer, say,
	// that arrives slowly but whole.
	Body string
}

// Server is a running hostile server on 127.0.0.1.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:PORT.
	URL string

	cfg      Config
	srv      *httptest.Server
	done     chan struct{}
	written  atomic.Int64
	requests atomic.Int64

	mu     sync.Mutex
	hijack []net.Conn
}

// Start starts a server that misbehaves as cfg says; it stops when the
// test ends, ending whatever it is still writing.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Interval <= 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server. It is safe to call more than once.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.mu.Lock()
	for _, c := range s.hijack {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Written is how many bytes of response bodies (SlowlorisHeaders: of
// headers) the server has handed to its connections so far. Loopback
// sockets buffer a few MiB, so it is an upper bound of what clients read.
func (s *Server) Written() int64 { return s.written.Load() }

// Requests is how many requests other than model listings the server has
// answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasSuffix(p, "/v1/models"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model","owned_by":"hostile"}]}`, Model)
		return
	case p == "/ping":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"Healthy"}`)
		return
	case p == "/models":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"models":[{"modelName":%q}]}`, Model)
		return
	}
	s.requests.Add(1)
	switch s.cfg.Mode {
	case EndlessBody:
		w.WriteHeader(statusOr(s.cfg.Status, http.StatusInternalServerError))
		s.repeat(w, r, nil, []byte(strings.Repeat("a", 32<<10)), nil, false)
	case EndlessSSELine:
		w.Header().Set("Content-Type", "text/event-stream")
		s.repeat(w, r, []byte("data: "), []byte(strings.Repeat("a", 32<<10)), []byte("\n\n"), false)
	case EndlessNDJSONLine:
		w.Header().Set("Content-Type", "application/x-ndjson")
		s.repeat(w, r, []byte(`{"text": "`), []byte(strings.Repeat("a", 32<<10)), []byte("\"}\n"), false)
	case EndlessVector:
		w.Header().Set("Content-Type", "application/json")
		one := `{"metric":{"__name__":"tokenwatt_run_info","run_id":"r"},"value":[1700000000,"1"]},`
		s.repeat(w, r, []byte(`{"status":"success","data":{"resultType":"vector","result":[`),
			[]byte(strings.Repeat(one, 32<<10/len(one))),
			[]byte(`{"metric":{},"value":[1700000000,"1"]}]}}`), true)
	case EndlessSSEChunks:
		w.Header().Set("Content-Type", "text/event-stream")
		s.chunks(w, r, []byte(`data: {"choices":[{"index":0,"delta":{"content":"x"}}]}`+"\n\n"),
			[]byte(`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":`+"%d"+`}}`+"\n\ndata: [DONE]\n\n"))
	case EndlessNDJSONChunks:
		w.Header().Set("Content-Type", "application/x-ndjson")
		s.chunks(w, r, []byte(`{"text": "x"}`+"\n"), []byte(`{"usage": {"prompt_tokens": 1, "completion_tokens": %d}}`+"\n"))
	case EndlessTextChunks:
		w.Header().Set("Content-Type", "text/plain")
		s.chunks(w, r, []byte("x"), nil)
	case SlowBody:
		w.WriteHeader(statusOr(s.cfg.Status, http.StatusOK))
		s.trickle(w, r)
	case SlowlorisHeaders:
		s.slowloris(w)
	case HugeUsage:
		w.Header().Set("Content-Type", "text/event-stream")
		body := `data: {"choices":[{"index":0,"delta":{"content":"x"}}]}` + "\n\n" +
			`data: {"choices":[],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":9223372036854775807}}` + "\n\n" +
			"data: [DONE]\n\n"
		n, _ := w.Write([]byte(body))
		s.written.Add(int64(n))
	default:
		http.Error(w, "unknown mode", http.StatusInternalServerError)
	}
}

func statusOr(status, def int) int {
	if status == 0 {
		return def
	}
	return status
}

// alive reports whether the request should go on: the client is still
// there and the server is not closing.
func (s *Server) alive(r *http.Request) bool {
	select {
	case <-s.done:
		return false
	case <-r.Context().Done():
		return false
	default:
		return true
	}
}

// write writes b and counts it; false when the client is gone.
func (s *Server) write(w http.ResponseWriter, b []byte) bool {
	n, err := w.Write(b)
	s.written.Add(int64(n))
	return err == nil
}

// repeat writes head, then block over and over (up to Limit bytes in
// all, when set; only whole blocks with whole set), then tail.
func (s *Server) repeat(w http.ResponseWriter, r *http.Request, head, block, tail []byte, whole bool) {
	if !s.write(w, head) {
		return
	}
	sent := int64(len(head))
	for s.alive(r) {
		b, last := block, false
		if left := s.cfg.Limit - sent; s.cfg.Limit > 0 && left <= int64(len(b)) {
			last = true
			switch {
			case left == int64(len(b)):
			case whole || left <= 0:
				b = nil
			default:
				b = b[:left]
			}
		}
		if !s.write(w, b) {
			return
		}
		sent += int64(len(b))
		if last {
			s.write(w, tail)
			return
		}
	}
}

// chunks writes chunk, flushed, over and over (Limit times, when set,
// then end formatted with the count).
func (s *Server) chunks(w http.ResponseWriter, r *http.Request, chunk, end []byte) {
	f := http.NewResponseController(w)
	for n := int64(0); s.alive(r); n++ {
		if s.cfg.Limit > 0 && n == s.cfg.Limit {
			if end != nil {
				s.write(w, bytes.ReplaceAll(end, []byte("%d"), fmt.Appendf(nil, "%d", n)))
			}
			return
		}
		if !s.write(w, chunk) || f.Flush() != nil {
			return
		}
	}
}

// trickle sends one byte per interval until the client or server goes.
func (s *Server) trickle(w http.ResponseWriter, r *http.Request) {
	f := http.NewResponseController(w)
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for n := int64(0); ; n++ {
		if s.cfg.Limit > 0 && n == s.cfg.Limit {
			s.write(w, []byte(s.cfg.Body))
			return
		}
		if !s.write(w, []byte{' '}) || f.Flush() != nil {
			return
		}
		select {
		case <-tick.C:
		case <-s.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// slowloris takes the connection over and sends a status line, then one
// header byte per interval, never the blank line that ends the headers.
func (s *Server) slowloris(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.hijack = append(s.hijack, conn)
	s.mu.Unlock()
	defer conn.Close()
	if _, err := conn.Write([]byte("HTTP/1.1 200 OK\r\nX-Slow: ")); err != nil {
		return
	}
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.done:
			return
		}
		n, err := conn.Write([]byte{'a'})
		s.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}
