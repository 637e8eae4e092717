package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"time"
	"unicode/utf8"
)

// api is the endpoint family a generation request came in on.
type api int

const (
	apiChat        api = iota // /v1/chat/completions
	apiCompletions            // /v1/completions
)

// maxBodyBytes bounds a request body; prompts are text, not uploads.
const maxBodyBytes = 32 << 20

// fault is the failure injected into one request.
type fault int

const (
	faultNone fault = iota
	fault500
	fault429
	faultDisconnect
	faultStall
	faultGarbage
)

type namedFault struct {
	name  string
	fault fault
	p     float64
}

// faults lists the fault probabilities in the order one uniform draw is
// matched against them.
func (c Config) faults() []namedFault {
	return []namedFault{
		{"Fail500", fault500, c.Fail500},
		{"Fail429", fault429, c.Fail429},
		{"Disconnect", faultDisconnect, c.Disconnect},
		{"Stall", faultStall, c.Stall},
		{"Garbage", faultGarbage, c.Garbage},
	}
}

// generateRequest is the part of an OpenAI/vLLM request body the
// simulator reads; other fields are accepted and ignored, as vLLM does.
type generateRequest struct {
	Model               string          `json:"model"`
	Messages            []inputMessage  `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MinTokens           *int            `json:"min_tokens"`
	IgnoreEOS           bool            `json:"ignore_eos"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
}

type inputMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// streamOptions.IncludeUsage defaults to true when stream_options is
// present, as in vLLM's StreamOptions.
type streamOptions struct {
	IncludeUsage *bool `json:"include_usage"`
}

// requestError is a validation failure, answered with vLLM's error JSON.
type requestError struct {
	status  int
	errType string
	param   string
	msg     string
}

func badRequest(param, format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, errType: "BadRequestError", param: param, msg: fmt.Sprintf(format, args...)}
}

// plan is everything decided about a request before it runs.
type plan struct {
	api          api
	stream       bool
	includeUsage bool
	id           string
	created      int64
	promptTokens int
	outputTokens int
	finishReason string
	reasoning    int // chat: the first this many tokens are reasoning_content
	fault        fault
	faultToken   int // 1-based token after which a disconnect or at which garbage strikes
	rng          *rand.Rand
}

// parse reads and validates a request, in vLLM's order: the body's shape,
// then the model, then the sampling parameters.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, a api) (*generateRequest, int, int, *requestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, 0, 0, badRequest("", "read request body: %v", err)
	}
	var req generateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, 0, 0, badRequest("", "JSON decode error: %v", err)
	}
	var promptTokens int
	if a == apiChat {
		if len(req.Messages) == 0 {
			return nil, 0, 0, badRequest("messages", "messages: Field required (a non-empty list of messages)")
		}
		chars := 0
		for i, m := range req.Messages {
			n, err := contentChars(m.Content)
			if err != nil {
				return nil, 0, 0, badRequest("messages", "messages[%d].content: %v", i, err)
			}
			chars += n
		}
		promptTokens = tokensForChars(chars)
	} else {
		n, rerr := promptTokenCount(req.Prompt)
		if rerr != nil {
			return nil, 0, 0, rerr
		}
		promptTokens = n
	}
	if req.Model != "" && req.Model != s.cfg.Model {
		return nil, 0, 0, &requestError{status: http.StatusNotFound, errType: "NotFoundError", param: "model",
			msg: fmt.Sprintf("The model `%s` does not exist.", req.Model)}
	}
	if req.N != nil && *req.N != 1 {
		return nil, 0, 0, badRequest("n", "n must be 1 for the simulator, got %d", *req.N)
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, 0, 0, badRequest("stream_options", "Stream options can only be defined when `stream=True`.")
	}
	maxTokens := req.MaxTokens
	if a == apiChat && req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	minTokens := 0
	if req.MinTokens != nil {
		minTokens = *req.MinTokens
	}
	if minTokens < 0 {
		return nil, 0, 0, badRequest("min_tokens", "min_tokens must be greater than or equal to 0, got %d.", minTokens)
	}
	// vLLM's checks of the context length: the prompt must leave room,
	// and max_tokens must fit in what it leaves. They also bound what one
	// request can make the simulator generate.
	ctxLen := s.cfg.MaxModelLen
	if promptTokens >= ctxLen {
		return nil, 0, 0, badRequest("", "This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", ctxLen, promptTokens)
	}
	room := ctxLen - promptTokens
	limit := s.cfg.DefaultMaxTokens
	if maxTokens != nil {
		limit = *maxTokens
		if limit < 1 {
			return nil, 0, 0, badRequest("max_tokens", "max_tokens must be at least 1, got %d.", limit)
		}
		if limit > room {
			return nil, 0, 0, badRequest("max_tokens", "'max_tokens' or 'max_completion_tokens' is too large: %d. This model's maximum context length is %d tokens and your request has %d input tokens (%d > %d - %d).", limit, ctxLen, promptTokens, limit, ctxLen, promptTokens)
		}
		if minTokens > limit {
			return nil, 0, 0, badRequest("min_tokens", "min_tokens must be less than or equal to max_tokens=%d, got %d.", limit, minTokens)
		}
	} else {
		// vLLM's default max_tokens is the rest of the context, which is
		// never below a sensible min_tokens; the simulator's default is
		// small, so it gives way, up to the rest of the context.
		if minTokens > room {
			return nil, 0, 0, badRequest("min_tokens", "min_tokens must be less than or equal to max_tokens=%d, got %d.", room, minTokens)
		}
		limit = min(max(limit, minTokens), room)
	}
	return &req, promptTokens, limit, nil
}

