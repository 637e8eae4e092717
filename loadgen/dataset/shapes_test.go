package dataset

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// Rows of each shape, and the prompts they make.
var (
	chatRow = `{"messages": [` +
		`{"role": "system", "content": "You are terse."}, ` +
		`{"role": "user", "content": [{"type": "text", "text": "Capital of France?"}, {"type": "text", "text": "One word."}]}, ` +
		`{"role": "assistant", "content": "Paris, of course."}, ` +
		`{"role": "user", "content": "And of Italy?"}]}`
	chatConv = []Message{
		{RoleSystem, "You are terse."},
		{RoleUser, "Capital of France?\nOne word."},
		{RoleAssistant, "Paris, of course."},
		{RoleUser, "And of Italy?"},
	}
	// The first answer has 3 words: 3 × 1.3 = 3.9, 4 tokens.
	chatPrompt = Prompt{Text: "You are terse.\n\nCapital of France?\nOne word.", Messages: chatConv[:2:2], MaxTokens: 4,
		Conversation: chatConv, lengthFrom: lengthAnswer}

	shareGPTRow = `{"id": "x1", "conversations": [` +
		`{"from": "human", "value": "Write a haiku about watts."}, ` +
		`{"from": "gpt", "value": "Current hums along / joules become the evening light / the meter turns on"}, ` +
		`{"from": "human", "value": "Another?"}]}`
	shareGPTConv = []Message{
		{RoleUser, "Write a haiku about watts."},
		{RoleAssistant, "Current hums along / joules become the evening light / the meter turns on"},
		{RoleUser, "Another?"},
	}
	// 14 words (two of them "/") × 1.3 = 18.2: 18 tokens.
	shareGPTPrompt = Prompt{Text: "Write a haiku about watts.", Messages: shareGPTConv[:1:1], MaxTokens: 18,
		Conversation: shareGPTConv, lengthFrom: lengthAnswer}
)

