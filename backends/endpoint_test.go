package backends

import (
	"strings"
	"testing"
)

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"http://h:8000", "http://h:8000/v1"},
		{"http://h:8000/", "http://h:8000/v1"},
		{"http://h:8000/v1", "http://h:8000/v1"},
		{"http://h:8000/v1/", "http://h:8000/v1"},
		{"http://h:8001/v1", "http://h:8001/v1"}, // the POC's rstrip("/v1") made this ":800"
		{"http://h:8001", "http://h:8001/v1"},
		{"http://h:1/v1", "http://h:1/v1"},
		{"  https://api.example.com/v1//  ", "https://api.example.com/v1"},
		{"HTTP://h:8000", "http://h:8000/v1"},
		{"http://h:8000/v1/chat/completions", "http://h:8000/v1"},
		{"http://h:8000/v1/completions", "http://h:8000/v1"},
		{"http://h:8000/v1/models", "http://h:8000/v1"},
		{"http://gw/proxy/vllm", "http://gw/proxy/vllm/v1"},
		{"http://gw/proxy/vllm/v1/", "http://gw/proxy/vllm/v1"},
		{"http://h/xv1", "http://h/xv1/v1"},
		{"http://[::1]:8000", "http://[::1]:8000/v1"},
		{"http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"},
	}
	for _, tt := range tests {
		got, err := NormalizeEndpoint(tt.raw)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
}

func TestNormalizeEndpointErrors(t *testing.T) {
	tests := []struct {
		raw, wantSub string
	}{
		{"", "endpoint is empty"},
		{"   ", "endpoint is empty"},
		{"localhost:8000", `has no scheme: did you mean "http://localhost:8000"?`},
		{"ftp://h:8000", `scheme "ftp" is not supported, use http:// or https://`},
		{"unix:///tmp/vllm.sock", `scheme "unix" is not supported`},
		{"http://", "has no host"},
		{"http:///v1", "has no host"},
		{"http://h:port/v1", "is not a valid URL"},
		{"http://h:8000/v1?x=1", "remove the query or fragment"},
		{"http://user:sk-secret@h:8000/v1", "credentials in its URL"},
	}
	for _, tt := range tests {
		got, err := NormalizeEndpoint(tt.raw)
		if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v; want an error containing %q", tt.raw, got, err, tt.wantSub)
			continue
		}
		if strings.Contains(err.Error(), "sk-secret") {
			t.Errorf("error leaks the credentials: %v", err)
		}
	}
}

// TestNewPyTorchEndpoint pins the PyTorch client's reading of an address,
// which is more lenient than NormalizeEndpoint's: a missing scheme means
// http://, a query or fragment is dropped, and credentials are kept (and
// sent; Endpoint shows the password redacted).
func TestNewPyTorchEndpoint(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"http://h:8080", "http://h:8080"},
		{"  h:8080/  ", "http://h:8080"},
		{"HTTPS://h:8443/api//", "https://h:8443/api"},
		{"http://h:8080/x?q=1#frag", "http://h:8080/x"},
		{"http://user:pw@h:8080", "http://user:xxxxx@h:8080"},
		{"http://:8080", "http://:8080"},
		{"http://[::1]:8080/", "http://[::1]:8080"},
	}
	for _, tt := range tests {
		c, err := NewPyTorch(PyTorchConfig{Endpoint: tt.raw})
		if err != nil || c.Endpoint() != tt.want {
			t.Errorf("NewPyTorch(%q): endpoint %v, %v; want %q", tt.raw, c, err, tt.want)
		}
	}
	if c, err := NewPyTorch(PyTorchConfig{Endpoint: "http://user:pw@h:8080"}); err != nil || c.base != "http://user:pw@h:8080" {
		t.Errorf("the credentials are not kept for the requests: %v, %v", c, err)
	}
}

func TestNewPyTorchEndpointErrors(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"", "no endpoint: pass --endpoint http://HOST:8080"},
		{"  ", "no endpoint: pass --endpoint http://HOST:8080"},
		{"ftp://x", `endpoint "ftp://x" is not an http(s) URL`},
		{" http:// ", `endpoint " http:// " is not an http(s) URL`},
		{"http://h:port", `endpoint "http://h:port" is not an http(s) URL`},
		{"unix:///tmp/torch.sock", `endpoint "unix:///tmp/torch.sock" is not an http(s) URL`},
	}
	for _, tt := range tests {
		c, err := NewPyTorch(PyTorchConfig{Endpoint: tt.raw})
		if err == nil || err.Error() != tt.want {
			t.Errorf("NewPyTorch(%q) = %v, %v; want the error %q", tt.raw, c, err, tt.want)
		}
	}
}

func TestWithoutUserinfo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://user:sk-secret@h:8080/v1", "http://h:8080/v1"},
		{"http://user@h:8080", "http://h:8080"},
		{"http://h:8000/v1", "http://h:8000/v1"},
		{"http://h:port", "http://h:port"}, // not a URL: left as it is
		{"", ""},
	}
	for _, tt := range tests {
		if got := WithoutUserinfo(tt.in); got != tt.want {
			t.Errorf("WithoutUserinfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
