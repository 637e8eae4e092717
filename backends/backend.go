// Package backends holds the clients that talk to inference servers
// (OpenAI-compatible/vLLM, PyTorch) and measure each request's timing as
// DESIGN.md §3 defines it. A client never aggregates: it fills one Response
// per request and the load generator turns that into a Record.
//
// This package must not depend on the load generator (package loadgen), the
// exporter or the report packages.
package backends

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// Outcome classifies how a request ended. The values are the `outcome` label
// of tokenwatt_requests_total and the `outcome` field of a record.
type Outcome string

// The outcomes a request can have.
const (
	OutcomeOK           Outcome = "ok"
	OutcomeHTTP4xx      Outcome = "http_4xx"
	OutcomeHTTP5xx      Outcome = "http_5xx"
	OutcomeTimeout      Outcome = "timeout"
	OutcomeCanceled     Outcome = "canceled"
	OutcomeStreamError  Outcome = "stream_error"
	OutcomeConnectError Outcome = "connect_error"
)

// Token count provenance (the record's tokens_source).
const (
	TokensFromUsage  = "usage"  // the server's usage object
	TokensFromChunks = "chunks" // counted text-carrying chunks (no usage sent, or not believed)
)

// Implausible usage. A server's usage count is not believed when it is
// above MaxUsageTokens, or, for completion_tokens, above the request's
// max_tokens plus a tenth plus OutputTokensSlack: the output count then
// falls back to the text-carrying chunks and the prompt count to
// unknown, and Response.TokensWarning says why. MaxUsageTokens is far
// beyond any model's context window and keeps every sum of token counts
// (a billion requests' worth, and more) inside an int64.
const (
	MaxUsageTokens    = 100_000_000
	OutputTokensSlack = 16
)

// API selects the OpenAI endpoint family.
type API string

// The OpenAI-compatible APIs a client can use.
const (
	APIChat        API = "chat"        // /v1/chat/completions
	APICompletions API = "completions" // /v1/completions
)

// Message is one chat message. Its JSON form is OpenAI's
// ({"role", "content"}), as records with saved text show it.
type Message struct {
	Role    string `json:"role"` // system, developer, user, assistant or tool
	Content string `json:"content"`
}

// MaxText bounds the answer text a Response keeps (Request.KeepText): 1
// MiB per request. Text beyond it is dropped, at a UTF-8 boundary, and
// Response.TextTruncated says so. Answers are seldom a hundredth of it;
// the bound keeps a runaway server from holding a request's worth of
// memory per record in flight.
const MaxText = 1 << 20

// Request is one generation request, independent of the wire protocol.
// Zero values mean "leave it to the server".
type Request struct {
	Model  string
	Prompt string
	// Messages, when set, is what the chat API sends instead of Prompt as
	// the one user message (e.g. a system prompt and a user turn). APIs
	// that take text (completions, PyTorch) always send Prompt: the caller
	// sets it to the messages as text.
	Messages    []Message
	MaxTokens   int      // max_tokens / max_new_tokens; 0 = server default
	MinTokens   int      // vLLM min_tokens / min_new_tokens; 0 = not sent
	IgnoreEOS   bool     // vLLM ignore_eos
	Temperature *float64 // nil = not sent
	Seed        *int64   // nil = not sent
	Stream      bool     // stream the response (SSE / chunked)
	// KeepText asks the client to keep the generated answer in
	// Response.Text (up to MaxText): records with --save-text, and
	// multi-turn history. Off, nothing of the answer is kept.
	KeepText bool
	// Lateness, when set, is told each stamped text chunk's client
	// lateness as the chunk arrives (Response.Lateness gets it too), so
	// that a watcher sees the client's own error while the request is
	// still streaming. Lateness the clocks disagree on is not told.
	Lateness LatenessObserver
}

// LatenessObserver takes the client lateness of stamped text chunks
// (StampPrefix), from many requests at once.
type LatenessObserver interface {
	ObserveLateness(time.Duration)
}

