package sim

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawStream posts body to path and returns the whole streamed body, and
// the wall-clock instants before the request and after its body's end.
func rawStream(t *testing.T, url string, body any) (raw []byte, before, after time.Time) {
	t.Helper()
	before = time.Now()
	resp, err := http.DefaultClient.Do(newPost(t.Context(), t, url, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw, before, time.Now()
}

var stampLine = regexp.MustCompile(`^: tokenwatt-sent (-?\d+) (-?\d+)$`)

func TestStampChunks(t *testing.T) {
	const tokens = 6
	for _, api := range []string{"chat", "completions"} {
		url, body := "/v1/chat/completions", chatBody(nil)
		if api == "completions" {
			url, body = "/v1/completions", completionBody(nil)
		}
		for k, v := range map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true},
			"max_tokens": tokens, "ignore_eos": true} {
			body[k] = v
		}
		t.Run(api+"/off", func(t *testing.T) {
			srv := startSim(t, Config{ITL: time.Millisecond})
			raw, _, _ := rawStream(t, srv.URL+url, body)
			for l := range strings.Lines(string(raw)) {
				if strings.HasPrefix(l, ":") {
					t.Errorf("comment line %q without StampChunks: the default bytes must be vLLM's", l)
				}
			}
		})
		t.Run(api+"/on", func(t *testing.T) {
			srv := startSim(t, Config{ITL: time.Millisecond, StampChunks: true})
			raw, before, after := rawStream(t, srv.URL+url, body)
			var (
				stamps    []int64
				pending   bool // a stamp came that no text chunk has followed yet
				textCount int
			)
			sc := bufio.NewScanner(bytes.NewReader(raw))
			for sc.Scan() {
				line := sc.Text()
				if strings.HasPrefix(line, ":") {
					m := stampLine.FindStringSubmatch(line)
					if m == nil {
						t.Fatalf("comment line %q is not a stamp", line)
					}
					if pending {
						t.Errorf("stamp %q follows a stamp with no text chunk between", line)
					}
					sent, err1 := strconv.ParseInt(m[1], 10, 64)
					_, err2 := strconv.ParseInt(m[2], 10, 64)
					if err1 != nil || err2 != nil {
						t.Fatalf("stamp %q does not parse: %v %v", line, err1, err2)
					}
					stamps = append(stamps, sent)
					pending = true
					continue
				}
				data, ok := strings.CutPrefix(line, "data: ")
				if !ok || data == "[DONE]" {
					continue
				}
				if _, text := chunkText(decodeChunk(t, data)); text {
					if !pending {
						t.Errorf("text chunk %q came without a stamp of its own", data)
					}
					pending = false
					textCount++
				} else if pending && len(stamps) > 1 {
					t.Errorf("text-less chunk %q between a later token's stamp and its text", data)
				}
			}
			if len(stamps) != tokens || textCount != tokens {
				t.Fatalf("%d stamps and %d text chunks, want %d of each:\n%s", len(stamps), textCount, tokens, raw)
			}
			if !strings.HasPrefix(string(raw), StampPrefix) {
				t.Errorf("the first token's stamp does not open its write (before the role chunk):\n%s", raw)
			}
			for i, s := range stamps {
				if i > 0 && s < stamps[i-1] {
					t.Errorf("stamp %d (%d) is before stamp %d (%d)", i, s, i-1, stamps[i-1])
				}
				// Same host, same clock: each write happened during the
				// request.
				if s < before.UnixNano() || s > after.UnixNano() {
					t.Errorf("stamp %d = %d, outside the request [%d, %d]", i, s, before.UnixNano(), after.UnixNano())
				}
			}
		})
	}
}

// flushWriter is a ResponseWriter that keeps only what its last flush
// sent, in reused buffers, for counting what emit itself allocates.
type flushWriter struct {
	h            http.Header
	buf, flushed []byte
}

func (w *flushWriter) Header() http.Header { return w.h }
func (w *flushWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	return len(b), nil
}
func (w *flushWriter) WriteHeader(int) {}
func (w *flushWriter) Flush() {
	w.flushed, w.buf = append(w.flushed[:0], w.buf...), w.buf[:0]
}

func TestStampedEmitDoesNotAllocate(t *testing.T) {
	s, err := New(Config{StampChunks: true})
	if err != nil {
		t.Fatal(err)
	}
	p := s.newPlan(&generateRequest{Stream: true}, apiChat, 1, 4, 64)
	w := &flushWriter{h: http.Header{}}
	o := newSSEOutput(w, p, "m", true)
	if err := o.stage(2, " token"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now()
	allocs := testing.AllocsPerRun(100, func() {
		if err := o.emit(deadline); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a stamped emit allocates %v times per token, want 0", allocs)
	}
	line, events, _ := bytes.Cut(w.flushed, []byte("\n"))
	if !bytes.HasPrefix(line, []byte(StampPrefix)) || !bytes.Equal(events, o.next) {
		t.Errorf("stamped write %q is not the stamp line and the staged events", w.flushed)
	}
}
