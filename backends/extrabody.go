package backends

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ExtraBody holds server-specific request fields (--extra-body, the
// scenario's extra_body) that every request body carries beside the ones
// tokenwatt sets, e.g. {"reasoning_effort": "low"} for a reasoning model
// or {"chat_template_kwargs": {"enable_thinking": false}}. Values are
// sent as JSON, as given.
//
// A key the client sets itself is refused (reservedOpenAI,
// reservedPyTorch): the request would then not be what the records,
// the summary and report.json say was sent (max_tokens, stream, the
// prompt), or could not be measured (stream_options carries the usage
// the token counts come from). Each has its own flag.
type ExtraBody map[string]any

// reservedOpenAI are the OpenAI client's own body keys, with what sets
// them instead.
var reservedOpenAI = map[string]string{
	"model":                 "--model (scenario key model)",
	"messages":              "--dataset (scenario key dataset)",
	"prompt":                "--dataset (scenario key dataset)",
	"stream":                "--stream or --no-stream (scenario key stream)",
	"stream_options":        "nothing: tokenwatt always asks for include_usage, the token counts come from it",
	"max_tokens":            "--max-tokens (scenario key max_tokens)",
	"max_completion_tokens": "--max-tokens (scenario key max_tokens)",
	"min_tokens":            "--min-tokens with --backend vllm (scenario key min_tokens)",
	"ignore_eos":            "--ignore-eos with --backend vllm (scenario key ignore_eos)",
	"temperature":           "--temperature (scenario key temperature)",
	"seed":                  "--seed (scenario key seed)",
}

// reservedPyTorch are the PyTorch client's own body keys.
var reservedPyTorch = map[string]string{
	"prompt":         "--dataset (scenario key dataset)",
	"max_new_tokens": "--max-tokens (scenario key max_tokens)",
	"min_new_tokens": "--min-tokens or --ignore-eos (scenario keys min_tokens, ignore_eos)",
	"temperature":    "--temperature (scenario key temperature)",
	"seed":           "--seed (scenario key seed)",
	"stream":         "--stream or --no-stream (scenario key stream)",
}

// encode checks e against the client's reserved keys and returns its
// members as JSON, each preceded by a comma and in key order, for the
// end of a body object; nil for none.
func (e ExtraBody) encode(reserved map[string]string) ([]byte, error) {
	if len(e) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, k := range keys {
		if how, ok := reserved[k]; ok {
			return nil, fmt.Errorf("extra body key %q is one tokenwatt sets itself; use %s", k, how)
		}
		buf.WriteByte(',')
		_ = enc.Encode(k) // a string always encodes
		buf.Truncate(buf.Len() - 1)
		buf.WriteByte(':')
		if err := enc.Encode(e[k]); err != nil {
			return nil, fmt.Errorf("extra body key %q: cannot be sent as JSON: %v", k, strings.TrimPrefix(err.Error(), "json: "))
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	return buf.Bytes(), nil
}

// ParseExtraBody parses a JSON object (--extra-body's value).
func ParseExtraBody(s string) (ExtraBody, error) {
	var e ExtraBody
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // numbers are sent as written
	if err := dec.Decode(&e); err != nil || e == nil {
		return nil, fmt.Errorf("not a JSON object (e.g. '{\"reasoning_effort\":\"low\"}')")
	}
	if rest := strings.TrimSpace(s[dec.InputOffset():]); rest != "" {
		return nil, fmt.Errorf("more after the JSON object: %.20q", rest)
	}
	return e, nil
}
