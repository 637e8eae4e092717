package backends

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// maxResponseBody bounds a non-streaming response or a model list.
	maxResponseBody = 64 << 20
	// maxDrain and drainWait bound reading the rest of a stream after
	// [DONE]: reaching the body's end is what lets the transport reuse the
	// connection, but a server that keeps the stream open must not hold
	// the worker.
	maxDrain  = 64 << 10
	drainWait = time.Second
)

// OpenAIConfig configures an OpenAI-compatible client.
type OpenAIConfig struct {
	// Endpoint is the server's address in any form NormalizeEndpoint
	// accepts (http://h:8000, http://h:8000/v1, ...).
	Endpoint string
	// APIKey is sent as "Authorization: Bearer <key>" when non-empty. It is
	// never logged or put in an error.
	APIKey string
	// API selects /v1/chat/completions (APIChat, the default when empty)
	// or /v1/completions (APICompletions).
	API API
	// VLLM sends vLLM's extra sampling parameters (min_tokens, ignore_eos)
	// and names the backend "vllm" instead of "openai".
	VLLM bool
	// ExtraBody is added to every request body; a key the client sets
	// itself (model, messages, prompt, stream, stream_options,
	// max_tokens, max_completion_tokens, min_tokens, ignore_eos,
	// temperature, seed) is an error.
	ExtraBody ExtraBody
	// HTTPClient sends the requests. nil means a client tuned for load
	// generation: HTTP/1.1 only, keep-alives with a large idle pool per
	// host, no proxy, no compression and no client-wide timeout (each
	// request's context bounds it).
	HTTPClient *http.Client
}

// OpenAI is a client for OpenAI-compatible servers such as vLLM. It is
// safe for concurrent use.
type OpenAI struct {
	name      string
	base      string // normalized endpoint, ending in /v1
	url       string // the generation endpoint
	modelsURL string
	apiKey    string
	api       API
	vllm      bool
	extra     []byte // ExtraBody's members, each after a comma
	client    *http.Client
	// Requests share these header maps: net/http does not modify a
	// client request's Header (except to add a cookie jar's cookies, see
	// Do), and building them once saves allocations.
	streamHeader, wholeHeader, modelsHeader http.Header
	simulatedMark
}

// NewOpenAI returns a client for the server cfg describes.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	base, err := NormalizeEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	api := cfg.API
	if api == "" {
		api = APIChat
	}
	var path string
	switch api {
	case APIChat:
		path = "/chat/completions"
	case APICompletions:
		path = "/completions"
	default:
		return nil, fmt.Errorf("api %q is not supported: use %q or %q", api, APIChat, APICompletions)
	}
	for i := 0; i < len(cfg.APIKey); i++ {
		if c := cfg.APIKey[i]; c < 0x20 && c != '\t' || c == 0x7f {
			// The key itself stays out of the message.
			return nil, errors.New("API key contains a control character (a stray newline?); it cannot be sent in an HTTP header")
		}
	}
	extra, err := cfg.ExtraBody.encode(reservedOpenAI)
	if err != nil {
		return nil, err
	}
	c := &OpenAI{
		extra:     extra,
		name:      "openai",
		base:      base,
		url:       base + path,
		modelsURL: base + "/models",
		apiKey:    cfg.APIKey,
		api:       api,
		vllm:      cfg.VLLM,
		client:    cfg.HTTPClient,
	}
	if cfg.VLLM {
		c.name = "vllm"
	}
	c.client = noRedirects(c.client)
	c.streamHeader = c.header("text/event-stream", true)
	c.wholeHeader = c.header("application/json", true)
	c.modelsHeader = c.header("application/json", false)
	return c, nil
}

func (c *OpenAI) header(accept string, body bool) http.Header {
	h := http.Header{"Accept": {accept}, "User-Agent": {"tokenwatt"}}
	if body {
		h["Content-Type"] = []string{"application/json"}
	}
	if c.apiKey != "" {
		h["Authorization"] = []string{"Bearer " + c.apiKey}
	}
	return h
}

