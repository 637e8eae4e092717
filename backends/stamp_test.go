package backends

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

func TestStampPrefixIsTheSimulators(t *testing.T) {
	if StampPrefix != sim.StampPrefix {
		t.Fatalf("StampPrefix %q, the simulator's %q", StampPrefix, sim.StampPrefix)
	}
}

// TestSSEReaderStamps: the reader keeps the latest well-formed
// ": tokenwatt-sent " comment, and only that one; other comments and
// malformed stamps change nothing.
func TestSSEReaderStamps(t *testing.T) {
	tests := []struct {
		name       string
		comments   string
		stamped    bool
		sent, late int64
	}{
		{name: "stamp", comments: ": tokenwatt-sent 1733945600123456789 -45\n", stamped: true, sent: 1733945600123456789, late: -45},
		{name: "latest wins", comments: ": tokenwatt-sent 1 2\n: ping\n: tokenwatt-sent 3 4\n", stamped: true, sent: 3, late: 4},
		{name: "extremes", comments: ": tokenwatt-sent 9223372036854775807 -9223372036854775808\n", stamped: true, sent: 1<<63 - 1, late: -1 << 63},
		{name: "CRLF", comments: ": tokenwatt-sent 5 6\r\n", stamped: true, sent: 5, late: 6},
		{name: "other comment", comments: ": ping\n"},
		{name: "no space after the colon", comments: ":tokenwatt-sent 1 2\n"},
		{name: "another word", comments: ": tokenwatt-sentinel 1 2\n"},
		{name: "one number", comments: ": tokenwatt-sent 1\n"},
		{name: "three numbers", comments: ": tokenwatt-sent 1 2 3\n"},
		{name: "two spaces", comments: ": tokenwatt-sent 1  2\n"},
		{name: "not a number", comments: ": tokenwatt-sent x 2\n"},
		{name: "lone minus", comments: ": tokenwatt-sent - 2\n"},
		{name: "overflow", comments: ": tokenwatt-sent 9223372036854775808 2\n"},
		{name: "huge", comments: ": tokenwatt-sent 99999999999999999999999 2\n"},
		{name: "prefix alone", comments: ": tokenwatt-sent \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSSEReader(strings.NewReader(tt.comments+"data: a\n\n"), 16)
			data, _, err := r.next()
			if err != nil || string(data) != "a" {
				t.Fatalf("event %q, %v; want \"a\"", data, err)
			}
			if r.stamped != tt.stamped || r.stamped && (r.stampSent != tt.sent || r.stampLate != tt.late) {
				t.Errorf("stamped %v (%d %d), want %v (%d %d)", r.stamped, r.stampSent, r.stampLate, tt.stamped, tt.sent, tt.late)
			}
		})
	}
}

