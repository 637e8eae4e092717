package dump

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// Every query dump sends asks VictoriaMetrics for samples up to now
// (latency_offset=1ms; VictoriaMetrics refuses 0), GET or POST.
func TestTransportAsksForTheNewestData(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Query().Get("latency_offset"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	defer srv.Close()
	client, err := api.NewClient(api.Config{Address: srv.URL, RoundTripper: Transport(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := v1.NewAPI(client).Query(t.Context(), "up", time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[len(got)-1] != "1ms" {
		t.Errorf("latency_offset sent: %q, want 1ms", got)
	}
}
