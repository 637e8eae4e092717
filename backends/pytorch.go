package backends

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/redact"
)

// PyTorchConfig configures a client for a PyTorch model server speaking
// TorchServe's inference API.
type PyTorchConfig struct {
	// Endpoint is the inference API's base URL, e.g. http://host:8080
	// (TorchServe's default inference port). An address without a scheme
	// is taken as http://; a query, a fragment and a trailing slash are
	// dropped.
	Endpoint string
	// ExtraBody is added to every request body; a key the client sets
	// itself (prompt, max_new_tokens, min_new_tokens, temperature, seed,
	// stream) is an error.
	ExtraBody ExtraBody
	// HTTPClient sends the requests; nil means the load-generation client
	// the OpenAI backend uses.
	HTTPClient *http.Client
}

// PyTorch is a client for TorchServe's inference API as tokenwatt's
// reference server (backends/pytorch/server.py) and TorchServe streaming
// handlers speak it:
//
//   - GET /ping answers {"status": "Healthy"};
//   - GET /models lists the models (TorchServe's management API shape,
//     {"models": [{"modelName": ...}]}), where the server offers it;
//   - POST /predictions/{model} takes a JSON body (prompt, max_new_tokens,
//     min_new_tokens, temperature, seed) and answers with HTTP chunked
//     transfer: either newline-delimited JSON, {"text": ...} per token and
//     a last object with usage {prompt_tokens, completion_tokens} and the
//     finish_reason ("stop" at the end-of-sequence token, "length" at
//     max_new_tokens), or plain text, one chunk per token (a generic
//     TorchServe handler), counted as one token per chunk read
//     (tokens_source "chunks"), without a finish reason.
//
// Errors are TorchServe's JSON bodies ({"code", "type", "message"}), on a
// non-2xx status or as an NDJSON line mid-stream. It is safe for
// concurrent use.
type PyTorch struct {
	base   string // requests go here, credentials included
	shown  string // base as Endpoint and messages show it, credentials redacted
	extra  []byte // ExtraBody's members, each after a comma
	client *http.Client
	simulatedMark
}

// ErrModelsNotListed is returned by PyTorch.Models when the server answers
// /ping but does not list its models (a TorchServe inference port, whose
// model list is on the management port): the model must then be named.
var ErrModelsNotListed = errors.New("the server does not list its models (GET /models); name the model with --model")

