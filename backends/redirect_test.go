package backends

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// elsewhere is the server a redirect points to: it answers everything
// and records what it was sent.
type elsewhere struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string // method, path and Authorization of each request
}

func newElsewhere(t *testing.T) *elsewhere {
	t.Helper()
	e := &elsewhere{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.requests = append(e.requests, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		e.mu.Unlock()
		io.WriteString(w, `{"status": "Healthy", "data": [{"id": "m"}], "models": [{"modelName": "m"}]}`)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *elsewhere) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.requests...)
}

// redirector answers the paths in serve itself and redirects every other
// request to target + its path with status code.
func redirector(t *testing.T, code int, target string, serve map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if body, ok := serve[r.URL.Path]; ok {
			io.WriteString(w, body)
			return
		}
		http.Redirect(w, r, target+r.URL.Path, code)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRedirectsAreNotFollowed: a redirect, to another port of the same
// host, is never followed: not for a generation request (it is recorded
// as http_4xx with its status and a message naming the Location), not for
// the model check (an error naming the Location, matching ErrRedirected),
// with the default client or a caller's. The other server sees nothing,
// the API key least of all.
func TestRedirectsAreNotFollowed(t *testing.T) {
	const key = "sk-do-not-forward-2718"
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		other := newElsewhere(t)
		wantLoc := "redirect to " + other.URL
		check := func(what string, r *Response) {
			t.Helper()
			if r.Outcome != OutcomeHTTP4xx || r.HTTPStatus != code || !strings.Contains(r.Error, wantLoc) || !strings.Contains(r.Error, "not followed") {
				t.Errorf("%d %s: outcome %s status %d error %q, want http_4xx, %d and an error naming %s",
					code, what, r.Outcome, r.HTTPStatus, r.Error, code, other.URL)
			}
		}
		checkErr := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ErrRedirected) || !strings.Contains(err.Error(), wantLoc) {
				t.Errorf("%d %s: %v, want ErrRedirected naming %s", code, what, err, other.URL)
			}
		}

		gen := redirector(t, code, other.URL, map[string]string{"/v1/models": `{"data": [{"id": "m"}]}`})
		for _, client := range []*http.Client{nil, {}} {
			c := newTestClient(t, gen.URL, OpenAIConfig{APIKey: key, HTTPClient: client})
			if _, err := c.Models(context.Background()); err != nil {
				t.Fatalf("Models: %v", err)
			}
			check("openai stream", do(c, context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 2, Stream: true}))
			check("openai whole", do(c, context.Background(), &Request{Model: "m", Prompt: "hi", MaxTokens: 2}))
			models := redirector(t, code, other.URL, nil)
			_, err := newTestClient(t, models.URL, OpenAIConfig{APIKey: key, HTTPClient: client}).Models(context.Background())
			checkErr("openai models", err)
		}

		torch := redirector(t, code, other.URL, map[string]string{"/ping": `{"status": "Healthy"}`, "/models": `{"models": [{"modelName": "m"}]}`})
		tc, err := NewPyTorch(PyTorchConfig{Endpoint: torch.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.Models(context.Background()); err != nil {
			t.Fatalf("PyTorch Models: %v", err)
		}
		check("pytorch stream", torchDo(t, tc, "m"))
		for _, path := range []string{"/ping", "/models"} {
			serve := map[string]string{"/ping": `{"status": "Healthy"}`}
			delete(serve, path)
			tc, err := NewPyTorch(PyTorchConfig{Endpoint: redirector(t, code, other.URL, serve).URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tc.Models(context.Background())
			checkErr("pytorch "+path, err)
		}

		if seen := other.seen(); len(seen) > 0 {
			t.Errorf("%d: the other server was sent %q", code, seen)
		}
	}
}

// TestRedirectLocationIsRedacted: a relative Location is named as the URL
// it resolves to; credentials in a Location are not repeated.
func TestRedirectLocationIsRedacted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc := "/moved"
		if r.URL.Path == "/v1/completions" {
			loc = "http://u:pw-from-server@other.invalid/v1"
		}
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, OpenAIConfig{})
	if r := do(c, context.Background(), &Request{Prompt: "hi", Stream: true}); !strings.Contains(r.Error, "redirect to "+srv.URL+"/moved ") {
		t.Errorf("relative Location: %q", r.Error)
	}
	c = newTestClient(t, srv.URL, OpenAIConfig{API: APICompletions})
	if r := do(c, context.Background(), &Request{Prompt: "hi", Stream: true}); strings.Contains(r.Error, "pw-from-server") ||
		!strings.Contains(r.Error, "u:xxxxx@other.invalid") {
		t.Errorf("Location with credentials: %q", r.Error)
	}
}
