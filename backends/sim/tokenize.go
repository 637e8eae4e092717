package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// The simulator's tokenizer: a text's tokens are its runs of 4 characters
// (the last may be shorter), so that a text of c characters is
// max(1, ⌈c/4⌉) tokens, the count usage reports (tokensForChars). A chat
// request's messages are tokenized as their text contents put together,
// with no chat template, as usage counts them. Each token's id is a hash
// of its characters in [0, simVocab), so equal texts have equal ids and
// a shared prefix of 4k characters is a shared prefix of k tokens.
const (
	simVocab       = 32000
	simTokenChars  = 4
	simMaxModelLen = 1 << 20 // reported as max_model_len: the simulator has no context limit
)

// tokenizeRequest is vLLM's TokenizeCompletionRequest or
// TokenizeChatRequest (prompt or messages); other fields, such as
// add_special_tokens and add_generation_prompt, are accepted and change
// nothing: the simulator has no special tokens and no chat template.
type tokenizeRequest struct {
	Model           string         `json:"model"`
	Prompt          *string        `json:"prompt"`
	Messages        []inputMessage `json:"messages"`
	ReturnTokenStrs bool           `json:"return_token_strs"`
}

// tokenizeResponse is vLLM's TokenizeResponse.
type tokenizeResponse struct {
	Count       int      `json:"count"`
	MaxModelLen int      `json:"max_model_len"`
	Tokens      []int    `json:"tokens"`
	TokenStrs   []string `json:"token_strs"`
}

// serveTokenize answers POST /tokenize as vLLM does, with the token ids
// whose count usage reports for the same prompt or messages.
func (s *Server) serveTokenize(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "", "read request body: %v", err)
		return
	}
	var req tokenizeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "", "JSON decode error: %v", err)
		return
	}
	if req.Model != "" && req.Model != s.cfg.Model {
		writeError(w, http.StatusNotFound, "NotFoundError", "model", "The model `%s` does not exist.", req.Model)
		return
	}
	var text string
	switch {
	case req.Prompt != nil && req.Messages != nil:
		writeError(w, http.StatusBadRequest, "BadRequestError", "", "give either prompt or messages, not both")
		return
	case req.Prompt != nil:
		text = *req.Prompt
	case req.Messages != nil:
		var b strings.Builder
		for i, m := range req.Messages {
			t, err := contentText(m.Content)
			if err != nil {
				writeError(w, http.StatusBadRequest, "BadRequestError", "messages", "messages[%d].content: %v", i, err)
				return
			}
			b.WriteString(t)
		}
		text = b.String()
	default:
		writeError(w, http.StatusBadRequest, "BadRequestError", "prompt", "prompt or messages: Field required")
		return
	}
	ids, strs := tokenize(text)
	resp := tokenizeResponse{Count: len(ids), MaxModelLen: simMaxModelLen, Tokens: ids}
	if req.ReturnTokenStrs {
		resp.TokenStrs = strs
	}
	writeJSON(w, http.StatusOK, resp)
}

// tokenize splits text into the simulator's tokens; an empty text is one
// empty token, as usage counts every prompt as at least one token.
func tokenize(text string) ([]int, []string) {
	n := tokensForChars(utf8.RuneCountInString(text))
	ids, strs := make([]int, 0, n), make([]string, 0, n)
	for len(ids) < n {
		end, chars := 0, 0
		for end < len(text) && chars < simTokenChars {
			_, size := utf8.DecodeRuneInString(text[end:])
			end += size
			chars++
		}
		piece := text[:end]
		text = text[end:]
		h := fnv.New32a()
		_, _ = h.Write([]byte(piece))
		ids = append(ids, int(h.Sum32()%simVocab))
		strs = append(strs, piece)
	}
	return ids, strs
}

// contentText is a message's text content: a string, the text parts of
// a list of parts, put together, or nothing for null.
func contentText(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", nil
	}
	var s *string
	if json.Unmarshal(raw, &s) == nil {
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("must be a string or a list of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}