// chatChunk is one SSE chat chunk carrying content (empty: the role
// chunk, which carries no text).
func chatChunk(content string) string {
	if content == "" {
		return `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	}
	return fmt.Sprintf(`data: {"choices":[{"index":0,"delta":{"content":%q}}]}`+"\n\n", content)
}

func stampLine(sent time.Time, late time.Duration) string {
	return fmt.Sprintf("%s%d %d\n", StampPrefix, sent.UnixNano(), late)
}

// TestReadStreamStamps: a stamp is taken by the next text-carrying chunk
// only (not the role chunk before it), the latest stamp counts, a text
// chunk without a stamp of its own gets none, and a lateness the clocks
// cannot agree on is counted, not kept.
func TestReadStreamStamps(t *testing.T) {
	before := time.Now()
	const ago = 50 * time.Millisecond
	sent := before.Add(-ago)
	stream := stampLine(sent, 7) + // the first token's stamp, before the role chunk
		chatChunk("") +
		": ping\n" +
		chatChunk("one") + // takes the first stamp
		stampLine(sent.Add(-time.Hour), 8) + // replaced by the next one
		stampLine(sent, -9) +
		chatChunk("two") + // takes the second
		chatChunk("three") + // no stamp of its own
		": tokenwatt-sent junk\n" +
		chatChunk("four") + // none either
		stampLine(before.Add(time.Hour), 10) + // a clock an hour ahead
		chatChunk("five") +
		`data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}` + "\n\n" +
		"data: [DONE]\n\n"
	var resp Response
	resp.Reset()
	var told latenessLog
	readStream(context.Background(), newSSEReader(strings.NewReader(stream), sseBufferSize), &resp, false, &told)
	after := time.Now()
	if resp.Outcome != OutcomeOK || resp.TextChunks != 5 {
		t.Fatalf("outcome %s, %d text chunks, error %q", resp.Outcome, resp.TextChunks, resp.Error)
	}
	if want := []time.Duration{7, -9, 10}; fmt.Sprint(resp.ServerLate) != fmt.Sprint(want) {
		t.Errorf("ServerLate = %v, want %v", resp.ServerLate, want)
	}
	if len(resp.Lateness) != 2 || resp.LatenessSkewed != 1 || resp.StampsDropped != 0 {
		t.Fatalf("Lateness %v, %d skewed, %d dropped; want 2 values, 1 skewed", resp.Lateness, resp.LatenessSkewed, resp.StampsDropped)
	}
	// The observer was told each kept lateness as its chunk came, and
	// not the skewed one.
	if fmt.Sprint(told) != fmt.Sprint(resp.Lateness) {
		t.Errorf("observer told %v, want %v", told, resp.Lateness)
	}
	for i, l := range resp.Lateness {
		// Each is its chunk's arrival minus sent: between ago and ago
		// plus the time the test took.
		if l < ago || l > after.Sub(before)+ago {
			t.Errorf("Lateness[%d] = %v, want within [%v, %v]", i, l, ago, after.Sub(before)+ago)
		}
	}

	// Reset empties them and keeps their storage.
	resp.Reset()
	if len(resp.Lateness) != 0 || len(resp.ServerLate) != 0 || cap(resp.Lateness) == 0 || cap(resp.ServerLate) == 0 ||
		resp.LatenessSkewed != 0 {
		t.Errorf("after Reset: Lateness %v (cap %d), ServerLate %v (cap %d), %d skewed",
			resp.Lateness, cap(resp.Lateness), resp.ServerLate, cap(resp.ServerLate), resp.LatenessSkewed)
	}
	// A new stream starts without the last one's stamp.
	sr := newSSEReader(strings.NewReader(stampLine(sent, 1)), 16)
	if _, _, err := sr.next(); err != io.EOF || !sr.stamped {
		t.Fatalf("stamp alone: %v, stamped %v", err, sr.stamped)
	}
	sr.reset(strings.NewReader(chatChunk("x") + "data: [DONE]\n\n"))
	readStream(context.Background(), sr, &resp, false, nil)
	if len(resp.Lateness) != 0 || len(resp.ServerLate) != 0 {
		t.Errorf("a stamp outlived its stream: Lateness %v, ServerLate %v", resp.Lateness, resp.ServerLate)
	}
}

// TestReadStreamStampsCapped: past MaxITL stamped chunks, stamps are
// counted, not kept.
func TestReadStreamStampsCapped(t *testing.T) {
	var b strings.Builder
	now := time.Now()
	for range MaxITL + 3 {
		b.WriteString(stampLine(now, 1))
		b.WriteString(chatChunk("x"))
	}
	b.WriteString("data: [DONE]\n\n")
	var resp Response
	resp.Reset()
	readStream(context.Background(), newSSEReader(strings.NewReader(b.String()), sseBufferSize), &resp, false, nil)
	if len(resp.Lateness) != MaxITL || len(resp.ServerLate) != MaxITL || resp.StampsDropped != 3 {
		t.Errorf("%d latenesses, %d timer latenesses, %d dropped; want %d, %d, 3", len(resp.Lateness), len(resp.ServerLate),
			resp.StampsDropped, MaxITL, MaxITL)
	}
}

// TestReadStreamAllocatesNothing: a realistic vLLM chat stream, stamped
// or not, read with a reused reader and Response allocates nothing at
// all, its finish reason ("stop") included, and a stamped one yields a
// lateness per text chunk.
func TestReadStreamAllocatesNothing(t *testing.T) {
	plain, chunks := vllmChatStream(256)
	for name, stream := range map[string][]byte{"plain": plain, "stamped": stampedStream(plain)} {
		src := bytes.NewReader(stream)
		sr := newSSEReader(src, sseBufferSize)
		var resp Response
		run := func() {
			src.Reset(stream)
			sr.reset(src)
			resp.Reset()
			readStream(context.Background(), sr, &resp, false, nil)
		}
		run()
		if resp.Outcome != OutcomeOK || resp.TextChunks != chunks-3 || resp.FinishReason != "stop" {
			t.Fatalf("%s: outcome %s, %d text chunks, finish reason %q, error %q", name, resp.Outcome, resp.TextChunks, resp.FinishReason, resp.Error)
		}
		if want := map[string]int{"plain": 0, "stamped": chunks - 3}[name]; len(resp.Lateness) != want {
			t.Fatalf("%s: %d latenesses, want %d", name, len(resp.Lateness), want)
		}
		if n := testing.AllocsPerRun(20, run); n != 0 {
			t.Errorf("%s: %v allocations per stream of %d chunks, want 0", name, n, chunks)
		}
	}
}

// stampedStream puts a stamp before each event of stream that carries
// content, as the simulator writes them (the first token's before the
// role chunk is left out: it only changes which event comes first).
func stampedStream(stream []byte) []byte {
	stamp := stampLine(time.Now(), 12345)
	var out bytes.Buffer
	for ev := range strings.SplitAfterSeq(string(stream), "\n\n") {
		if strings.Contains(ev, `"content":"`) && !strings.Contains(ev, `"content":""`) {
			out.WriteString(stamp)
		}
		out.WriteString(ev)
	}
	return out.Bytes()
}

