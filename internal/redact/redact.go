// Package redact keeps credentials in URLs out of messages, logs and
// files, while the requests themselves still send them.
package redact

import (
	"net/url"
	"strings"
)

// URL is u as messages show it: a password becomes xxxxx (as
// url.URL.Redacted writes it), and so does a user name given without a
// password, which is then usually a token.
func URL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	c := *u
	c.User = url.User("xxxxx")
	return c.String()
}

// Raw hides the credentials of an address that may not parse as a URL,
// for the message that says so: everything between the scheme's "://" (or
// the start) and the last "@" before any query or fragment becomes xxxxx.
// It errs on hiding too much: a password may hold an unescaped "/".
func Raw(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "?#"); j >= 0 {
		end = start + j
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		return raw[:start] + "xxxxx" + raw[start+at:]
	}
	return raw
}

// String is a URL given as text, as messages show it: URL of it when it
// parses, Raw of it otherwise.
func String(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Raw(raw)
	}
	if u.User == nil && u.Host == "" && strings.Contains(raw, "@") {
		// Not a URL with a host ("user:pass@host"): no User was parsed.
		return Raw(raw)
	}
	return URL(u)
}
