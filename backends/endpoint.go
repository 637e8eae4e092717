package backends

import (
	"fmt"
	"net/url"
	"strings"
)

// apiSuffixes are full endpoint URLs users paste from curl examples; they
// are trimmed back to the /v1 base they belong to.
var apiSuffixes = []string{"/v1/chat/completions", "/v1/completions", "/v1/models"}

// endpointProblem is what parseEndpoint found wrong with an address.
type endpointProblem int

const (
	endpointEmpty      endpointProblem = iota + 1 // nothing but space
	endpointNoScheme                              // no "://" (strict reading only)
	endpointUnparsable                            // url.Parse failed
	endpointNotHTTP                               // a scheme other than http or https
	endpointNoHost                                // no host
	endpointUserinfo                              // user[:password]@ (strict reading only)
	endpointQuery                                 // a query or fragment (strict reading only)
)

// endpointError is parseEndpoint's error. Its message is the one
// NormalizeEndpoint returns; the PyTorch client words its own from the
// problem.
type endpointError struct {
	problem endpointProblem
	addr    string // the address with surrounding space trimmed
	err     error  // url.Parse's error, for endpointUnparsable
	scheme  string // the scheme given, for endpointNotHTTP
}

func (e *endpointError) Error() string {
	switch e.problem {
	case endpointEmpty:
		return "endpoint is empty: want a URL such as http://localhost:8000/v1"
	case endpointNoScheme:
		return fmt.Sprintf("endpoint %q has no scheme: did you mean %q?", e.addr, "http://"+e.addr)
	case endpointUnparsable:
		return fmt.Sprintf("endpoint %q is not a valid URL: %v", e.addr, e.err)
	case endpointNotHTTP:
		return fmt.Sprintf("endpoint %q: scheme %q is not supported, use http:// or https://", e.addr, e.scheme)
	case endpointNoHost:
		return fmt.Sprintf("endpoint %q has no host: want a URL such as http://localhost:8000/v1", e.addr)
	case endpointUserinfo:
		// Credentials in the URL would end up in records and error
		// messages, so the address itself is not quoted.
		return "endpoint has credentials in its URL: remove them and pass the key with --api-key"
	case endpointQuery:
		return fmt.Sprintf("endpoint %q: remove the query or fragment; want a URL such as http://localhost:8000/v1", e.addr)
	}
	return fmt.Sprintf("endpoint %q is not valid", e.addr)
}

func (e *endpointError) Unwrap() error { return e.err }

// parseEndpoint is the one parser of a server address, for both clients.
// Surrounding space is trimmed, and the rest must be an http or https URL
// with a host.
//
// The strict reading (the OpenAI client's) also rejects an address
// without a scheme, a host given only as a port (http://:8000),
// credentials, a query and a fragment. The lenient reading (the PyTorch
// client's, lenient true) takes an address without "://" as http://,
// keeps a bare port and credentials, and drops the query and fragment.
// Neither touches the path.
func parseEndpoint(raw string, lenient bool) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, &endpointError{problem: endpointEmpty, addr: s}
	}
	if !strings.Contains(s, "://") {
		if !lenient {
			return nil, &endpointError{problem: endpointNoScheme, addr: s}
		}
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, &endpointError{problem: endpointUnparsable, addr: s, err: err}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, &endpointError{problem: endpointNotHTTP, addr: s, scheme: u.Scheme}
	}
	if u.Host == "" || !lenient && u.Hostname() == "" {
		return nil, &endpointError{problem: endpointNoHost, addr: s}
	}
	if lenient {
		u.RawQuery, u.Fragment = "", ""
		return u, nil
	}
	if u.User != nil {
		return nil, &endpointError{problem: endpointUserinfo, addr: s}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, &endpointError{problem: endpointQuery, addr: s}
	}
	return u, nil
}

// NormalizeEndpoint turns any usual spelling of an OpenAI-compatible
// server's address (http://h:8000, http://h:8000/, http://h:8000/v1,
// http://h:8000/v1/, or a full .../v1/chat/completions URL) into its API
// base URL: scheme, host and path ending in "/v1", without a trailing
// slash. A path prefix before /v1 (a proxy's route) is kept.
//
// It works on path segments, not characters, so "http://h:8001/v1" stays
// on port 8001 (the Python POC's rstrip("/v1") made it ":800").
func NormalizeEndpoint(raw string) (string, error) {
	u, err := parseEndpoint(raw, false)
	if err != nil {
		return "", err
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	for _, suffix := range apiSuffixes {
		if strings.HasSuffix(path, suffix) {
			path = strings.TrimSuffix(path, suffix) + "/v1"
			break
		}
	}
	if !strings.HasSuffix(path, "/v1") {
		path += "/v1"
	}
	return u.Scheme + "://" + u.Host + path, nil
}

// WithoutUserinfo drops any user:password from an endpoint URL, for
// output that is shared (the summary), where no secret may be written.
// An address that does not parse as a URL is returned as it is.
func WithoutUserinfo(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.User == nil {
		return endpoint
	}
	u.User = nil
	return u.String()
}
