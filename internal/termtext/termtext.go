// Package termtext makes text that came from elsewhere (a server's model
// names and error messages, a remote exporter's labels) safe to print on
// a terminal: its control characters cannot move the cursor, clear the
// screen, recolour what follows or break a line or a table's alignment.
package termtext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with each control character (C0, DEL, C1: newlines,
// tabs, ESC and the rest) written as Go writes it in a quoted string
// (\n, \t, \x1b, \u009b) and each byte of invalid UTF-8 as \xNN. Other
// characters, quotes and backslashes included, are left as they are:
// this is for reading, not for parsing back. A string with nothing to
// escape is returned as is.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && w == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case unicode.IsControl(r):
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+w])
		}
		i += w
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			// Multi-byte characters are rare in what this sees; check
			// them properly on the slow path.
			return c < 0x80 || !utf8.ValidString(s[i:]) || strings.ContainsFunc(s[i:], unicode.IsControl)
		}
	}
	return false
}

// Cut returns the longest start of s that is at most n bytes long and
// does not split a UTF-8 character: s itself when it fits. Bounded
// copies of text from elsewhere (answers, finish reasons, messages,
// label values) are cut with it.
func Cut[T ~string | ~[]byte](s T, n int) T {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// LabelValue is s as a Prometheus label value of at most max bytes:
// valid UTF-8 (invalid bytes become U+FFFD), and when longer, as many of
// its first bytes as fit, cut at a character boundary, followed by "…"
// (3 bytes). The exporter's labels and energy's GPU labels follow it, so
// that the same text gives the same label in both.
func LabelValue(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	const ellipsis = "…"
	return Cut(s, max-len(ellipsis)) + ellipsis
}