// TestDoStampsFromSimulator: against the simulator with stamps on, over
// loopback, each text chunk gets one client lateness and one timer
// lateness, and the client latenesses are not negative (one clock);
// without stamps there are none.
func TestDoStampsFromSimulator(t *testing.T) {
	const tokens = 40
	for _, stamp := range []bool{false, true} {
		cfg := sim.DefaultConfig()
		cfg.TTFT, cfg.ITL, cfg.StampChunks, cfg.Reasoning = time.Millisecond, 200*time.Microsecond, stamp, true
		srv, err := sim.Start(t.Context(), "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		c := newTestClient(t, srv.URL, OpenAIConfig{VLLM: true})
		for _, api := range []API{APIChat, APICompletions} {
			c.api = api
			c.url = c.base + map[API]string{APIChat: "/chat/completions", APICompletions: "/completions"}[api]
			resp := do(c, t.Context(), &Request{Prompt: "x", MaxTokens: tokens, IgnoreEOS: true, Stream: true})
			if resp.Outcome != OutcomeOK || resp.TextChunks != tokens {
				t.Fatalf("stamps %v, %s: outcome %s, %d text chunks, error %q", stamp, api, resp.Outcome, resp.TextChunks, resp.Error)
			}
			want := 0
			if stamp {
				want = tokens
			}
			if len(resp.Lateness) != want || len(resp.ServerLate) != want || resp.LatenessSkewed != 0 {
				t.Errorf("stamps %v, %s: %d latenesses, %d timer latenesses, %d skewed; want %d each, none skewed",
					stamp, api, len(resp.Lateness), len(resp.ServerLate), resp.LatenessSkewed, want)
			}
			for i, l := range resp.Lateness {
				if l < 0 {
					t.Errorf("%s: Lateness[%d] = %v, negative on one clock", api, i, l)
				}
			}
		}
	}
}

// latenessLog is a LatenessObserver that keeps what it is told.
type latenessLog []time.Duration

func (l *latenessLog) ObserveLateness(d time.Duration) { *l = append(*l, d) }
