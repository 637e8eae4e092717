package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
)

// Format is the shape of a dataset's rows.
type Format string

// The row shapes Load reads. FormatAuto decides from the first row.
const (
	// FormatAuto detects the shape from the first row that has one of the
	// fields the other formats look for.
	FormatAuto Format = "auto"
	// FormatPrompt rows hold a prompt string: {"prompt": "..."} or
	// {"text": "..."} (CSV columns and text lines too).
	FormatPrompt Format = "prompt"
	// FormatChat rows hold OpenAI chat messages:
	// {"messages": [{"role": "system", "content": "..."}, {"role": "user", ...}, ...]}.
	FormatChat Format = "chat"
	// FormatShareGPT rows hold ShareGPT turns:
	// {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}, ...]}.
	FormatShareGPT Format = "sharegpt"
)

// FormatNames lists the values ParseFormat accepts, for flags and errors.
var FormatNames = []string{string(FormatAuto), string(FormatPrompt), string(FormatChat), string(FormatShareGPT)}

// ParseFormat reads a --dataset-format value; "" is FormatAuto.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return FormatAuto, nil
	}
	if !slices.Contains(FormatNames, s) {
		return "", fmt.Errorf("dataset format %q is not supported (allowed: %s)", s, strings.Join(FormatNames, ", "))
	}
	return Format(s), nil
}

// conversational reports whether rows of format f are conversations.
func (f Format) conversational() bool { return f == FormatChat || f == FormatShareGPT }

// Message roles, as the OpenAI chat API names them. ShareGPT's speakers
// are mapped onto them (human: user, gpt: assistant).
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// chatRoles are the roles a chat row's messages may have.
var chatRoles = []string{RoleSystem, "developer", RoleUser, RoleAssistant, "tool"}

// shareGPTSpeakers maps ShareGPT's "from" values, lower-cased, to roles.
var shareGPTSpeakers = map[string]string{
	"system": RoleSystem,
	"human":  RoleUser, "user": RoleUser,
	"gpt": RoleAssistant, "assistant": RoleAssistant, "chatgpt": RoleAssistant,
	"bard": RoleAssistant, "bing": RoleAssistant, "model": RoleAssistant,
}

// Message is one turn of a conversation.
type Message struct {
	Role    string // system, developer, user, assistant or tool
	Content string // text; a chat row's text content parts are joined by "\n"
}

// Prompt is one dataset row, as a request sends it.
//
// A conversation row (chat or ShareGPT) is sent single-turn, as
// `vllm bench serve` sends ShareGPT: its first user turn, with whatever
// precedes it (system prompts); the first answer recorded after that turn
// sets the output length when the row gives none. The whole conversation
// is kept in Conversation for multi-turn replay.
type Prompt struct {
	// Text is what a text-only request sends: a prompt row's prompt, or a
	// conversation row's Messages flattened (their non-empty contents
	// joined by a blank line, without any chat template). The chat API
	// sends Messages instead when there are any.
	Text string
	// Messages is what a chat request sends for a conversation row: its
	// turns up to and including the first user turn. Nil for prompt rows
	// (the chat API then sends Text as the one user message).
	Messages []Message
	// MaxTokens is the row's own output length, in tokens: its
	// output_len, max_tokens or output_tokens field, else (conversation
	// rows) the first answer recorded after Messages, estimated with
	// EstimateTokens. 0: none; the scenario's max_tokens applies.
	MaxTokens int
	// InputTokens is a synthetic prompt's target length: the prompt
	// tokens it was made to count (see MakeSynthetic). 0: none.
	InputTokens int
	// Conversation is every turn of a conversation row, in order, the
	// recorded answers included; nil for prompt rows. Messages is a prefix
	// of it.
	Conversation []Message

	// lengthFrom says where MaxTokens came from.
	lengthFrom lengthSource
}

// Turn is one user turn of a conversation, as multi-turn replay sends
// it.
type Turn struct {
	// Messages are the turn's own messages: those after the previous
	// turn's user message, up to and including this turn's (the first
	// turn: from the start). Assistant messages among them are the
	// recorded answers to the previous turn.
	Messages []Message
	// MaxTokens is the turn's output length: the row's own output_len,
	// max_tokens or output_tokens field, for every turn, else the first
	// answer recorded after the turn, estimated with EstimateTokens. 0:
	// none; the scenario's max_tokens applies.
	MaxTokens int
}