// Name returns "vllm" for a client with vLLM's extras, else "openai".
func (c *OpenAI) Name() string { return c.name }

// Endpoint returns the normalized API base URL, ending in /v1.
func (c *OpenAI) Endpoint() string { return c.base }

// Models lists the ids of the models the server serves (GET /v1/models).
func (c *OpenAI) Models(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.modelsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", c.modelsURL, err)
	}
	req.Header = c.modelsHeader.Clone()
	hresp, err := c.client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("GET %s: %w", c.modelsURL, ctxErr)
		}
		return nil, &transportError{msg: c.redact("GET " + c.modelsURL + ": " + describeTransportError(err)), err: err}
	}
	defer hresp.Body.Close()
	c.note(hresp.Header)
	body, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read response: %w", c.modelsURL, err)
	}
	if isRedirect(hresp.StatusCode) {
		return nil, &redirectError{c.redact("GET " + c.modelsURL + ": " + redirectMessage(hresp))}
	}
	if hresp.StatusCode != http.StatusOK {
		msg := serverMessage(hresp.StatusCode, body)
		if hresp.StatusCode == http.StatusUnauthorized || hresp.StatusCode == http.StatusForbidden {
			msg += " (check the API key)"
		}
		return nil, errors.New(c.redact(fmt.Sprintf("GET %s: HTTP %s: %s", c.modelsURL, hresp.Status, msg)))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s: decode model list: %w", c.modelsURL, err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids, nil
}

// Do sends req and measures it into resp (see Backend.Do).
func (c *OpenAI) Do(ctx context.Context, req *Request, resp *Response) {
	// Headroom for escapes: prompts are mostly plain text.
	body, err := c.appendBody(make([]byte, 0, len(req.Prompt)+len(req.Prompt)/8+len(req.Model)+len(c.extra)+256), req)
	if err != nil {
		// The server would answer 400 to such a body; no request is sent.
		resp.Outcome, resp.Error = OutcomeHTTP4xx, err.Error()
		return
	}
	// reqCtx lets stream end the body read after [DONE] without touching
	// the caller's context.
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent sendStamp
	sb := newSentBody(body)
	reqCtx = httptrace.WithClientTrace(reqCtx, &httptrace.ClientTrace{WroteHeaders: sent.mark, WroteRequest: sb.sent})
	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.url, &sb.r)
	if err != nil {
		resp.Outcome, resp.Error = OutcomeConnectError, c.redact(fmt.Sprintf("POST %s: build request: %v", c.url, err))
		return
	}
	resendable(hreq, func() ([]byte, error) { return c.appendBody(nil, req) })
	hreq.Header = c.wholeHeader
	if req.Stream {
		hreq.Header = c.streamHeader
	}
	if c.client.Jar != nil {
		// The client adds the jar's cookies to the request's Header.
		hreq.Header = hreq.Header.Clone()
	}
	hresp := roundTrip(ctx, c.client, hreq, &sent, resp)
	if hresp == nil {
		resp.Error = c.redact(resp.Error)
		return
	}
	defer hresp.Body.Close()
	resp.HTTPStatus = hresp.StatusCode
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		c.readError(hresp, resp)
		return
	}
	if req.Stream {
		c.stream(ctx, cancel, hresp, resp, req.KeepText, req.Lateness)
	} else {
		readWhole(ctx, hresp.Body, resp, req.KeepText)
	}
	checkOutputTokens(resp, req.MaxTokens)
	resp.Error = c.redact(resp.Error)
}

// stream measures an SSE response.
func (c *OpenAI) stream(ctx context.Context, cancel context.CancelFunc, hresp *http.Response, resp *Response, keepText bool, obs LatenessObserver) {
	sr := getSSEReader(hresp.Body)
	defer putSSEReader(sr)
	readStream(ctx, sr, resp, keepText, obs)
	switch {
	case resp.Outcome == OutcomeOK:
		stop := time.AfterFunc(drainWait, cancel)
		_, _ = io.Copy(io.Discard, io.LimitReader(sr.br, maxDrain)) // best effort: only connection reuse depends on it
		stop.Stop()
	case resp.Outcome == OutcomeStreamError && resp.TextChunks == 0:
		if ct := hresp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			resp.Error += fmt.Sprintf(" (response Content-Type is %q, not text/event-stream)", ct)
		}
	}
}

