package backends

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

// stall blocks a handler until the client goes away. The server notices
// a closed connection only once the request body has been read.
func stall(r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestDoConnectionRefused(t *testing.T) {
	addr := refusedAddr(t)
	c := newTestClient(t, "http://"+addr+"/v1/", OpenAIConfig{})
	resp := do(c, context.Background(), &Request{Prompt: "x", Stream: true})
	want := "POST http://" + addr + "/v1/chat/completions: connection refused"
	if resp.Outcome != OutcomeConnectError || resp.Error != want || resp.HTTPStatus != 0 || resp.OutputTokens != -1 {
		t.Errorf("outcome=%s error=%q status=%d output=%d, want connect_error %q", resp.Outcome, resp.Error,
			resp.HTTPStatus, resp.OutputTokens, want)
	}
}
