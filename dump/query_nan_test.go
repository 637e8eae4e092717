package dump

import (
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// VictoriaMetrics answers a range selector with the staleness markers it
// stored (NaN samples); Prometheus never returns them. raw drops them, so
// a counter's increase and a run's request count stay numbers.
func TestRawDropsStalenessMarkers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"tokenwatt_requests_total","outcome":"ok"},
			 "values":[[1000,"0"],[1015,"7"],[1030,"NaN"],[1045,"12"],[1060,"NaN"]]}]}}`))
	}))
	defer srv.Close()
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	q := &querier{api: v1.NewAPI(client), log: slog.New(slog.DiscardHandler)}
	got, err := q.raw(t.Context(), "tokenwatt_requests_total", time.Unix(990, 0), time.Unix(1060, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Samples) != 3 {
		t.Fatalf("series %+v; want one with 3 samples", got)
	}
	for _, p := range got[0].Samples {
		if math.IsNaN(float64(p.Value)) {
			t.Fatalf("a NaN sample survived: %+v", got[0].Samples)
		}
	}
	inc, _, _, _ := counterIncrease(got[0].Samples, time.Unix(990, 0), time.Unix(1060, 0))
	if inc != 12 {
		t.Errorf("increase %v, want 12", inc)
	}
}