// contentChars counts the characters of a message's content: a string,
// a list of parts (only "text" parts count), or null.
func contentChars(raw json.RawMessage) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		return utf8.RuneCountInString(s), nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, errors.New("must be a string or a list of content parts")
	}
	n := 0
	for _, p := range parts {
		n += utf8.RuneCountInString(p.Text)
	}
	return n, nil
}

// promptTokenCount estimates a completions prompt's tokens: a string (or
// a list of one string) by its length, a list of token ids by its count.
func promptTokenCount(raw json.RawMessage) (int, *requestError) {
	const missing = "Either prompt or prompt_embeds must be provided and non-empty."
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, badRequest("prompt", missing)
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		if text == "" {
			return 0, badRequest("prompt", missing)
		}
		return tokensForChars(utf8.RuneCountInString(text)), nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 || texts[0] == "" {
			return 0, badRequest("prompt", "prompt must be one non-empty string: the simulator does not batch prompts, got %d", len(texts))
		}
		return tokensForChars(utf8.RuneCountInString(texts[0])), nil
	}
	var ids []int
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return 0, badRequest("prompt", missing)
		}
		return len(ids), nil
	}
	return 0, badRequest("prompt", "prompt must be a string, a list of one string, or a list of token ids")
}

// tokensForChars is the simulator's tokenizer: about 4 characters per
// token, as for English text with common BPE vocabularies, at least 1.
func tokensForChars(chars int) int {
	return max(1, (chars+3)/4)
}

// newPlan draws every random decision for the n-th valid request.
func (s *Server) newPlan(req *generateRequest, a api, n uint64, promptTokens, maxTokens int) *plan {
	rng := rand.New(rand.NewPCG(splitmix(uint64(s.cfg.Seed)), splitmix(n)))
	p := &plan{
		api:          a,
		stream:       req.Stream,
		includeUsage: req.StreamOptions != nil && (req.StreamOptions.IncludeUsage == nil || *req.StreamOptions.IncludeUsage),
		created:      time.Now().Unix(),
		promptTokens: promptTokens,
		rng:          rng,
	}
	prefix := "chatcmpl-sim-"
	if a == apiCompletions {
		prefix = "cmpl-sim-"
	}
	p.id = fmt.Sprintf("%s%016x%016x", prefix, rng.Uint64(), rng.Uint64())

	u := rng.Float64()
	for _, f := range s.cfg.faults() {
		if u < f.p {
			p.fault = f.fault
			break
		}
		u -= f.p
	}

	minTokens := 0
	if req.MinTokens != nil {
		minTokens = *req.MinTokens
	}
	natural := max(1, minTokens) + rng.IntN(maxTokens-max(1, minTokens)+1)
	if req.IgnoreEOS {
		natural = maxTokens
	}
	p.outputTokens = natural
	p.finishReason = finishStop
	if natural == maxTokens {
		p.finishReason = finishLength
	}
	if a == apiChat && s.cfg.Reasoning {
		p.reasoning = natural / 2
	}
	p.faultToken = 1 + rng.IntN(natural)
	return p
}

// splitmix is SplitMix64's finaliser: it spreads nearby seeds and counters
// over the whole state space before they seed PCG.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// vocabulary is what the simulator "says". The words are deliberately
// bland; the header, model card and metrics say the text is simulated.
var vocabulary = []string{
	"the", "energy", "of", "a", "token", "is", "measured", "in", "joules",
	"and", "every", "request", "has", "latency", "GPU", "power", "model",
	"batch", "queue", "stream", "first", "next", "time", "watt", "per",
	"server", "load", "rate", "prompt", "answer", "simulated", "text",
}

// tokenText is the text of the k-th token (1-based): a word, with a
// leading space after the first.
func (p *plan) tokenText(k int) string {
	w := vocabulary[p.rng.IntN(len(vocabulary))]
	if k == 1 {
		return w
	}
	return " " + w
}