// Response is what a client measured for one request. All times are
// time.Time values carrying Go's monotonic clock reading, so durations
// between them are monotonic; their wall-clock part joins records with
// Prometheus.
//
// Zero times mean "did not happen" or "not measured": First is zero when
// no text-carrying chunk arrived, and always for a non-streaming request
// (Request.Stream false), whose whole body has no first-token time.
type Response struct {
	Send  time.Time // t_send: just before the request is written
	First time.Time // t_first: first text-carrying chunk (non-streaming: zero)
	Last  time.Time // t_last: last text-carrying chunk (non-streaming: body fully read)
	Done  time.Time // t_done: end of stream ([DONE], EOF or error)

	// ITL holds each gap between consecutive text-carrying chunks, in
	// arrival order, up to MaxITL of them. The first gap (TTFT) is not an
	// ITL. It is empty for a non-streaming request. The slice is reused
	// across requests by Reset.
	ITL []time.Duration
	// MoreITL holds the gaps after the first MaxITL, in bounded memory;
	// nil when there were none. Reset drops it (it is not reused: a
	// record may hold it).
	MoreITL *GapSketch

	// Lateness holds, for each text-carrying chunk that a simulator's
	// stamp preceded (sim.Config.StampChunks, `loadgen sim
	// --stamp-chunks`; see StampPrefix), its client lateness: the
	// chunk's arrival (the instant t_k is taken, as Unix nanoseconds)
	// minus the server's stamp of when it wrote the chunk. It is the
	// whole path's delay: the server's write and flush, the kernel,
	// and the client reading and parsing. Only meaningful when server
	// and client share a clock (the same host). A lateness below
	// -MaxClockSkew means the clocks disagree: it is not kept but
	// counted in LatenessSkewed. ServerLate holds, for every stamped
	// text chunk, how late the server's own timer wrote it (the
	// stamp's timer_late_ns: its write minus the token's deadline).
	// Both keep the first MaxITL stamped chunks; StampsDropped counts
	// those after. The slices are reused across requests by Reset.
	Lateness       []time.Duration
	ServerLate     []time.Duration
	LatenessSkewed int
	StampsDropped  int

	TextChunks   int    // text-carrying chunks received
	PromptTokens int    // from usage; -1 when unknown
	OutputTokens int    // from usage, or TextChunks when no usage came; -1 when unknown
	TokensSource string // TokensFromUsage or TokensFromChunks; "" when unknown
	// TokensWarning says why a count in the server's usage was not
	// believed (see MaxUsageTokens); "" when none was rejected.
	TokensWarning string

	// FinishReason is why the server says generation ended, as it said
	// it (OpenAI's finish_reason: "stop", "length", ...; server.py's
	// likewise), cut to MaxFinishReason bytes; "" when it gave none.
	FinishReason string

	// Text is the generated answer (OpenAI: the content, or completions
	// text, of the choices; reasoning text is not kept), only when the
	// request asked (Request.KeepText), at most MaxText bytes;
	// TextTruncated says that more came. The slice is reused across
	// requests by Reset: copy it to keep it.
	Text          []byte
	TextTruncated bool

	HTTPStatus int     // 0 when no HTTP response was received
	Outcome    Outcome // how the request ended
	Error      string  // server's error message or transport error; "" when ok
}

// MaxFinishReason bounds Response.FinishReason: real ones are a word.
const MaxFinishReason = 64

// keptTextCap is the largest Text buffer Reset keeps for the next
// request; a larger one (a long answer) is let go.
const keptTextCap = 64 << 10

// Reset clears r for reuse, keeping the ITL, Lateness and ServerLate
// slices' capacity (and the Text buffer's, when small).
func (r *Response) Reset() {
	itl, late, server := r.ITL[:0], r.Lateness[:0], r.ServerLate[:0]
	var text []byte
	if cap(r.Text) <= keptTextCap {
		text = r.Text[:0]
	}
	*r = Response{ITL: itl, Lateness: late, ServerLate: server, Text: text, PromptTokens: -1, OutputTokens: -1}
}