// Turns splits a conversation row into its user turns, in order; nil for
// a prompt row. The first turn is what a single-turn request sends
// (Messages, MaxTokens); answers recorded after the last user turn only
// set its output length.
func (p *Prompt) Turns() []Turn {
	var turns []Turn
	start := 0
	for i, m := range p.Conversation {
		if m.Role != RoleUser {
			continue
		}
		turns = append(turns, Turn{Messages: p.Conversation[start : i+1 : i+1]})
		start = i + 1
	}
	for k := range turns {
		t := &turns[k]
		if p.lengthFrom == lengthRow {
			t.MaxTokens = p.MaxTokens
			continue
		}
		// The recorded answers to turn k are the next turn's first
		// messages, or the conversation's last.
		answers := p.Conversation[start:]
		if k+1 < len(turns) {
			answers = turns[k+1].Messages
		}
		for _, m := range answers {
			if m.Role == RoleAssistant {
				t.MaxTokens = EstimateTokens(m.Content)
				break
			}
		}
	}
	return turns
}

// lengthSource is where a prompt's MaxTokens came from.
type lengthSource uint8

const (
	lengthNone   lengthSource = iota
	lengthRow                 // an output_len, max_tokens or output_tokens field
	lengthAnswer              // the recorded answer, estimated
)

// Texts makes plain-text prompts, e.g. of Synthetic's.
func Texts(texts []string) []Prompt {
	prompts := make([]Prompt, len(texts))
	for i, t := range texts {
		prompts[i].Text = t
	}
	return prompts
}

// Set is a loaded dataset.
type Set struct {
	Prompts []Prompt
	// Format is the rows' shape (never FormatAuto); Detected says it was
	// detected rather than forced by Options.Format.
	Format   Format
	Detected bool
	// RowLengths counts the prompts whose MaxTokens came from a field of
	// their row; AnswerLengths those whose MaxTokens was estimated from a
	// recorded answer.
	RowLengths, AnswerLengths int
	// NoUserTurn counts the conversations skipped for having no user turn
	// (nothing to ask): ShareGPT dumps split long conversations, and some
	// parts hold only answers. A dataset read from the hf:// cache does
	// not count them again.
	NoUserTurn int
	// Synthetic says how exact synthetic prompts came out; nil for other
	// sources.
	Synthetic *SyntheticStats
}

// EstimateTokens is the token measure used where no tokenizer is at hand:
// SyntheticTokensPerWord tokens per word, rounded, where a word is a run
// of characters between spaces and each Chinese, Japanese or Korean
// character counts as a word of its own. Non-blank text is at least one
// token.
func EstimateTokens(s string) int {
	words, inWord := 0, false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			inWord = false
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			words++
			inWord = false
		case !inWord:
			words++
			inWord = true
		}
	}
	if words == 0 {
		return 0
	}
	return max(1, int(math.Round(float64(words)*SyntheticTokensPerWord)))
}

// Fields tried, in order, when Options.Field is empty.
var (
	promptFields   = []string{"prompt", "text"}
	chatFields     = []string{"messages", "conversation", "conversations"}
	shareGPTFields = []string{"conversations", "conversation"}
	autoFields     = []string{"prompt", "text", "messages", "conversations", "conversation"}
	// outputLenFields hold a row's output length; the first present wins.
	outputLenFields = []string{"output_len", "max_tokens", "output_tokens"}
)

// rowParser turns dataset rows (JSONL lines, JSON array elements, Hugging
// Face rows) into prompts. Unless the format is forced, the first row
// with a non-empty prompt field decides it, and every later row must
// have that shape.
type rowParser struct {
	field      string // the field chosen by the user; "": the format's defaults
	format     Format // FormatAuto until decided
	noUserTurn int    // conversations skipped for having no user turn
}

func newRowParser(field string, format Format) *rowParser {
	if format == "" {
		format = FormatAuto
	}
	return &rowParser{field: field, format: format}
}

// fields returns the fields a row's prompt is looked for in, in order.
func (p *rowParser) fields() []string {
	switch {
	case p.field != "":
		return []string{p.field}
	case p.format == FormatPrompt:
		return promptFields
	case p.format == FormatChat:
		return chatFields
	case p.format == FormatShareGPT:
		return shareGPTFields
	default:
		return autoFields
	}
}

// missingField says which fields were looked for, e.g.
// `no field "prompt" or "text"`. noun replaces "field" (CSV and Hugging
// Face datasets have columns).
func (p *rowParser) missingField(noun string) string {
	switch {
	case p.field != "":
		return fmt.Sprintf("no %s %q", noun, p.field)
	case p.format == FormatChat:
		return fmt.Sprintf(`no %s "messages", "conversation" or "conversations" (chat messages)`, noun)
	case p.format == FormatShareGPT:
		return fmt.Sprintf(`no %s "conversations" or "conversation" (ShareGPT turns)`, noun)
	case p.format == FormatPrompt:
		return fmt.Sprintf(`no %s "prompt" or "text"`, noun)
	default:
		return fmt.Sprintf(`no %s "prompt" or "text" (a prompt), "messages" (chat) or "conversations" (ShareGPT)`, noun)
	}
}

