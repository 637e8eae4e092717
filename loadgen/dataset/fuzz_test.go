package dataset

import (
	"reflect"
	"strings"
	"testing"
)

// checkPrompt fails t unless p is a prompt a request can send: non-blank
// text; for a conversation, messages that end with a non-blank user turn
// and are a prefix of the conversation; a positive or no output length.
func checkPrompt(t *testing.T, input string, p *Prompt) {
	t.Helper()
	if strings.TrimSpace(p.Text) == "" {
		t.Fatalf("blank prompt %+v from %q", p, input)
	}
	if p.MaxTokens < 0 || (p.MaxTokens == 0) != (p.lengthFrom == lengthNone) {
		t.Fatalf("output length %d (from %d) from %q", p.MaxTokens, p.lengthFrom, input)
	}
	if p.Messages == nil {
		return
	}
	last := p.Messages[len(p.Messages)-1]
	if last.Role != RoleUser || strings.TrimSpace(last.Content) == "" || len(p.Conversation) < len(p.Messages) ||
		!reflect.DeepEqual(p.Conversation[:len(p.Messages)], p.Messages) {
		t.Fatalf("messages %+v of conversation %+v from %q", p.Messages, p.Conversation, input)
	}
}

// FuzzParseLine checks that no dataset line, however malformed, makes
// the JSONL parser panic, and that what it accepts is a real prompt.
func FuzzParseLine(f *testing.F) {
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
		`{"prompt": "a", "output_len": 7}`,
		`{"prompt": "a", "max_tokens": 1.5}`,
		`{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "u"}]}, {"role": "assistant", "content": "a b"}]}`,
		`{"messages": [{"role": "user"}]}`,
		`{"messages": [{"role": 1, "content": "x"}]}`,
		`{"messages": [null]}`,
		`{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}`,
		`{"conversations": [{"from": "gpt", "value": "a"}]}`,
		`{"conversations": []}`,
		"   \t ",
		"",
	} {
		f.Add(seed, "", "")
		f.Add(seed, "text", "prompt")
		f.Add(seed, "", "chat")
		f.Add(seed, "", "sharegpt")
	}
	f.Fuzz(func(t *testing.T, line, field, format string) {
		fm, err := ParseFormat(format)
		if err != nil {
			return
		}
		prompt, ok, err := parseLine([]byte(line), newRowParser(field, fm))
		if err != nil && ok {
			t.Fatalf("parseLine(%q) returned both a prompt and an error", line)
		}
		if !ok && !reflect.DeepEqual(prompt, Prompt{}) {
			t.Fatalf("parseLine(%q) returned prompt %+v without ok", line, prompt)
		}
		if ok {
			checkPrompt(t, line, &prompt)
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
		"prompt,output_len\nhi,3\nho,\n",
		`[{"prompt": "a"}, {"conversations": [{"from": "human", "value": "b"}]}]`,
		"[\n {\"messages\": [{\"role\": \"user\", \"content\": \"c\"}]}\n] x",
		"",
	} {
		f.Add(seed, "", 0)
		f.Add(seed, "text", 2)
	}
	f.Fuzz(func(t *testing.T, data, field string, limit int) {
		if limit < 0 || limit > 1000 {
			return
		}
		for name, read := range map[string]func() ([]Prompt, error){
			"jsonl": func() ([]Prompt, error) {
				return readJSONLines(strings.NewReader(data), "f.jsonl", newRowParser(field, FormatAuto), limit)
			},
			"json": func() ([]Prompt, error) {
				return readJSONArray(strings.NewReader(data), "f.json", newRowParser(field, FormatAuto), limit)
			},
			"csv": func() ([]Prompt, error) { return readCSV(strings.NewReader(data), "f.csv", field, limit) },
			"txt": func() ([]Prompt, error) { return readTextLines(strings.NewReader(data), "f.txt", limit) },
		} {
			prompts, err := read()
			if err != nil {
				continue
			}
			if limit > 0 && len(prompts) > limit {
				t.Fatalf("%s: %d prompts over limit %d", name, len(prompts), limit)
			}
			for i := range prompts {
				checkPrompt(t, data, &prompts[i])
			}
		}
	})
}