// MaxClockSkew is how far below zero a client lateness (Response.Lateness)
// may be before the server's clock and the client's are taken to
// disagree: a stamp is written before its chunk is read, so on one clock
// the difference is never negative; a little is let through, as it is.
const MaxClockSkew = time.Millisecond

// StampPrefix opens the SSE comment line with which tokenwatt's simulator
// (with sim.Config.StampChunks; backends/sim has the same constant)
// starts each token's write: ": tokenwatt-sent <unix_ns>
// <timer_late_ns>". The SSE reader keeps the latest such stamp until a
// text-carrying chunk takes it (Response.Lateness, ServerLate); other
// comment lines are ignored.
const StampPrefix = ": tokenwatt-sent "

// addStamp records one stamped text chunk: its client lateness late and
// the server's timer lateness server. It tells obs (when not nil) the
// client lateness at once, also past the MaxITL chunks kept, unless the
// clocks disagree on it.
func (r *Response) addStamp(late, server time.Duration, obs LatenessObserver) {
	if obs != nil && late >= -MaxClockSkew {
		obs.ObserveLateness(late)
	}
	if len(r.ServerLate) >= MaxITL {
		r.StampsDropped++
		return
	}
	r.ServerLate = append(r.ServerLate, server)
	if late < -MaxClockSkew {
		r.LatenessSkewed++
		return
	}
	r.Lateness = append(r.Lateness, late)
}

// keepText appends piece to r.Text up to MaxText, cutting at a UTF-8
// boundary and noting the cut.
func (r *Response) keepText(piece []byte) {
	if r.TextTruncated {
		return
	}
	room := MaxText - len(r.Text)
	if len(piece) > room {
		piece = termtext.Cut(piece, room)
		r.TextTruncated = true
	}
	r.Text = append(r.Text, piece...)
}

// setFinishReason keeps a finish reason the server gave, cut to
// MaxFinishReason bytes at a UTF-8 boundary.
func (r *Response) setFinishReason(reason string) {
	r.FinishReason = termtext.Cut(reason, MaxFinishReason)
}

// Backend is a client for one kind of inference server.
type Backend interface {
	// Name is the backend's name as it appears in records and labels
	// ("openai", "vllm", "pytorch").
	Name() string
	// Endpoint is the base URL of the server the client sends to, as the
	// client resolved it from its configuration (the OpenAI client's
	// .../v1 base, the PyTorch client's inference API base).
	Endpoint() string
	// Models lists the models the server serves. It is called once before
	// a run to check the endpoint and the model; its error says what was
	// tried.
	Models(ctx context.Context) ([]string, error)
	// Simulated reports whether the server has said, in an answer to
	// Models, that it is tokenwatt's simulator (SimulatedHeader: true):
	// a run against a standalone `loadgen sim` is then labelled simulated
	// like a --sim run.
	Simulated() bool
	// Do sends req and fills resp (which the caller has Reset). It never
	// returns an error: failures are classified in resp.Outcome, with
	// resp.Error saying why. Do must honour ctx: cancellation ends the
	// request with OutcomeCanceled, a deadline with OutcomeTimeout.
	Do(ctx context.Context, req *Request, resp *Response)
}

// SimulatedHeader is the response header with which tokenwatt's simulator
// (backends/sim, which has the same constant) marks every answer.
const SimulatedHeader = "X-Tokenwatt-Simulated"

// simulatedMark remembers whether any answer a client noted carried
// SimulatedHeader: true. It is safe for concurrent use.
type simulatedMark struct{ seen atomic.Bool }

// note looks at one answer's header.
func (m *simulatedMark) note(h http.Header) {
	if strings.EqualFold(strings.TrimSpace(h.Get(SimulatedHeader)), "true") {
		m.seen.Store(true)
	}
}

// Simulated implements Backend.Simulated.
func (m *simulatedMark) Simulated() bool { return m.seen.Load() }