// parse reads one row. ok is false for rows that hold no prompt but are
// not errors: metadata (every key starts with "_"), and empty prompts or
// conversations.
func (p *rowParser) parse(obj map[string]json.RawMessage) (pr Prompt, ok bool, err error) {
	if isMetadata(obj) {
		return Prompt{}, false, nil
	}
	name, raw, found := pickField(obj, p.fields())
	if !found {
		return Prompt{}, false, fmt.Errorf("%s (fields: %s); choose the field with dataset_field (--dataset-field)",
			p.missingField("field"), strings.Join(sortedKeys(obj), ", "))
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return Prompt{}, false, nil // a missing value counts as an empty prompt
	}
	format := p.format
	if format == FormatAuto {
		if format, err = detectFormat(name, raw); err != nil || format == FormatAuto {
			return Prompt{}, false, err
		}
	}
	switch format {
	case FormatPrompt:
		pr.Text, ok, err = decodePromptValue(name, raw)
	case FormatChat:
		pr, ok, err = parseChat(name, raw)
	case FormatShareGPT:
		pr, ok, err = parseShareGPT(name, raw)
	}
	if errors.Is(err, errNoUserTurn) {
		p.format = format
		p.noUserTurn++
		return Prompt{}, false, nil
	}
	if err != nil || !ok {
		return Prompt{}, false, err
	}
	p.format = format
	n, found, err := outputLen(obj)
	switch {
	case err != nil:
		return Prompt{}, false, err
	case found:
		pr.MaxTokens, pr.lengthFrom = n, lengthRow
	case pr.MaxTokens > 0:
		pr.lengthFrom = lengthAnswer
	}
	return pr, true, nil
}

// detectFormat tells a row's shape from its prompt field's value: a string
// is a prompt, a list of {"role", "content"} chat messages, a list of
// {"from", "value"} ShareGPT turns. FormatAuto: an empty list, which
// cannot tell.
func detectFormat(name string, raw json.RawMessage) (Format, error) {
	switch raw[0] {
	case '"':
		return FormatPrompt, nil
	case '[':
		var turns []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &turns); err != nil {
			return "", fmt.Errorf("field %q is a list, but not of objects: not chat messages or ShareGPT turns", name)
		}
		if len(turns) == 0 {
			return FormatAuto, nil
		}
		_, role := turns[0]["role"]
		_, from := turns[0]["from"]
		switch {
		case role:
			return FormatChat, nil
		case from:
			return FormatShareGPT, nil
		}
		return "", fmt.Errorf(`field %q is a list of objects with neither "role" (chat messages) nor "from" (ShareGPT turns): its first has %s`,
			name, strings.Join(sortedKeys(turns[0]), ", "))
	default:
		return "", fmt.Errorf("field %q is %s: not a prompt (a string), chat messages or ShareGPT turns (a list)", name, jsonKind(raw))
	}
}

// chatTurn is one element of a chat row's messages.
type chatTurn struct {
	Role    *string         `json:"role"`
	Content json.RawMessage `json:"content"`
}

// parseChat reads a list of OpenAI chat messages.
func parseChat(name string, raw json.RawMessage) (Prompt, bool, error) {
	var turns []*chatTurn
	if err := json.Unmarshal(raw, &turns); err != nil {
		return Prompt{}, false, fmt.Errorf(`field %q is not a list of chat messages ({"role": ..., "content": ...}): %v`, name, plainJSONError(err))
	}
	conv := make([]Message, len(turns))
	for i, t := range turns {
		if t == nil || t.Role == nil {
			return Prompt{}, false, fmt.Errorf("%s[%d] has no role", name, i)
		}
		if !slices.Contains(chatRoles, *t.Role) {
			return Prompt{}, false, fmt.Errorf("%s[%d].role %q is not a chat role (%s)", name, i, *t.Role, strings.Join(chatRoles, ", "))
		}
		content, err := chatContent(t.Content)
		if err != nil {
			return Prompt{}, false, fmt.Errorf("%s[%d].content %w", name, i, err)
		}
		conv[i] = Message{Role: *t.Role, Content: content}
	}
	return conversationPrompt(conv)
}

// chatContent reads a message's content: a string, null, or a list of
// text parts ({"type": "text", "text": ...}), joined by "\n".
func chatContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("is not a valid string: %v", plainJSONError(err))
		}
		return s, nil
	case '[':
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(raw, &parts); err != nil {
			return "", fmt.Errorf("is not a list of content parts: %v", plainJSONError(err))
		}
		texts := make([]string, len(parts))
		for i, part := range parts {
			if part.Type != "text" || part.Text == nil {
				return "", fmt.Errorf("[%d] is a %q part: only text parts are supported", i, part.Type)
			}
			texts[i] = *part.Text
		}
		return strings.Join(texts, "\n"), nil
	default:
		return "", fmt.Errorf("is %s, not a string or a list of text parts", jsonKind(raw))
	}
}

