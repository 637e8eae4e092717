package energy

import (
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	series := map[string]string{"pod": "vllm-0", "namespace": "llm", "quote": `a"b`, "multi": "x\ny"}
	for _, c := range []struct {
		sel   string
		want  bool
		canon string // the selector as String writes it
	}{
		{``, true, `{}`},
		{`  `, true, `{}`},
		{`pod="vllm-0"`, true, `{pod="vllm-0"}`},
		{`pod="vllm-1"`, false, `{pod="vllm-1"}`},
		{`pod="vllm-0",namespace="llm"`, true, `{pod="vllm-0",namespace="llm"}`},
		{`pod="vllm-0", namespace="prod"`, false, `{pod="vllm-0",namespace="prod"}`},
		{`{pod = 'vllm-0' ,}`, true, `{pod="vllm-0"}`},
		{"pod=`vllm-0`", true, `{pod="vllm-0"}`},
		{`pod!="vllm-0"`, false, `{pod!="vllm-0"}`},
		{`pod=~"vllm-.*"`, true, `{pod=~"vllm-.*"}`},
		{`pod=~"vllm"`, false, `{pod=~"vllm"}`}, // anchored
		{`pod=~"llm-0"`, false, `{pod=~"llm-0"}`},
		{`pod!~"vllm-[0-9]+"`, false, `{pod!~"vllm-[0-9]+"}`},
		{`pod=~"vllm-0|vllm-1"`, true, `{pod=~"vllm-0|vllm-1"}`},
		{`multi=~"x.y"`, true, `{multi=~"x.y"}`}, // . matches a newline, as in Prometheus 3
		// A missing label is the empty string.
		{`container=""`, true, `{container=""}`},
		{`container!=""`, false, `{container!=""}`},
		{`container=~".*"`, true, `{container=~".*"}`},
		{`container!~".+"`, true, `{container!~".+"}`},
		{`quote="a\"b"`, true, `{quote="a\"b"}`},
		{`quote='a"b'`, true, `{quote="a\"b"}`},
		{`pod="vllm-0",pod!="vllm-1"`, true, `{pod="vllm-0",pod!="vllm-1"}`},
	} {
		sel, err := parseSelector(c.sel)
		if err != nil {
			t.Errorf("parseSelector(%q): %v", c.sel, err)
			continue
		}
		if got := sel.matches(series); got != c.want {
			t.Errorf("%q matches %v: %v, want %v", c.sel, series, got, c.want)
		}
		if got := sel.String(); got != c.canon {
			t.Errorf("parseSelector(%q).String() = %s, want %s", c.sel, got, c.canon)
		}
	}
	for sel, want := range map[string]string{
		`pod`:              "expected =, !=, =~ or !~ after pod",
		`pod=`:             "expected a quoted value",
		`="x"`:             `expected a label name at "=\"x\""`,
		`pod="x`:           "unterminated string",
		"pod=`x":           "unterminated string",
		`pod="\q"`:         "bad escape",
		`pod="x",,`:        `expected a label name at ","`,
		`pod="x";ns="y"`:   "expected a comma",
		`pod=~"[a"`:        "missing closing ]: `[a`",
		`9pod="x"`:         "expected a label name",
		`pod<"x"`:          "expected =, !=, =~ or !~",
		`pod="x"}`:         "expected a comma",
		`{pod="x"`:         "expected a label name at \"{pod",
		`pod="x" ns="y"`:   "expected a comma after pod=\"x\"",
		`pod=~"a)|(b"`:     "unexpected )",
		`pod='x'extra="y"`: "expected a comma after pod=\"x\"",
	} {
		_, err := parseSelector(sel)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), `pod="vllm-0"`) {
			t.Errorf("parseSelector(%q): %v, want an error with %q and an example", sel, err, want)
		}
	}
}

// FuzzParseSelector: any input parses or fails without panicking, and a
// parsed selector's String parses back to the same matchers.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{`pod="vllm-0",namespace=~"llm|prod"`, `{a!~'x\'y',}`, "b=`c`", `x!="\u00e9"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := parseSelector(s)
		if err != nil {
			return
		}
		again, err := parseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("%q parsed to %s, which parses to %v, %v", s, sel, again, err)
		}
		sel.matches(map[string]string{"pod": s})
	})
}