// NewPyTorch returns a client for the server cfg describes.
func NewPyTorch(cfg PyTorchConfig) (*PyTorch, error) {
	u, err := parseEndpoint(cfg.Endpoint, true)
	var ee *endpointError
	switch {
	case errors.As(err, &ee) && ee.problem == endpointEmpty:
		return nil, errors.New("no endpoint: pass --endpoint http://HOST:8080")
	case err != nil:
		return nil, fmt.Errorf("endpoint %q is not an http(s) URL", redact.Raw(cfg.Endpoint))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	extra, err := cfg.ExtraBody.encode(reservedPyTorch)
	if err != nil {
		return nil, err
	}
	c := &PyTorch{base: u.String(), shown: redact.URL(u), extra: extra, client: noRedirects(cfg.HTTPClient)}
	return c, nil
}

// Name returns "pytorch".
func (c *PyTorch) Name() string { return "pytorch" }

// Endpoint returns the inference API's base URL, with any password in it
// redacted (the requests still send it).
func (c *PyTorch) Endpoint() string { return c.shown }

// Models checks GET /ping and lists the models from GET /models. A server
// that is healthy but lists no models gives ErrModelsNotListed.
func (c *PyTorch) Models(ctx context.Context) ([]string, error) {
	status, body, err := c.get(ctx, "/ping")
	if err != nil {
		return nil, err
	}
	var ping struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(body, &ping)
	if status != http.StatusOK || !strings.EqualFold(ping.Status, "Healthy") {
		return nil, fmt.Errorf("GET %s/ping: HTTP %d, %s (the server is not healthy)", c.shown, status, torchMessage(status, body))
	}
	status, body, err = c.get(ctx, "/models")
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		return nil, ErrModelsNotListed
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET %s/models: HTTP %d, %s", c.shown, status, torchMessage(status, body))
	}
	var list struct {
		Models []struct {
			ModelName string `json:"modelName"`
		} `json:"models"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s/models: not a TorchServe model list (%v): %q", c.shown, err, snippet(body))
	}
	names := make([]string, 0, len(list.Models))
	for _, m := range list.Models {
		names = append(names, m.ModelName)
	}
	return names, nil
}

func (c *PyTorch) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s%s: cannot build the request", c.shown, path) // err quotes the URL in clear
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s%s: %s", c.shown, path, describeTransportError(err))
	}
	defer resp.Body.Close()
	c.note(resp.Header)
	if isRedirect(resp.StatusCode) {
		return 0, nil, &redirectError{"GET " + c.shown + path + ": " + redirectMessage(resp)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return 0, nil, fmt.Errorf("GET %s%s: reading the answer: %v", c.shown, path, err)
	}
	return resp.StatusCode, body, nil
}

// torchRequest is the body of POST /predictions/{model}.
type torchRequest struct {
	Prompt       string   `json:"prompt"`
	MaxNewTokens int      `json:"max_new_tokens,omitempty"`
	MinNewTokens int      `json:"min_new_tokens,omitempty"`
	Temperature  *float64 `json:"temperature,omitempty"`
	Seed         *int64   `json:"seed,omitempty"`
	Stream       bool     `json:"stream"`
}

// Do sends req to POST /predictions/{model} and measures it into resp
// (see Backend.Do). IgnoreEOS is expressed as min_new_tokens =
// max_new_tokens, the AIEnergyScore way.
func (c *PyTorch) Do(ctx context.Context, req *Request, resp *Response) {
	tr := torchRequest{Prompt: req.Prompt, MaxNewTokens: req.MaxTokens, MinNewTokens: req.MinTokens,
		Temperature: req.Temperature, Seed: req.Seed, Stream: req.Stream}
	if req.IgnoreEOS && req.MaxTokens > 0 {
		tr.MinNewTokens = req.MaxTokens
	}
	body, err := json.Marshal(tr)
	if err != nil {
		resp.Outcome, resp.Error = OutcomeHTTP4xx, "encode request: "+err.Error()
		return
	}
	if len(c.extra) > 0 {
		body = append(append(body[:len(body)-1], c.extra...), '}')
	}
	target := c.base + "/predictions/" + url.PathEscape(req.Model)
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent sendStamp
	reqCtx = httptrace.WithClientTrace(reqCtx, &httptrace.ClientTrace{WroteHeaders: sent.mark})
	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// err would quote the URL in clear.
		resp.Outcome, resp.Error = OutcomeConnectError, "POST "+c.shown+"/predictions/"+url.PathEscape(req.Model)+": cannot build the request"
		return
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/x-ndjson, application/json, text/plain")
	hresp := roundTrip(ctx, c.client, hreq, &sent, resp)
	if hresp == nil {
		return
	}
	defer hresp.Body.Close()
	resp.HTTPStatus = hresp.StatusCode
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(hresp.Body, maxErrorBody))
		resp.Done = time.Now()
		resp.Outcome = httpErrorOutcome(hresp.StatusCode)
		resp.Error = torchMessage(hresp.StatusCode, b)
		if isRedirect(hresp.StatusCode) {
			resp.Error = redirectMessage(hresp) // outcome http_4xx, as the OpenAI client's
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(hresp.Header.Get("Content-Type"))
	switch {
	case mt == "application/x-ndjson" || mt == "application/json" || mt == "application/jsonl":
		// A whole (non-streamed) answer is one line; it may be as long
		// as an OpenAI server's whole response.
		maxLine := MaxStreamLine
		if !req.Stream {
			maxLine = maxResponseBody
		}
		readNDJSON(ctx, hresp.Body, resp, req.KeepText, maxLine)
	default:
		readTextChunks(ctx, hresp.Body, resp, req.KeepText)
	}
	if !req.Stream {
		wholeResponse(resp)
	}
	checkOutputTokens(resp, req.MaxTokens)
}

// wholeResponse makes what a reader measured of a non-streaming response
// what readWhole measures: the body is one chunk, read at t_done; there is
// no first-token time and no inter-token gap, so TTFT, ITL and TPOT stay
// unmeasured. The text-carrying lines still count for the token count
// when the server sent no usage.
func wholeResponse(resp *Response) {
	resp.First = time.Time{}
	resp.ITL, resp.MoreITL = resp.ITL[:0], nil
	if resp.Outcome == OutcomeOK {
		resp.Last = resp.Done
	}
}

// textChunk records a text-carrying chunk arriving at now: t_first for
// the first, an inter-token gap for each later one. readStream, the SSE
// hot path, keeps its own copy: this is over the inliner's budget.
func (r *Response) textChunk(now time.Time) {
	if r.TextChunks == 0 {
		r.First = now
	} else {
		r.AddGap(now.Sub(r.Last))
	}
	r.Last = now
	r.TextChunks++
}

// torchLine is one NDJSON line: a token's text, the final usage and
// finish reason, or an error in TorchServe's shape.
type torchLine struct {
	Text         *string `json:"text"`
	FinishReason *string `json:"finish_reason"`
	Usage        *struct {
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens *int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error   json.RawMessage `json:"error"`
	Code    int             `json:"code"`
	Type    string          `json:"type"`
	Message string          `json:"message"`
}

func (l *torchLine) errorMessage() string {
	switch {
	case len(l.Error) > 0 && string(l.Error) != "null":
		var s string
		if json.Unmarshal(l.Error, &s) == nil {
			return s
		}
		var obj struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(l.Error, &obj) == nil && obj.Message != "" {
			return obj.Message
		}
		return string(l.Error)
	case l.Message != "" && (l.Code != 0 || l.Type != ""):
		return strings.TrimSpace(l.Type + ": " + l.Message)
	}
	return ""
}

// readNDJSON reads a newline-delimited JSON stream: a text-carrying line
// is a token arriving (its text kept with keepText); the stream ends at
// EOF. A line's finish_reason, when a string, is the response's. A line
// longer than maxLine bytes ends it as a stream_error.
func readNDJSON(ctx context.Context, body io.Reader, resp *Response, keepText bool, maxLine int) {
	var prompt, completion int64 = -1, -1
	defer func() { setTokens(resp, prompt, completion) }()
	br := bufio.NewReaderSize(body, 16<<10)
	var long []byte
	lines := 0
	for {
		line, err := readLine(br, &long, maxLine)
		now := time.Now()
		if err != nil {
			resp.Done = now
			switch {
			case err == errLineTooLong:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("NDJSON line %d longer than %s (the limit of one line)", lines+1, byteSize(maxLine))
			case err == io.EOF:
				resp.Outcome = OutcomeOK
			case ctx.Err() != nil:
				setContextOutcome(resp, ctx.Err(), fmt.Sprintf("after %d lines", lines))
			default:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("stream cut after %d lines: %v", lines, err)
			}
			return
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			continue
		}
		lines++
		var l torchLine
		if jerr := json.Unmarshal(trimmed, &l); jerr != nil {
			resp.Done, resp.Outcome = now, OutcomeStreamError
			resp.Error = fmt.Sprintf("malformed NDJSON line %d (%v): %q", lines, jerr, snippet(trimmed))
			return
		}
		if msg := l.errorMessage(); msg != "" {
			resp.Done, resp.Outcome = now, OutcomeStreamError
			resp.Error = fmt.Sprintf("server error in line %d: %s", lines, clip(msg, maxMessage))
			return
		}
		if l.Text != nil && *l.Text != "" {
			resp.textChunk(now)
			if keepText {
				resp.keepText([]byte(*l.Text))
			}
		}
		if l.FinishReason != nil {
			resp.setFinishReason(*l.FinishReason)
		}
		if l.Usage != nil {
			if l.Usage.PromptTokens != nil {
				prompt = *l.Usage.PromptTokens
			}
			if l.Usage.CompletionTokens != nil {
				completion = *l.Usage.CompletionTokens
			}
		}
	}
}

// byteSize writes n bytes as KiB or MiB when it is a whole number of them.
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readTextChunks reads a plain-text chunked stream: every read that
// returns text is one token (the text kept with keepText). net/http
// hides chunk boundaries, so chunks that arrive together count once;
// servers that flush one chunk per token with any gap between them are
// counted exactly. Such a stream has no finish reason.
func readTextChunks(ctx context.Context, body io.Reader, resp *Response, keepText bool) {
	defer func() { setTokens(resp, -1, -1) }()
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		now := time.Now()
		if n > 0 && len(bytes.TrimSpace(buf[:n])) > 0 {
			resp.textChunk(now)
		}
		if n > 0 && keepText {
			resp.keepText(buf[:n])
		}
		if err != nil {
			resp.Done = now
			switch {
			case err == io.EOF:
				resp.Outcome = OutcomeOK
			case ctx.Err() != nil:
				setContextOutcome(resp, ctx.Err(), fmt.Sprintf("after %d chunks", resp.TextChunks))
			default:
				resp.Outcome = OutcomeStreamError
				resp.Error = fmt.Sprintf("stream cut after %d chunks: %v", resp.TextChunks, err)
			}
			return
		}
	}
}

// torchMessage is the message of a TorchServe error body
// ({"code": 404, "type": "ModelNotFoundException", "message": "..."}),
// else the trimmed body, else the status text.
func torchMessage(status int, body []byte) string {
	var l torchLine
	if json.Unmarshal(body, &l) == nil {
		if msg := l.errorMessage(); msg != "" {
			return clip(msg, maxMessage)
		}
	}
	if text := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " "); text != "" {
		return clip(text, maxMessage)
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}
