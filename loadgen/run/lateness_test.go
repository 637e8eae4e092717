package run

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/energy"
)

// TestClockSkewWarnedOnce: stamps from a server whose clock is an hour
// ahead give no client lateness (null in report.json) but still their
// timer lateness, and the log says once why.
func TestClockSkewWarnedOnce(t *testing.T) {
	const tokens = 3
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			fmt.Fprint(w, `{"object":"list","data":[{"id":"m","object":"model"}]}`)
		case "/v1/chat/completions":
			w.Header().Set("Content-Type", "text/event-stream")
			ahead := time.Now().Add(time.Hour).UnixNano()
			for i := range tokens {
				fmt.Fprintf(w, "%s%d 42\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d\"}}]}\n\n", backends.StampPrefix, ahead, i)
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var log syncBuffer
	cfg := testConfig(t, 4)
	cfg.Sim, cfg.Energy = nil, energy.SourceNone
	cfg.Scenario.Endpoint, cfg.Scenario.Model = srv.URL+"/v1", "m"
	cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 4 {
		t.Fatalf("%d of 4 ok\n%s", res.OK, log.String())
	}
	c := res.Report.Client
	if c.LatenessS != nil || c.ServerTimerLatenessS == nil || c.ServerTimerLatenessS.Count != 4*tokens || c.ServerTimerLatenessS.Max != 42e-9 {
		t.Errorf("client.lateness_s %+v, server_timer_lateness_s %+v; want null and %d timer latenesses", c.LatenessS, c.ServerTimerLatenessS, 4*tokens)
	}
	if n := strings.Count(log.String(), "its clock and this host's disagree"); n != 1 {
		t.Errorf("%d clock warnings, want 1:\n%s", n, log.String())
	}
}
