package backends

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Tokenizer is a client whose server tokenizes text the way it counts
// prompt_tokens: vLLM's POST /tokenize (at the server's root, beside
// /v1), which tokenwatt's simulator and its PyTorch server also answer.
// Both clients implement it; whether the server does is known only by
// asking (ErrNoTokenize).
type Tokenizer interface {
	// Tokenize returns the token ids the server counts for text sent as a
	// prompt or, with chat, as the one user message of a chat request
	// (the model's chat template and generation prompt included, as
	// vLLM's chat completions count them). The PyTorch client ignores
	// chat: its requests are all prompts.
	Tokenize(ctx context.Context, model, text string, chat bool) ([]int, error)
}

// ErrNoTokenize is returned (wrapped) by Tokenize when the server has no
// tokenize endpoint: it answered 404 or 405.
var ErrNoTokenize = errors.New("the server has no tokenize endpoint")

// tokenizeBody is vLLM's TokenizeCompletionRequest (Prompt) or
// TokenizeChatRequest (Messages), with their defaults made explicit:
// special tokens (BOS) added to a prompt as /v1/completions adds them,
// and a chat's generation prompt added as /v1/chat/completions adds it.
type tokenizeBody struct {
	Model               string              `json:"model,omitempty"`
	Prompt              *string             `json:"prompt,omitempty"`
	Messages            []map[string]string `json:"messages,omitempty"`
	AddSpecialTokens    *bool               `json:"add_special_tokens,omitempty"`
	AddGenerationPrompt *bool               `json:"add_generation_prompt,omitempty"`
}

func newTokenizeBody(model, text string, chat bool) tokenizeBody {
	yes := true
	if chat {
		return tokenizeBody{Model: model, Messages: []map[string]string{{"role": "user", "content": text}}, AddGenerationPrompt: &yes}
	}
	return tokenizeBody{Model: model, Prompt: &text, AddSpecialTokens: &yes}
}

// Tokenize asks the server's POST /tokenize (vLLM's), beside /v1.
func (c *OpenAI) Tokenize(ctx context.Context, model, text string, chat bool) ([]int, error) {
	url := strings.TrimSuffix(c.base, "/v1") + "/tokenize"
	ids, err := postTokenize(ctx, c.client, url, url, c.wholeHeader, newTokenizeBody(model, text, chat), serverMessage, c.note)
	if err != nil && c.redact(err.Error()) != err.Error() {
		// A server or proxy echoed the API key back.
		return nil, errors.New(c.redact(err.Error()))
	}
	return ids, err
}

// Tokenize asks POST /tokenize of tokenwatt's PyTorch server (a
// TorchServe server has none: ErrNoTokenize).
func (c *PyTorch) Tokenize(ctx context.Context, model, text string, _ bool) ([]int, error) {
	h := http.Header{"Accept": {"application/json"}, "Content-Type": {"application/json"}, "User-Agent": {"tokenwatt"}}
	return postTokenize(ctx, c.client, c.base+"/tokenize", c.shown+"/tokenize", h, newTokenizeBody(model, text, false), torchMessage, c.note)
}

// postTokenize sends body to url and reads vLLM's TokenizeResponse
// ({"count", "max_model_len", "tokens"}). shown is url as errors show it;
// message reads the server's error bodies.
func postTokenize(ctx context.Context, client *http.Client, url, shown string, header http.Header, body tokenizeBody,
	message func(int, []byte) string, note func(http.Header)) ([]int, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", shown, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("POST %s: cannot build the request", shown) // err may quote the URL in clear
	}
	req.Header = header
	resp, err := client.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("POST %s: %w", shown, ctxErr)
		}
		return nil, fmt.Errorf("POST %s: %s", shown, describeTransportError(err))
	}
	defer resp.Body.Close()
	note(resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("POST %s: read response: %w", shown, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		return nil, fmt.Errorf("POST %s: HTTP %s: %w", shown, resp.Status, ErrNoTokenize)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("POST %s: HTTP %s: %s", shown, resp.Status, message(resp.StatusCode, raw))
	}
	var out struct {
		Count  *int  `json:"count"`
		Tokens []int `json:"tokens"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Tokens == nil {
		return nil, fmt.Errorf("POST %s: not a tokenize answer ({\"count\", \"tokens\"}): %q", shown, snippet(raw))
	}
	if out.Count != nil && *out.Count != len(out.Tokens) {
		return nil, fmt.Errorf("POST %s: count %d but %d token ids", shown, *out.Count, len(out.Tokens))
	}
	return out.Tokens, nil
}
