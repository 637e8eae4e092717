package dump

import (
	"net/http"
	"strings"
)

// Transport wraps base (nil: http.DefaultTransport) for the Prometheus
// API client dump uses. It asks every query for the newest data:
// VictoriaMetrics hides the last -search.latencyOffset (30 s by default)
// of samples unless a query says latency_offset=1ms, so a run that just
// ended would not be found. 1ms, not 0s: VictoriaMetrics 1.151 refuses
// 0 ("out of allowed range [1ms ...]"). Prometheus ignores the parameter.
func Transport(base http.RoundTripper) http.RoundTripper {
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
		return base.RoundTrip(r)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
