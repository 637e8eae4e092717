package energy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// labelMatcher is one PromQL label matcher: name op "value".
type labelMatcher struct {
	name, op, value string
	re              *regexp.Regexp // for =~ and !~
}

// matches tells whether a series with labels l satisfies the matcher. As
// in PromQL, a missing label is the empty string.
func (m labelMatcher) matches(l map[string]string) bool {
	v := l[m.name]
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	}
	return !m.re.MatchString(v) // !~
}

func (m labelMatcher) String() string { return m.name + m.op + strconv.Quote(m.value) }

// labelSelector is a conjunction of label matchers; the empty selector
// matches every series.
type labelSelector []labelMatcher

func (s labelSelector) matches(l map[string]string) bool {
	for _, m := range s {
		if !m.matches(l) {
			return false
		}
	}
	return true
}

func (s labelSelector) String() string {
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// labelName is a label name as the classic exposition format writes it.
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)

// parseSelector parses PromQL label matchers without braces, e.g.
// pod="vllm-0",namespace=~"llm|prod": a comma list of name op value, op
// one of = != =~ !~, value a string literal in double, single or back
// quotes. Regular expressions are anchored at both ends, as in
// Prometheus. Surrounding braces, spaces and a trailing comma are
// accepted.
func parseSelector(s string) (labelSelector, error) {
	in := strings.TrimSpace(s)
	if strings.HasPrefix(in, "{") && strings.HasSuffix(in, "}") {
		in = in[1 : len(in)-1]
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("label selector %q: %s (write matchers such as pod=\"vllm-0\",namespace=~\"llm|prod\")", s, fmt.Sprintf(format, args...))
	}
	var sel labelSelector
	for {
		in = strings.TrimSpace(in)
		if in == "" {
			return sel, nil
		}
		name := labelName.FindString(in)
		if name == "" {
			return nil, bad("expected a label name at %q", in)
		}
		in = strings.TrimSpace(in[len(name):])
		op := ""
		for _, o := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(in, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, bad("expected =, !=, =~ or !~ after %s", name)
		}
		value, rest, err := unquotePrefix(strings.TrimSpace(in[len(op):]))
		if err != nil {
			return nil, bad("%s%s: %v", name, op, err)
		}
		m := labelMatcher{name: name, op: op, value: value}
		if op == "=~" || op == "!~" {
			// Compiled alone first, for an error that quotes only the
			// user's expression; then anchored as Prometheus 3 anchors it,
			// ^(?s:…)$, where . matches a newline too.
			if _, err = regexp.Compile(value); err == nil {
				m.re, err = regexp.Compile("^(?s:" + value + ")$")
			}
			if err != nil {
				return nil, bad("%s%s%q: %v", name, op, value, err)
			}
		}
		sel = append(sel, m)
		in = strings.TrimSpace(rest)
		if in == "" {
			return sel, nil
		}
		if in[0] != ',' {
			return nil, bad("expected a comma after %s", m)
		}
		in = in[1:]
	}
}

// unquotePrefix reads the string literal at the start of s and returns
// its value and what follows it.
func unquotePrefix(s string) (value, rest string, err error) {
	if s == "" || !strings.ContainsRune("\"'`", rune(s[0])) {
		return "", "", fmt.Errorf("expected a quoted value at %q", s)
	}
	q := s[0]
	if q == '`' {
		end := strings.IndexByte(s[1:], '`')
		if end < 0 {
			return "", "", fmt.Errorf("unterminated string %s", s)
		}
		return s[1 : 1+end], s[2+end:], nil
	}
	var b strings.Builder
	for r := s[1:]; ; {
		if r == "" {
			return "", "", fmt.Errorf("unterminated string %s", s)
		}
		if r[0] == q {
			return b.String(), r[1:], nil
		}
		if r[0] >= utf8.RuneSelf {
			// Copied as they are, invalid UTF-8 included.
			_, size := utf8.DecodeRuneInString(r)
			b.WriteString(r[:size])
			r = r[size:]
			continue
		}
		c, multibyte, tail, err := strconv.UnquoteChar(r, q)
		if err != nil {
			return "", "", fmt.Errorf("bad escape in %s", s)
		}
		if multibyte {
			b.WriteRune(c)
		} else {
			b.WriteByte(byte(c)) // \xNN is a byte, not the rune U+00NN
		}
		r = tail
	}
}
