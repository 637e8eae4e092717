package dump

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// A quantile inside the native zero bucket is 0, not 2.9e-39; anything
// outside it, however small, is kept.
func TestInZeroBucket(t *testing.T) {
	if nativeZeroThreshold != prometheus.DefNativeHistogramZeroThreshold {
		t.Fatalf("nativeZeroThreshold %g, client_golang's %g", nativeZeroThreshold, prometheus.DefNativeHistogramZeroThreshold)
	}
	for _, tc := range []struct{ in, want float64 }{
		{2.8797e-39, 0}, {-2.8797e-39, 0}, {0, 0}, {1e-30, 1e-30}, {0.0005, 0.0005},
	} {
		if got := inZeroBucket(tc.in); got != tc.want {
			t.Errorf("inZeroBucket(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
	if got := inZeroBucket(math.NaN()); !math.IsNaN(got) {
		t.Errorf("NaN became %g", got)
	}
}

// Classic buckets cannot tell 0 from a value inside the first bucket:
// histogram_quantile interpolates p99 of all-zero observations as 0.99 of
// that bucket's width. A sum of 0 says every observation was 0, so the
// quantiles are 0; any other sum leaves them as the buckets give them.
func TestClassicAllZeroQuantiles(t *testing.T) {
	for _, tc := range []struct {
		sum  string
		want []float64 // p50, p90, p99, mean
	}{
		{"0", []float64{0, 0, 0, 0}},
		{"0.000002", []float64{5e-5, 9e-5, 9.9e-5, 2e-6 / 4}},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.FormValue("query")
			val := ""
			switch {
			case strings.Contains(q, "_sum"): // _sum / _count, 4 observations
				f, _ := strconv.ParseFloat(tc.sum, 64)
				val = strconv.FormatFloat(f/4, 'g', -1, 64)
			case !strings.Contains(q, "_bucket"): // no native histogram
			case strings.HasPrefix(q, "histogram_quantile(0.5,"):
				val = "0.00005"
			case strings.HasPrefix(q, "histogram_quantile(0.9,"):
				val = "0.00009"
			case strings.HasPrefix(q, "histogram_quantile(0.99,"):
				val = "0.000099"
			}
			w.Header().Set("Content-Type", "application/json")
			if val == "" {
				_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
				return
			}
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1000,%q]}]}}`, val)
		}))
		client, err := api.NewClient(api.Config{Address: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		h := &histReader{q: &querier{api: v1.NewAPI(client), log: slog.New(slog.DiscardHandler)}, sel: `run_id="r"`,
			start: time.Unix(900, 0), end: time.Unix(1000, 0), readTo: time.Unix(1000, 0)}
		st, err := h.read(t.Context(), "tokenwatt_request_schedule_lag_seconds")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, got := range []*float64{st.p50, st.p90, st.p99, st.mean} {
			if got == nil || math.Abs(*got-tc.want[i]) > 1e-12 {
				t.Errorf("sum %s: stat %d = %v, want %v", tc.sum, i, deref(got), tc.want[i])
			}
		}
		if len(h.classic) != 1 {
			t.Errorf("sum %s: classic %v, want the metric noted", tc.sum, h.classic)
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
