package loadgen

import (
	"strings"
	"testing"
)

// FuzzParsePromptLine checks that no dataset line, however malformed, makes
// the JSONL parser panic, and that what it accepts is a real prompt.
func FuzzParsePromptLine(f *testing.F) {
	for _, seed := range []string{
		`{"prompt": "hello"}`,
		`{"text": "hello", "id": 3}`,
		`{"_provenance": "x", "_commit": "y"}`,
		`{"prompt": null}`,
		`{"prompt": 1e400}`,
		`{"prompt": ["a"]}`,
		`{}`,
		`null`,
		`[{"prompt": "a"}]`,
		`"just a string"`,
		`{"prompt": "\ud800"}`,
		`{"prompt": "a"} trailing`,
		"   \t ",
		"",
	} {
		f.Add(seed, "")
		f.Add(seed, "text")
	}
	f.Fuzz(func(t *testing.T, line, field string) {
		prompt, ok, err := parsePromptLine([]byte(line), field)
		if err != nil && ok {
			t.Fatalf("parsePromptLine(%q) returned both a prompt and an error", line)
		}
		if ok && strings.TrimSpace(prompt) == "" {
			t.Fatalf("parsePromptLine(%q) accepted a blank prompt", line)
		}
		if !ok && prompt != "" {
			t.Fatalf("parsePromptLine(%q) returned prompt %q without ok", line, prompt)
		}
	})
}
