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
	TokensFromChunks = "chunks" // counted text-carrying chunks (no usage sent)
)

// API selects the OpenAI endpoint family.
type API string

// The OpenAI-compatible APIs a client can use.
const (
	APIChat        API = "chat"        // /v1/chat/completions
	APICompletions API = "completions" // /v1/completions
)

// Request is one generation request, independent of the wire protocol.
// Zero values mean "leave it to the server".
type Request struct {
	Model       string
	Prompt      string
	MaxTokens   int      // max_tokens / max_new_tokens; 0 = server default
	MinTokens   int      // vLLM min_tokens / min_new_tokens; 0 = not sent
	IgnoreEOS   bool     // vLLM ignore_eos
	Temperature *float64 // nil = not sent
	Seed        *int64   // nil = not sent
	Stream      bool     // stream the response (SSE / chunked)
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

	TextChunks   int    // text-carrying chunks received
	PromptTokens int    // from usage; -1 when unknown
	OutputTokens int    // from usage, or TextChunks when no usage came; -1 when unknown
	TokensSource string // TokensFromUsage or TokensFromChunks; "" when unknown

	HTTPStatus int     // 0 when no HTTP response was received
	Outcome    Outcome // how the request ended
	Error      string  // server's error message or transport error; "" when ok
}

// Reset clears r for reuse, keeping the ITL slice's capacity.
func (r *Response) Reset() {
	itl := r.ITL[:0]
	*r = Response{ITL: itl, PromptTokens: -1, OutputTokens: -1}
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
