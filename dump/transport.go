package dump

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxResponseBytes bounds one Prometheus API response: a query whose
// answer is larger fails with ErrResponseTooLarge instead of taking the
// machine's memory. A week of 15 s samples of every series a run has is
// a few tens of MiB.
const MaxResponseBytes = 256 << 20

// maxErrorBody bounds what is read of a non-2xx answer, whose message is
// all dump needs from it.
const maxErrorBody = 4 << 10

// ErrResponseTooLarge is a Prometheus API response over MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response too large")

// Transport wraps base (nil: http.DefaultTransport) for the Prometheus
// API client dump uses.
//
// It asks every query for the newest data: VictoriaMetrics hides the
// last -search.latencyOffset (30 s by default) of samples unless a query
// says latency_offset=1ms, so a run that just ended would not be found.
// 1ms, not 0s: VictoriaMetrics 1.151 refuses 0 ("out of allowed range
// [1ms ...]"). Prometheus ignores the parameter.
//
// It bounds every answer: a successful one to MaxResponseBytes (beyond,
// reading it fails with ErrResponseTooLarge), an error one to its first
// 4 KiB.
func Transport(base http.RoundTripper) http.RoundTripper {
	return transport(base, MaxResponseBytes)
}

func transport(base http.RoundTripper, maxBytes int64) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/api/v1/query") || strings.HasSuffix(r.URL.Path, "/api/v1/query_range") {
			r = r.Clone(r.Context())
			q := r.URL.Query()
			if q.Get("latency_offset") == "" {
				q.Set("latency_offset", "1ms")
			}
			r.URL.RawQuery = q.Encode()
		}
		resp, err := base.RoundTrip(r)
		if err != nil {
			return resp, err
		}
		if resp.StatusCode/100 == 2 {
			resp.Body = &boundedBody{ReadCloser: resp.Body, left: maxBytes, max: maxBytes}
		} else {
			resp.Body = &boundedBody{ReadCloser: resp.Body, left: maxErrorBody, max: maxErrorBody, cut: true}
		}
		return resp, nil
	})
}

// boundedBody reads at most max bytes of a body. Past them it ends
// (cut: an error answer, whose start has the message) or fails with
// ErrResponseTooLarge.
type boundedBody struct {
	io.ReadCloser
	left, max int64
	cut       bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		if b.cut {
			return 0, io.EOF
		}
		// One more byte says whether the body ends exactly at the limit.
		var one [1]byte
		for {
			n, err := b.ReadCloser.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("%w: more than %s (dump.MaxResponseBytes)", ErrResponseTooLarge, byteSize(b.max))
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// byteSize writes n bytes in MiB when it is a whole number of them.
func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