// readStream reads SSE events from sr until [DONE], the end of the body,
// an error or ctx's end, and fills resp's timings, token counts, finish
// reason and outcome, with keepText its answer text, and for each
// text-carrying chunk that a simulator's stamp preceded its lateness
// (Response.Lateness, ServerLate). It is the
// per-chunk hot path: no allocation per chunk (but for the finish reason,
// once, and the kept text).
func readStream(ctx context.Context, sr *sseReader, resp *Response, keepText bool, obs LatenessObserver) {
	done := ctx.Done()
	var (
		c                  chunk
		chunks             int
		prompt, completion int64 = -1, -1
	)
	defer func() { setTokens(resp, prompt, completion) }()
	for {
		data, errorEvent, err := sr.next()
		now := time.Now()
		if err != nil {
			resp.Done = now
			switch {
			case ctx.Err() != nil:
				setContextOutcome(resp, ctx.Err(), fmt.Sprintf("after %d chunks", chunks))
			case err == io.EOF:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("stream ended without [DONE] after %d chunks", chunks)
			case err == errEventTooLong:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("%v in chunk %d", err, chunks+1)
			default:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("stream cut after %d chunks: %v", chunks, err)
			}
			return
		}
		if isDoneEvent(data) {
			resp.Done = now
			resp.Outcome = OutcomeOK
			return
		}
		select {
		case <-done:
			resp.Done = now
			setContextOutcome(resp, ctx.Err(), fmt.Sprintf("after %d chunks", chunks))
			return
		default:
		}
		chunks++
		if err := scanChunk(data, &c); err != nil {
			resp.Done = now
			resp.Outcome = OutcomeStreamError
			if errorEvent {
				resp.Error = fmt.Sprintf("server error event in chunk %d: %s", chunks, clip(string(data), maxMessage))
			} else {
				resp.Error = fmt.Sprintf("malformed SSE data in chunk %d (%v): %q", chunks, err, snippet(data))
			}
			return
		}
		if c.isError || errorEvent {
			resp.Done = now
			resp.Outcome = OutcomeStreamError
			msg := c.message()
			if msg == "" {
				msg = string(data)
			}
			resp.Error = fmt.Sprintf("server error in chunk %d: %s", chunks, clip(msg, maxMessage))
			return
		}
		if c.text {
			// Response.textChunk, by hand: the per-chunk hot path, and the
			// method is over the inliner's budget.
			switch {
			case resp.TextChunks == 0:
				resp.First = now
			case len(resp.ITL) < MaxITL:
				resp.ITL = append(resp.ITL, now.Sub(resp.Last))
			default:
				resp.AddGap(now.Sub(resp.Last))
			}
			resp.Last = now
			resp.TextChunks++
			if sr.stamped {
				sr.stamped = false
				resp.addStamp(time.Duration(now.UnixNano()-sr.stampSent), time.Duration(sr.stampLate), obs)
			}
		}
		if keepText && c.answer != nil {
			resp.keepAnswer(&c)
		}
		if c.finishReason != nil {
			// The last one given counts (vLLM sends it once, on the
			// choice's last chunk).
			resp.setFinishReason(c.finish())
		}
		if c.usage {
			// With vLLM's continuous usage stats every chunk carries usage;
			// the latest counts.
			if c.promptTokens >= 0 {
				prompt = c.promptTokens
			}
			if c.completionTokens >= 0 {
				completion = c.completionTokens
			}
		}
	}
}