func TestLoadShapes(t *testing.T) {
	t.Parallel()
	withLen := func(p Prompt, n int) Prompt {
		p.MaxTokens, p.lengthFrom = n, lengthRow
		return p
	}
	tests := []struct {
		name, file, content string
		opts                Options
		want                []Prompt
		format              Format
		rowLengths, answers int
		noUserTurn          int
	}{
		{
			name: "prompt rows with their own output lengths", file: "p.jsonl",
			content: `{"prompt": "a", "output_len": 7}` + "\n" + `{"prompt": "b", "max_tokens": 8.0}` + "\n" +
				`{"text": "c", "output_tokens": 9}` + "\n" + `{"prompt": "d", "output_len": null}` + "\n",
			want:   []Prompt{withLen(Prompt{Text: "a"}, 7), withLen(Prompt{Text: "b"}, 8), withLen(Prompt{Text: "c"}, 9), {Text: "d"}},
			format: FormatPrompt, rowLengths: 3,
		},
		{
			name: "prompt rows as a JSON array", file: "p.json",
			content: "\n [\n  {\"prompt\": \"a\"},\n  {\"_meta\": 1},\n  {\"prompt\": \"b\", \"output_len\": 3}\n]\n",
			want:    []Prompt{{Text: "a"}, withLen(Prompt{Text: "b"}, 3)}, format: FormatPrompt, rowLengths: 1,
		},
		{
			name: "chat JSONL: system prompt kept, first user turn sent, first answer sets the length", file: "c.jsonl",
			content: chatRow + "\n" + `{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}` + "\n" +
				`{"messages": []}` + "\n" + `{"messages": [{"role": "user", "content": " "}]}` + "\n",
			want: []Prompt{chatPrompt, withLen(Prompt{Text: "Hi", Messages: []Message{{RoleUser, "Hi"}},
				Conversation: []Message{{RoleUser, "Hi"}}}, 5)},
			format: FormatChat, rowLengths: 1, answers: 1,
		},
		{
			name: "chat as a JSON array", file: "c.json", content: "[" + chatRow + "]",
			want: []Prompt{chatPrompt}, format: FormatChat, answers: 1,
		},
		{
			name: "ShareGPT JSONL: a row's output_len beats its answer", file: "s.jsonl",
			content: shareGPTRow + "\n" + strings.Replace(shareGPTRow, `{"id"`, `{"output_len": 64, "id"`, 1) + "\n",
			want:    []Prompt{shareGPTPrompt, withLen(shareGPTPrompt, 64)}, format: FormatShareGPT, rowLengths: 1, answers: 1,
		},
		{
			name: "ShareGPT as a pretty-printed JSON array, with a limit", file: "s.json",
			content: "[\n  " + shareGPTRow + ",\n  " + shareGPTRow + ",\n  " + shareGPTRow + "\n]\n", opts: Options{Limit: 2},
			want: []Prompt{shareGPTPrompt, shareGPTPrompt}, format: FormatShareGPT, answers: 2,
		},
		{
			name: "ShareGPT: a part of a split conversation without a user turn is skipped and counted", file: "split.jsonl",
			content: `{"conversations": [{"from": "gpt", "value": "...and that is all."}]}` + "\n" + shareGPTRow + "\n",
			want:    []Prompt{shareGPTPrompt}, format: FormatShareGPT, answers: 1, noUserTurn: 1,
		},
		{
			name: "ShareGPT speakers: system and user/assistant spellings", file: "s2.jsonl",
			content: `{"conversations": [{"from": "system", "value": "Be kind."}, {"from": "User", "value": "Hello"}, {"from": "assistant", "value": "Hi!"}]}`,
			want: []Prompt{{Text: "Be kind.\n\nHello", Messages: []Message{{RoleSystem, "Be kind."}, {RoleUser, "Hello"}},
				Conversation: []Message{{RoleSystem, "Be kind."}, {RoleUser, "Hello"}, {RoleAssistant, "Hi!"}}, MaxTokens: 1, lengthFrom: lengthAnswer}},
			format: FormatShareGPT, answers: 1,
		},
		{
			name: "role/content under conversation (lmsys-chat-1m) is chat", file: "l.jsonl",
			content: `{"conversation_id": "7", "conversation": [{"role": "user", "content": "Hi"}]}`,
			want:    []Prompt{{Text: "Hi", Messages: []Message{{RoleUser, "Hi"}}, Conversation: []Message{{RoleUser, "Hi"}}}},
			format:  FormatChat,
		},
		{
			name: "dataset_field names the conversation", file: "f.jsonl", opts: Options{Field: "dialog"},
			content: `{"prompt": "ignored", "dialog": [{"from": "human", "value": "Hi"}]}`,
			want:    []Prompt{{Text: "Hi", Messages: []Message{{RoleUser, "Hi"}}, Conversation: []Message{{RoleUser, "Hi"}}}},
			format:  FormatShareGPT,
		},
		{
			name: "a forced format picks its own field", file: "both.jsonl", opts: Options{Format: FormatChat},
			content: `{"prompt": "ignored", "messages": [{"role": "user", "content": "Hi"}]}`,
			want:    []Prompt{{Text: "Hi", Messages: []Message{{RoleUser, "Hi"}}, Conversation: []Message{{RoleUser, "Hi"}}}},
			format:  FormatChat,
		},
		{
			name: "CSV output length column", file: "p.csv", content: "prompt,output_len\na,3\nb,\n",
			want: []Prompt{withLen(Prompt{Text: "a"}, 3), {Text: "b"}}, format: FormatPrompt, rowLengths: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set, err := Load(context.Background(), writeFile(t, tt.file, tt.content), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(set.Prompts, tt.want) {
				t.Errorf("prompts\n%+v\nwant\n%+v", set.Prompts, tt.want)
			}
			detected := tt.opts.Format == ""
			if set.Format != tt.format || set.Detected != detected || set.RowLengths != tt.rowLengths || set.AnswerLengths != tt.answers ||
				set.NoUserTurn != tt.noUserTurn {
				t.Errorf("format %s (detected %v), %d row lengths, %d from answers, %d without a user turn; want %s (%v), %d, %d, %d",
					set.Format, set.Detected, set.RowLengths, set.AnswerLengths, set.NoUserTurn, tt.format, detected, tt.rowLengths, tt.answers, tt.noUserTurn)
			}
		})
	}
}

