package dataset

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

// FuzzReaders feeds arbitrary file contents to the JSONL, CSV and
// text readers: none may panic, and every prompt they return is non-blank
// and within the limit.
func FuzzReaders(f *testing.F) {
	for _, seed := range []string{
		"{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n",
		"text,id\nhello,1\n\"quoted, with comma\",2\n",
		"prompt\n\"unterminated\n",
		"a\nb\r\n\n  \nc",
		"\ufeffprompt,x\nhi,1\n",
		"text\n" + strings.Repeat("x", 1000) + "\n",
		"",
	} {
		f.Add(seed, "", 0)
		f.Add(seed, "text", 2)
	}
	f.Fuzz(func(t *testing.T, data, field string, limit int) {
		if limit < 0 || limit > 1000 {
			return
		}
		for name, read := range map[string]func() ([]string, error){
			"jsonl": func() ([]string, error) { return readJSONLines(strings.NewReader(data), "f.jsonl", field, limit) },
			"csv":   func() ([]string, error) { return readCSV(strings.NewReader(data), "f.csv", field, limit) },
			"txt":   func() ([]string, error) { return readTextLines(strings.NewReader(data), "f.txt", limit) },
		} {
			prompts, err := read()
			if err != nil {
				continue
			}
			if limit > 0 && len(prompts) > limit {
				t.Fatalf("%s: %d prompts over limit %d", name, len(prompts), limit)
			}
			for _, p := range prompts {
				if strings.TrimSpace(p) == "" {
					t.Fatalf("%s: blank prompt from %q", name, data)
				}
			}
		}
	})
}