// readWhole measures a non-streaming response: the whole body is the one
// "chunk", arriving when it has been read completely. It sets t_last and
// t_done, never t_first: a whole response has no first-token time, so
// TTFT, ITL and TPOT stay unmeasured (docs/definitions.md).
func readWhole(ctx context.Context, body io.Reader, resp *Response, keepText bool) {
	var (
		c                  chunk
		prompt, completion int64 = -1, -1
	)
	defer func() { setTokens(resp, prompt, completion) }()
	data, err := io.ReadAll(io.LimitReader(body, maxResponseBody+1))
	now := time.Now()
	resp.Done = now
	switch {
	case err != nil && ctx.Err() != nil:
		setContextOutcome(resp, ctx.Err(), fmt.Sprintf("after %d bytes of the response body", len(data)))
		return
	case err != nil:
		resp.Outcome = OutcomeStreamError
		resp.Error = fmt.Sprintf("response body cut after %d bytes: %v", len(data), err)
		return
	case len(data) > maxResponseBody:
		resp.Outcome = OutcomeStreamError
		resp.Error = fmt.Sprintf("response body larger than %d MiB", maxResponseBody>>20)
		return
	}
	resp.Last = now
	if err := scanChunk(data, &c); err != nil {
		resp.Outcome = OutcomeStreamError
		resp.Error = fmt.Sprintf("malformed response body (%v): %q", err, snippet(data))
		return
	}
	if c.isError {
		resp.Outcome = OutcomeStreamError
		resp.Error = "server error in response body: " + clip(c.message(), maxMessage)
		return
	}
	if c.text {
		resp.TextChunks = 1
	}
	if keepText && c.answer != nil {
		resp.keepAnswer(&c)
	}
	resp.setFinishReason(c.finish())
	prompt, completion = c.promptTokens, c.completionTokens
	resp.Outcome = OutcomeOK
}

// setTokens fills the token counts once a response has been read: usage
// when the server sent completion_tokens, else the text-carrying chunks.
// A count above MaxUsageTokens is not believed.
func setTokens(resp *Response, prompt, completion int64) {
	if prompt > MaxUsageTokens {
		resp.warnTokens(fmt.Sprintf("usage prompt_tokens %d is more than %d: not believed, prompt_tokens unknown", prompt, MaxUsageTokens))
		prompt = -1
	}
	if completion > MaxUsageTokens {
		resp.warnTokens(fmt.Sprintf("usage completion_tokens %d is more than %d: not believed, text chunks counted instead", completion, MaxUsageTokens))
		completion = -1
	}
	if prompt >= 0 {
		resp.PromptTokens = int(prompt)
	}
	if completion >= 0 {
		resp.OutputTokens = int(completion)
		resp.TokensSource = TokensFromUsage
		return
	}
	resp.OutputTokens = resp.TextChunks
	resp.TokensSource = TokensFromChunks
}

// checkOutputTokens falls back to the text-carrying chunks when the
// usage's completion_tokens is more than the request's max_tokens allows
// (max_tokens + a tenth + OutputTokensSlack; no bound without max_tokens
// but MaxUsageTokens).
func checkOutputTokens(resp *Response, maxTokens int) {
	if maxTokens <= 0 || maxTokens >= MaxUsageTokens || resp.TokensSource != TokensFromUsage {
		return
	}
	limit := int64(maxTokens) + int64(maxTokens)/10 + OutputTokensSlack
	if int64(resp.OutputTokens) <= limit {
		return
	}
	resp.warnTokens(fmt.Sprintf("usage completion_tokens %d is more than max_tokens %d allows (%d): not believed, text chunks counted instead",
		resp.OutputTokens, maxTokens, limit))
	resp.OutputTokens, resp.TokensSource = resp.TextChunks, TokensFromChunks
}

// keepAnswer appends a chunk's answer text to r.Text.
func (r *Response) keepAnswer(c *chunk) {
	if !r.TextTruncated {
		r.keepText(c.answerText())
	}
}

func (r *Response) warnTokens(msg string) {
	if r.TokensWarning != "" {
		r.TokensWarning += "; "
	}
	r.TokensWarning += msg
}

