package backends

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/redact"
	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// This file holds the HTTP plumbing the OpenAI and PyTorch clients share:
// the load-generation client, t_send stamping around client.Do, and the
// classification and wording of transport failures.

const (
	// maxErrorBody bounds how much of a non-2xx body is read for its
	// message.
	maxErrorBody = 64 << 10
	// maxMessage bounds a server's error message kept in a record.
	maxMessage = 1024
	// snippetBytes is how much of a malformed payload an error quotes.
	snippetBytes = 80
)

// newLoadClient returns an HTTP client for load generation. HTTP/2 is off
// so that every in-flight request has its own connection, as with vLLM's
// usual clients; compression is off because a gzip layer would buffer
// SSE chunks and distort their arrival times; the proxy is off because
// timing through an environment proxy would measure the proxy; redirects
// are not followed (see noRedirects).
func newLoadClient() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{CheckRedirect: refuseRedirect, Transport: &http.Transport{
		DialContext:         dialer.DialContext,
		Protocols:           protocols,
		MaxIdleConnsPerHost: 1 << 14,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableCompression:  true,
		ReadBufferSize:      connBufferSize,
		WriteBufferSize:     connBufferSize,
	}}
}

// connBufferSize is each connection's read and write buffer. Every
// request in flight holds a connection, and the buffers live as long as
// it does, so at 10,000 streams each KiB here is 20 MB. Streamed chunks
// are a few hundred bytes, longer lines are assembled by the SSE reader,
// and a body longer than the write buffer goes out in one more write
// (measured: 32 KiB prompts, non-streamed, cost about 5 % more client CPU
// than with 32 KiB buffers, which took 64 KiB a connection).
const connBufferSize = 4 << 10

// sentBody is a request body that lets go of its bytes once sent:
// net/http holds a request until its response ends, and a stream's can
// last minutes, so at thousands of streams of long prompts the bodies
// would be most of the heap (16 KB prompts at 3,000 streams: 57 MB of
// 131 MB live). It is a bytes.Reader, which net/http sends in the same
// write as the headers (a reader of another type gets the headers
// flushed on their own first); sent, the WroteRequest trace, empties it.
type sentBody struct{ r bytes.Reader }

func newSentBody(body []byte) *sentBody {
	b := new(sentBody)
	b.r.Reset(body)
	return b
}

func (b *sentBody) sent(httptrace.WroteRequestInfo) { b.r.Reset(nil) }

// resendable sets hreq.GetBody, which net/http calls to send a request
// again when a kept-alive connection that the server had closed failed it
// before anything was sent, to encode the body anew with again: the
// default one would keep the first body's bytes.
func resendable(hreq *http.Request, again func() ([]byte, error)) {
	hreq.GetBody = func() (io.ReadCloser, error) {
		b, err := again()
		return io.NopCloser(bytes.NewReader(b)), err
	}
}

// ErrRedirected matches (errors.Is) the error of Models when the server
// answers with a redirect: the client does not follow it.
var ErrRedirected = errors.New("redirect not followed")

// redirectError is a redirect that was not followed; its message names
// the request and the Location.
type redirectError struct{ msg string }

func (e *redirectError) Error() string        { return e.msg }
func (e *redirectError) Is(target error) bool { return target == ErrRedirected }

// refuseRedirect is the clients' CheckRedirect: a redirect's response is
// returned as it is, never followed. net/http would send the request
// again, Authorization header included when the new URL is on the same
// host (another port too), and the answers would be counted as the
// configured endpoint's.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// noRedirects returns c, or a copy of it that follows no redirect (a
// caller's client keeps its transport and its other settings).
func noRedirects(c *http.Client) *http.Client {
	if c == nil {
		return newLoadClient()
	}
	cp := *c
	cp.CheckRedirect = refuseRedirect
	return &cp
}

