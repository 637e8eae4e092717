package sim

// The JSON shapes below follow vLLM's pydantic models (vllm/entrypoints/
// openai): field names and order as vLLM serialises them, with null where
// vLLM sends null, so that clients see the same bytes they would from vLLM.

// errorResponse is vLLM's ErrorResponse.
type errorResponse struct {
	Error errorInfo `json:"error"`
}

// errorInfo is vLLM's ErrorInfo; Code repeats the HTTP status.
type errorInfo struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

// modelCard is vLLM's ModelCard plus "simulated", which OpenAI-compatible
// clients ignore and people reading the output do not.
type modelCard struct {
	ID          string            `json:"id"`
	Object      string            `json:"object"`
	Created     int64             `json:"created"`
	OwnedBy     string            `json:"owned_by"`
	Root        string            `json:"root"`
	Parent      *string           `json:"parent"`
	MaxModelLen int               `json:"max_model_len"`
	Permission  []modelPermission `json:"permission"`
	Simulated   bool              `json:"simulated"`
}

type modelPermission struct {
	ID                string  `json:"id"`
	Object            string  `json:"object"`
	Created           int64   `json:"created"`
	AllowCreateEngine bool    `json:"allow_create_engine"`
	AllowSampling     bool    `json:"allow_sampling"`
	AllowLogprobs     bool    `json:"allow_logprobs"`
	AllowSearchIdx    bool    `json:"allow_search_indices"`
	AllowView         bool    `json:"allow_view"`
	AllowFineTune     bool    `json:"allow_fine_tuning"`
	Organization      string  `json:"organization"`
	Group             *string `json:"group"`
	IsBlocking        bool    `json:"is_blocking"`
}

// usage is vLLM's UsageInfo, in vLLM's field order.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	TotalTokens      int `json:"total_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// null marshals as JSON null: the logprobs and stop_reason vLLM sends.
type null = *struct{}

// chatChunk is one chat.completion.chunk event.
type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *usage            `json:"usage,omitempty"`
}

// chatChunkChoice omits stop_reason except on the final chunk, as vLLM
// does (it sets stop_reason only when the sequence finishes).
type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     null      `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
	StopReason   *jsonNull `json:"stop_reason,omitempty"`
}

// jsonNull is a present-but-null field: a non-nil *jsonNull marshals as
// null, a nil one is omitted by omitempty.
type jsonNull struct{}

// MarshalJSON writes null.
func (*jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

type chatDelta struct {
	Role             string  `json:"role,omitempty"`
	Content          *string `json:"content,omitempty"`
	ReasoningContent *string `json:"reasoning_content,omitempty"`
}

// completionChunk is one streamed text_completion event.
type completionChunk struct {
	ID      string                  `json:"id"`
	Object  string                  `json:"object"`
	Created int64                   `json:"created"`
	Model   string                  `json:"model"`
	Choices []completionChunkChoice `json:"choices"`
	Usage   *usage                  `json:"usage,omitempty"`
}

type completionChunkChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	Logprobs     null    `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
	StopReason   null    `json:"stop_reason"`
}

// chatCompletion is a non-streaming chat response.
type chatCompletion struct {
	ID             string       `json:"id"`
	Object         string       `json:"object"`
	Created        int64        `json:"created"`
	Model          string       `json:"model"`
	Choices        []chatChoice `json:"choices"`
	Usage          usage        `json:"usage"`
	PromptLogprobs null         `json:"prompt_logprobs"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     null        `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
	StopReason   null        `json:"stop_reason"`
}

type chatMessage struct {
	Role             string     `json:"role"`
	Content          string     `json:"content"`
	ReasoningContent *string    `json:"reasoning_content"`
	ToolCalls        []struct{} `json:"tool_calls"`
}

// textCompletion is a non-streaming text completion response.
type textCompletion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   usage              `json:"usage"`
}

type completionChoice struct {
	Index          int    `json:"index"`
	Text           string `json:"text"`
	Logprobs       null   `json:"logprobs"`
	FinishReason   string `json:"finish_reason"`
	StopReason     null   `json:"stop_reason"`
	PromptLogprobs null   `json:"prompt_logprobs"`
}