// shareGPTTurn is one element of a ShareGPT row's conversations.
type shareGPTTurn struct {
	From  *string `json:"from"`
	Value *string `json:"value"`
}

// parseShareGPT reads a list of ShareGPT turns.
func parseShareGPT(name string, raw json.RawMessage) (Prompt, bool, error) {
	var turns []*shareGPTTurn
	if err := json.Unmarshal(raw, &turns); err != nil {
		return Prompt{}, false, fmt.Errorf(`field %q is not a list of ShareGPT turns ({"from": ..., "value": ...}): %v`, name, plainJSONError(err))
	}
	conv := make([]Message, len(turns))
	for i, t := range turns {
		if t == nil || t.From == nil {
			return Prompt{}, false, fmt.Errorf(`%s[%d] has no "from"`, name, i)
		}
		role, ok := shareGPTSpeakers[strings.ToLower(*t.From)]
		if !ok {
			return Prompt{}, false, fmt.Errorf("%s[%d].from %q is not a ShareGPT speaker (human, gpt or system)", name, i, *t.From)
		}
		conv[i].Role = role
		if t.Value != nil {
			conv[i].Content = *t.Value
		}
	}
	return conversationPrompt(conv)
}

// errNoUserTurn is a conversation without a user turn: not an error, but
// counted (Set.NoUserTurn).
var errNoUserTurn = errors.New("no user turn")

// conversationPrompt makes the single-turn prompt of a conversation: the
// turns up to and including the first user turn; the first assistant
// turn after it, before any other user turn, sets the output length. An
// empty conversation, or a blank first user turn, is no prompt; one
// without a user turn is errNoUserTurn.
func conversationPrompt(conv []Message) (Prompt, bool, error) {
	if len(conv) == 0 {
		return Prompt{}, false, nil
	}
	first := slices.IndexFunc(conv, func(m Message) bool { return m.Role == RoleUser })
	if first < 0 {
		return Prompt{}, false, errNoUserTurn
	}
	if strings.TrimSpace(conv[first].Content) == "" {
		return Prompt{}, false, nil
	}
	msgs := conv[: first+1 : first+1]
	pr := Prompt{Text: flatten(msgs), Messages: msgs, Conversation: conv}
	for _, m := range conv[first+1:] {
		if m.Role == RoleUser {
			break
		}
		if m.Role == RoleAssistant {
			pr.MaxTokens = EstimateTokens(m.Content)
			break
		}
	}
	return pr, true, nil
}

// flatten is messages as one text: their non-empty contents joined by a
// blank line. One message is its content.
func flatten(msgs []Message) string {
	if len(msgs) == 1 {
		return msgs[0].Content
	}
	var parts []string
	for _, m := range msgs {
		if strings.TrimSpace(m.Content) != "" {
			parts = append(parts, m.Content)
		}
	}
	return strings.Join(parts, "\n\n")
}

// maxOutputLen bounds a row's output length: no model has a context of a
// billion tokens, and the bound keeps the value an int everywhere.
const maxOutputLen = 1 << 30

// outputLen reads a row's own output length: the first of
// outputLenFields present and not null, a positive whole number.
func outputLen(obj map[string]json.RawMessage) (n int, found bool, err error) {
	for _, f := range outputLenFields {
		raw, ok := obj[f]
		raw = bytes.TrimSpace(raw)
		if !ok || len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var v float64
		if raw[0] == '"' || json.Unmarshal(raw, &v) != nil || v != math.Trunc(v) || v < 1 || v > maxOutputLen {
			return 0, false, fmt.Errorf("field %q is %s, not a positive whole number of tokens", f, clipJSON(raw))
		}
		return int(v), true, nil
	}
	return 0, false, nil
}

// clipJSON quotes the start of a JSON value for an error message.
func clipJSON(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// plainJSONError drops encoding/json's Go type names from a decoding
// error ("cannot unmarshal number into Go struct field chatTurn.role of
// type string" becomes "a number where a string belongs").
func plainJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		what := typeErr.Value
		if typeErr.Field != "" {
			return fmt.Sprintf("%q is a JSON %s, not a %s", typeErr.Field, what, goTypeWord(typeErr.Type.Kind().String()))
		}
		return fmt.Sprintf("a JSON %s where a %s belongs", what, goTypeWord(typeErr.Type.Kind().String()))
	}
	return err.Error()
}

// goTypeWord names a Go kind as JSON would.
func goTypeWord(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	default:
		return kind
	}
}

// pickField returns the first of fields present in obj.
func pickField(obj map[string]json.RawMessage, fields []string) (string, json.RawMessage, bool) {
	for _, f := range fields {
		if raw, ok := obj[f]; ok {
			return f, raw, true
		}
	}
	return "", nil, false
}