// isRedirect reports whether code is a status net/http would follow.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectMessage says that hresp, a redirect, was not followed and where
// it pointed (credentials in the Location redacted, a long one clipped).
func redirectMessage(hresp *http.Response) string {
	where := "nowhere (no Location header)"
	if loc, err := hresp.Location(); err == nil {
		where = clip(redact.URL(loc), maxMessage/2)
	} else if raw := hresp.Header.Get("Location"); raw != "" {
		where = strconv.Quote(clip(redact.Raw(raw), maxMessage/2))
	}
	return "HTTP " + hresp.Status + ": redirect to " + where + " not followed (tokenwatt follows no redirect, which would take " +
		"the request and its credentials to another server; if that server is the one to measure, pass its address as --endpoint)"
}

// transportError is a failure to reach the server, with a short message
// that names the URL tried; it unwraps to the underlying network error.
type transportError struct {
	msg string
	err error
}

func (e *transportError) Error() string { return e.msg }
func (e *transportError) Unwrap() error { return e.err }

// sendStamp finds t_send: the moment the request starts going out, once
// net/http has a connection and has formatted the headers (they are
// buffered and flushed with the body). Stamping before client.Do instead
// would add the transport's hand-off to its writer goroutine, a wake-up
// on another CPU that costs up to a millisecond on small VMs, to every
// TTFT: client latency reported as server latency. Dialing is not part of
// t_send either; a new connection's setup is the client's, not the
// model's, latency. The hook runs on the transport's writer goroutine,
// hence the atomic.
type sendStamp struct {
	base   time.Time    // before client.Do; the fallback when the hook never ran
	offset atomic.Int64 // nanoseconds after base, +1 so that 0 means unset
}

func (s *sendStamp) mark() { s.offset.Store(int64(time.Since(s.base)) + 1) }

// at returns t_send: when the headers were written, or base if they
// never were (the request failed before that).
func (s *sendStamp) at() time.Time {
	if off := s.offset.Load(); off > 0 {
		return s.base.Add(time.Duration(off - 1))
	}
	return s.base
}

// roundTrip sends hreq, whose context carries sent.mark as its
// WroteHeaders trace, and stamps resp.Send with t_send. A failure before
// the response fills resp (timeout or canceled when ctx ended, else
// connect_error naming the method and URL) and returns nil.
func roundTrip(ctx context.Context, client *http.Client, hreq *http.Request, sent *sendStamp, resp *Response) *http.Response {
	sent.base = time.Now()
	resp.Send = sent.base
	hresp, err := client.Do(hreq)
	resp.Send = sent.at()
	if err == nil {
		return hresp
	}
	resp.Done = time.Now()
	if ctxErr := ctx.Err(); ctxErr != nil {
		setContextOutcome(resp, ctxErr, "before the response arrived")
		return nil
	}
	resp.Outcome = OutcomeConnectError
	resp.Error = hreq.Method + " " + redact.URL(hreq.URL) + ": " + describeTransportError(err)
	return nil
}

// httpErrorOutcome classifies a 4xx or 5xx status.
func httpErrorOutcome(code int) Outcome {
	if code >= 500 {
		return OutcomeHTTP5xx
	}
	return OutcomeHTTP4xx
}

// setContextOutcome classifies the end of ctx: a deadline is a timeout,
// anything else a cancellation.
func setContextOutcome(resp *Response, ctxErr error, when string) {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		resp.Outcome, resp.Error = OutcomeTimeout, "timed out "+when
		return
	}
	resp.Outcome, resp.Error = OutcomeCanceled, "canceled "+when
}

// describeTransportError says briefly why a server could not be reached.
func describeTransportError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset by peer before the response"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "server closed the connection before the response"
	case errors.As(err, &dnsErr):
		return "cannot resolve host: " + dnsErr.Error()
	}
	return err.Error()
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return termtext.Cut(s, n) + "..."
}

// snippet quotes the start of a malformed payload for an error message.
func snippet(b []byte) string {
	return clip(string(b), snippetBytes)
}