// TestLoadShapeErrors: a bad row stops the load with one line naming the
// file, the line (and, in a JSON array, the row) and what is wrong.
func TestLoadShapeErrors(t *testing.T) {
	t.Parallel()
	user := `{"role": "user", "content": "q"}`
	tests := []struct {
		name, file, content string
		opts                Options
		want                string // the whole message after the file name
	}{
		{"chat message without a role", "c.jsonl", `{"messages": [` + user + `]}` + "\n\n" + `{"messages": [` + user + `, {"content": "a"}]}`,
			Options{}, `:3: messages[1] has no role`},
		{"chat role not a string", "c.jsonl", `{"messages": [{"role": 1, "content": "a"}]}`,
			Options{}, `:1: field "messages" is not a list of chat messages ({"role": ..., "content": ...}): "role" is a JSON number, not a string`},
		{"unknown chat role", "c.jsonl", `{"messages": [{"role": "narrator", "content": "a"}]}`,
			Options{}, `:1: messages[0].role "narrator" is not a chat role (system, developer, user, assistant, tool)`},
		{"image content", "c.jsonl", `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}`,
			Options{}, `:1: messages[0].content [0] is a "image_url" part: only text parts are supported`},
		{"content a number", "c.jsonl", `{"messages": [{"role": "user", "content": 3}]}`,
			Options{}, `:1: messages[0].content is a number, not a string or a list of text parts`},
		{"unknown ShareGPT speaker", "s.jsonl", `{"conversations": [{"from": "narrator", "value": "a"}]}`,
			Options{}, `:1: conversations[0].from "narrator" is not a ShareGPT speaker (human, gpt or system)`},
		{"ShareGPT turn without from", "s.jsonl", `{"conversations": [{"value": "a"}, {"from": "human"}]}`,
			Options{Format: FormatShareGPT}, `:1: conversations[0] has no "from"`},
		{"list of neither shape", "x.jsonl", `{"messages": [{"speaker": "a"}]}`,
			Options{}, `:1: field "messages" is a list of objects with neither "role" (chat messages) nor "from" (ShareGPT turns): its first has speaker`},
		{"output_len zero", "p.jsonl", `{"prompt": "a", "output_len": 0}`,
			Options{}, `:1: field "output_len" is 0, not a positive whole number of tokens`},
		{"max_tokens fractional", "p.jsonl", `{"prompt": "a"}` + "\n" + `{"prompt": "b", "max_tokens": 1.5}`,
			Options{}, `:2: field "max_tokens" is 1.5, not a positive whole number of tokens`},
		{"output_tokens a string", "p.jsonl", `{"prompt": "a", "output_tokens": "12"}`,
			Options{}, `:1: field "output_tokens" is "12", not a positive whole number of tokens`},
		{"a later row of another shape", "p.jsonl", `{"prompt": "a"}` + "\n" + `{"messages": [` + user + `]}`,
			Options{}, `:2: no field "prompt" or "text" (fields: messages); choose the field with dataset_field (--dataset-field)`},
		{"no known field", "p.jsonl", `{"question": "a"}`,
			Options{}, `:1: no field "prompt" or "text" (a prompt), "messages" (chat) or "conversations" (ShareGPT) (fields: question); choose the field with dataset_field (--dataset-field)`},
		{"forced chat, prompt rows", "p.jsonl", `{"prompt": "a"}`,
			Options{Format: FormatChat}, `:1: no field "messages", "conversation" or "conversations" (chat messages) (fields: prompt); choose the field with dataset_field (--dataset-field)`},
		{"forced chat, ShareGPT rows", "s.jsonl", `{"conversations": [{"from": "human", "value": "a"}]}`,
			Options{Format: FormatChat}, `:1: conversations[0] has no role`},
		{"forced prompt, chat rows", "c.jsonl", `{"prompt": [` + user + `]}`,
			Options{Format: FormatPrompt}, `:1: field "prompt" is an array, not a string`},
		{"array: bad row, named by row and line", "a.json", "[\n  {\"prompt\": \"one\"},\n\n  {\"prompt\": 2}\n]",
			Options{}, `:4: row 2: field "prompt" is a number, not a string`},
		{"array: malformed JSON", "a.json", "[\n  {\"prompt\": \"one\"},\n  {\"prompt\": \"two\",,}\n]",
			Options{}, `:3: row 2: invalid character ',' looking for beginning of object key string`},
		{"array: element not an object", "a.json", `[{"prompt": "one"}, "two"]`,
			Options{}, `:1: row 2: not a JSON object: json: cannot unmarshal string into Go value of type map[string]json.RawMessage`},
		{"array: cut short", "a.json", "[\n  {\"prompt\": \"one\"},\n  {\"prompt\": \"tw",
			Options{}, `:3: row 2: the file ends inside the JSON array`},
		{"array: something after it", "a.json", "[{\"prompt\": \"one\"}]\n{\"prompt\": \"two\"}",
			Options{}, `:2: more after the JSON array's closing ]: a JSON dataset is one array, or one object per line`},
		{"JSON lines with an array line", "p.jsonl", `{"prompt": "a"}` + "\n" + `[{"prompt": "b"}]`,
			Options{}, `:2: a JSON array inside JSON lines: write one JSON object per line, or the whole file as one JSON array`},
		{"CSV bad output length", "p.csv", "prompt,max_tokens\na,1\nb,x\n",
			Options{}, `:3: column "max_tokens" is "x", not a positive whole number of tokens`},
		{"forced chat on CSV", "p.csv", "prompt\na\n",
			Options{Format: FormatChat}, `: a csv file holds plain prompts, not chat rows: write the conversations as JSON lines or a JSON array (.jsonl, .json), or drop --dataset-format chat`},
		{"forced ShareGPT on text", "p.txt", "a\n",
			Options{Format: FormatShareGPT}, `: a txt file holds plain prompts, not sharegpt rows: write the conversations as JSON lines or a JSON array (.jsonl, .json), or drop --dataset-format sharegpt`},
		{"unknown format", "p.txt", "a\n",
			Options{Format: "alpaca"}, `: dataset format "alpaca" is not supported (allowed: auto, prompt, chat, sharegpt)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.file, tt.content)
			set, err := Load(context.Background(), path, tt.opts)
			if err == nil {
				t.Fatalf("loaded %+v, want an error", set.Prompts)
			}
			msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "dataset "), path)
			if msg != tt.want {
				t.Errorf("error\n%s\nwant\n%s%s", err, path, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
	path := writeFile(t, "answers.jsonl", `{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}`)
	if _, err := Load(context.Background(), path, Options{}); err == nil ||
		err.Error() != "dataset "+path+" has no prompts: none of its 1 conversations has a user turn" {
		t.Errorf("only conversations without a user turn: error %v", err)
	}
	if _, err := Load(context.Background(), "synthetic", Options{Format: FormatChat}); err == nil ||
		err.Error() != "dataset synthetic: synthetic prompts are plain text, not chat rows: drop --dataset-format chat" {
		t.Errorf("synthetic, forced chat: error %v", err)
	}
}

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text string
		want int
	}{
		{"", 0},
		{" \n\t", 0},
		{"Hi!", 1},
		{"The quick brown fox", 5},        // 4 words × 1.3 = 5.2
		{"one  two\nthree\tfour five", 7}, // 5 × 1.3 = 6.5, rounded up
		{"你好世界", 5},                       // 4 characters, each a word
		{"こんにちは world", 8},                // 5 + 1 words
	} {
		if got := EstimateTokens(tt.text); got != tt.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tt.text, got, tt.want)
		}
	}
}