// jitter adds uniform noise in [-j, +j] to d, clamped at 0.
func (p *plan) jitter(d, j time.Duration) time.Duration {
	if j <= 0 {
		return d
	}
	return max(0, d+time.Duration(p.rng.Int64N(2*int64(j)+1))-j)
}

// itl is the token gap with running sequences decoding together.
func (s *Server) itl(running int) time.Duration {
	return time.Duration(float64(s.cfg.ITL) * (1 + s.cfg.SlowdownPerSeq*float64(max(running, 1)-1)))
}

func (s *Server) serveGenerate(w http.ResponseWriter, r *http.Request, a api) {
	arrival := time.Now()
	req, promptTokens, maxTokens, rerr := s.parse(w, r, a)
	if rerr != nil {
		writeError(w, rerr.status, rerr.errType, rerr.param, "%s", rerr.msg)
		return
	}
	p := s.newPlan(req, a, s.arrivals.Add(1), promptTokens, maxTokens)
	switch p.fault {
	case fault500:
		writeError(w, http.StatusInternalServerError, "InternalServerError", "", "Internal server error (simulated fault)")
		return
	case fault429:
		writeError(w, http.StatusTooManyRequests, "RateLimitError", "", "Too many requests (simulated fault)")
		return
	}

	var out output
	if p.stream {
		out = newSSEOutput(w, p, s.cfg.Model, s.cfg.StampChunks)
	} else {
		out = &jsonOutput{w: w, p: p, model: s.cfg.Model}
	}
	// Like vLLM's StreamingResponse, a stream's headers go out before the
	// request is scheduled; the first token comes after queueing.
	if err := out.begin(); err != nil {
		return
	}
	ctx := r.Context()
	queued, err := s.sched.acquire(ctx)
	if err != nil {
		s.metrics.success.WithLabelValues(finishAbort).Inc()
		return
	}
	defer s.sched.release()
	// TTFT runs from admission. A request admitted at once was admitted on
	// arrival: counting from here instead would add the simulator's own
	// parsing and wake-ups to every TTFT, which a client would then
	// (rightly) measure as server latency.
	admitted := arrival
	if queued {
		admitted = time.Now()
	}
	if !s.generate(ctx, p, out, arrival, admitted) {
		s.metrics.success.WithLabelValues(finishAbort).Inc()
	}
}

// ttft is the time from admission to a request's first token: TTFT plus
// the prompt's prefill, PrefillPerToken per prompt token (saturating far
// beyond any real wait).
func (s *Server) ttft(promptTokens int) time.Duration {
	prefill := float64(s.cfg.PrefillPerToken) * float64(promptTokens)
	return s.cfg.TTFT + time.Duration(min(prefill, float64(math.MaxInt64/2)))
}

// generate runs an admitted request's schedule: the first token TTFT after
// admission (plus the prompt's prefill), each next one an ITL later, on
// absolute deadlines. It reports whether the request finished (as opposed
// to being aborted).
func (s *Server) generate(ctx context.Context, p *plan, out output, arrival, admitted time.Time) bool {
	clk := s.timers.newClock()
	deadline := admitted.Add(p.jitter(s.ttft(p.promptTokens), s.cfg.Jitter))
	var prev time.Time
	for k := 1; k <= p.outputTokens; k++ {
		if k > 1 {
			deadline = deadline.Add(p.jitter(s.itl(s.sched.runningNow()), s.cfg.Jitter))
		}
		if err := out.stage(k, p.tokenText(k)); err != nil {
			return false
		}
		if !clk.sleepUntil(ctx, deadline) {
			return false
		}
		now := time.Now()
		if k == 1 {
			s.metrics.ttft.Observe(now.Sub(arrival).Seconds())
			s.metrics.promptTokens.Add(float64(p.promptTokens))
		} else {
			gap := now.Sub(prev).Seconds()
			s.metrics.itl.Observe(gap)
			s.metrics.tpot.Observe(gap)
		}
		prev = now
		s.metrics.generationTokens.Inc()
		s.power.addToken()
		if err := out.emit(deadline); err != nil {
			return false
		}
		if p.fault == faultDisconnect && k == p.faultToken {
			s.metrics.success.WithLabelValues(finishAbort).Inc()
			// net/http closes the connection without ending the chunked
			// body, so the client sees an unexpected EOF.
			panic(http.ErrAbortHandler)
		}
		if p.fault == faultStall && k == 1 {
			<-ctx.Done()
			return false
		}
	}
	if err := out.end(); err != nil {
		return false
	}
	s.metrics.e2e.Observe(prev.Sub(arrival).Seconds())
	s.metrics.reqPrompt.Observe(float64(p.promptTokens))
	s.metrics.reqGeneration.Observe(float64(p.outputTokens))
	s.metrics.success.WithLabelValues(p.finishReason).Inc()
	return true
}
