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