// readError classifies a non-2xx response and keeps the server's message.
func (c *OpenAI) readError(hresp *http.Response, resp *Response) {
	// A body cut short still usually holds the message; the status alone
	// classifies the request.
	body, _ := io.ReadAll(io.LimitReader(hresp.Body, maxErrorBody))
	resp.Done = time.Now()
	msg := serverMessage(hresp.StatusCode, body)
	switch code := hresp.StatusCode; {
	case code >= 400:
		resp.Outcome = httpErrorOutcome(code)
	case isRedirect(code):
		// A redirect is not followed: like a final 3xx, it is the
		// configuration's fault (docs/definitions.md, Outcomes).
		resp.Outcome = OutcomeHTTP4xx
		msg = redirectMessage(hresp)
	default:
		// A final 1xx or other 3xx (300, 304) is a client-side
		// misconfiguration, like a 4xx.
		resp.Outcome = OutcomeHTTP4xx
		msg = "unexpected HTTP status " + hresp.Status + ": " + msg
	}
	resp.Error = c.redact(msg)
}

// serverMessage extracts the message from an error body in OpenAI's shape
// ({"error":{"message":...}}), vLLM's older shape ({"object":"error",
// "message":...}) or vLLM's auth shape ({"error":"..."}), falling back to
// the trimmed body, then to the status text.
func serverMessage(code int, body []byte) string {
	var c chunk
	if scanChunk(body, &c) == nil && c.isError {
		if msg := strings.TrimSpace(c.message()); msg != "" {
			return clip(msg, maxMessage)
		}
	}
	if text := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " "); text != "" {
		return clip(text, maxMessage)
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// redact removes the API key from a message, in case a server or proxy
// echoes it back.
func (c *OpenAI) redact(s string) string {
	if c.apiKey == "" || !strings.Contains(s, c.apiKey) {
		return s
	}
	return strings.ReplaceAll(s, c.apiKey, "[api key]")
}

// appendBody appends req's JSON body to dst. It is written by hand
// because it runs once per request on the load generator's hot path.
func (c *OpenAI) appendBody(dst []byte, req *Request) ([]byte, error) {
	dst = append(dst, '{')
	if req.Model != "" {
		dst = append(dst, `"model":`...)
		dst = appendJSONString(dst, req.Model)
		dst = append(dst, ',')
	}
	if c.api == APIChat && len(req.Messages) > 0 {
		dst = append(dst, `"messages":[`...)
		for i, m := range req.Messages {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"role":`...)
			dst = appendJSONString(dst, m.Role)
			dst = append(dst, `,"content":`...)
			dst = appendJSONString(dst, m.Content)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	} else if c.api == APIChat {
		dst = append(dst, `"messages":[{"role":"user","content":`...)
		dst = appendJSONString(dst, req.Prompt)
		dst = append(dst, "}]"...)
	} else {
		dst = append(dst, `"prompt":`...)
		dst = appendJSONString(dst, req.Prompt)
	}
	if req.MaxTokens > 0 {
		dst = append(dst, `,"max_tokens":`...)
		dst = strconv.AppendInt(dst, int64(req.MaxTokens), 10)
	}
	if t := req.Temperature; t != nil {
		if math.IsNaN(*t) || math.IsInf(*t, 0) {
			return nil, fmt.Errorf("invalid request: temperature %v is not a finite number", *t)
		}
		dst = append(dst, `,"temperature":`...)
		dst = strconv.AppendFloat(dst, *t, 'g', -1, 64)
	}
	if req.Seed != nil {
		dst = append(dst, `,"seed":`...)
		dst = strconv.AppendInt(dst, *req.Seed, 10)
	}
	if req.Stream {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true}`...)
	} else {
		dst = append(dst, `,"stream":false`...)
	}
	if c.vllm {
		if req.MinTokens > 0 {
			dst = append(dst, `,"min_tokens":`...)
			dst = strconv.AppendInt(dst, int64(req.MinTokens), 10)
		}
		if req.IgnoreEOS {
			dst = append(dst, `,"ignore_eos":true`...)
		}
	}
	dst = append(dst, c.extra...)
	return append(dst, '}'), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Like encoding/json it
// replaces each invalid UTF-8 byte with U+FFFD, so a prompt with stray
// bytes still makes a valid body.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
