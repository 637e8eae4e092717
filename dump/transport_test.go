package dump

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/tokenwatt/tokenwatt/internal/hostile"
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

// A Prometheus answering with a vector without end (issue 16, defect 7:
// 16.8 GB RSS) fails the query once the answer passes the limit, with
// ErrResponseTooLarge, having read no more than that. Here the limit is
// 1 MiB and the server stops after 4 MiB, so that a transport that reads
// it all fails this test cheaply.
func TestTransportBoundsAnswers(t *testing.T) {
	srv := hostile.Start(t, hostile.Config{Mode: hostile.EndlessVector, Limit: 4 << 20})
	var read atomic.Int64
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DisableCompression = true
	counted := roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &read}
		}
		return resp, err
	})
	client, err := api.NewClient(api.Config{Address: srv.URL, RoundTripper: transport(counted, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = v1.NewAPI(client).Query(t.Context(), "up", time.Now())
	if !errors.Is(err, ErrResponseTooLarge) || !strings.Contains(err.Error(), "more than 1 MiB") {
		t.Fatalf("query of an answer without end: %v, want ErrResponseTooLarge naming 1 MiB", err)
	}
	if n := read.Load(); n > 1<<20+64<<10 {
		t.Errorf("read %d bytes of the answer", n)
	}

	// An error answer without end: only its start is read.
	bad := hostile.Start(t, hostile.Config{Mode: hostile.EndlessBody, Status: 500, Limit: 2 << 20})
	client, err = api.NewClient(api.Config{Address: bad.URL, RoundTripper: Transport(nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = v1.NewAPI(client).Query(t.Context(), "up", time.Now())
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || len(apiErr.Detail) > maxErrorBody || len(err.Error()) > 1024 {
		t.Fatalf("error answer without end: %T %.300v (detail of %d bytes)", err, err, len(apiErr.Detail))
	}
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
