package backends

import (
	"fmt"
	"net/url"
	"strings"
)

// apiSuffixes are full endpoint URLs users paste from curl examples; they
// are trimmed back to the /v1 base they belong to.
var apiSuffixes = []string{"/v1/chat/completions", "/v1/completions", "/v1/models"}

// NormalizeEndpoint turns any usual spelling of an OpenAI-compatible
// server's address (http://h:8000, http://h:8000/, http://h:8000/v1,
// http://h:8000/v1/, or a full .../v1/chat/completions URL) into its API
// base URL: scheme, host and path ending in "/v1", without a trailing
// slash. A path prefix before /v1 (a proxy's route) is kept.
//
// It works on path segments, not characters, so "http://h:8001/v1" stays
// on port 8001 (the Python POC's rstrip("/v1") made it ":800").
func NormalizeEndpoint(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("endpoint is empty: want a URL such as http://localhost:8000/v1")
	}
	if !strings.Contains(s, "://") {
		return "", fmt.Errorf("endpoint %q has no scheme: did you mean %q?", s, "http://"+s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("endpoint %q is not a valid URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q: scheme %q is not supported, use http:// or https://", s, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("endpoint %q has no host: want a URL such as http://localhost:8000/v1", s)
	}
	if u.User != nil {
		// Credentials in the URL would end up in records and error messages.
		return "", fmt.Errorf("endpoint has credentials in its URL: remove them and pass the key with --api-key")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("endpoint %q: remove the query or fragment; want a URL such as http://localhost:8000/v1", s)
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
