package scenario

import (
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
)

// Scenario is everything a run needs to know about the load it applies:
// which prompts, how they are scheduled, and how each request is shaped.
// Built-in scenarios live as YAML in configs/scenarios/ (embedded in the
// binary); a user's scenario file has the same keys. Command-line flags
// override the fields they name.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"` // one line, shown by `loadgen scenarios`

	// Where requests go. Empty means "not set by the scenario".
	Backend  string `yaml:"backend"`  // openai | vllm | pytorch
	Endpoint string `yaml:"endpoint"` // e.g. http://localhost:8000/v1
	Model    string `yaml:"model"`    // empty: the only model the server serves
	API      string `yaml:"api"`      // chat | completions
	Stream   *bool  `yaml:"stream"`   // nil: true

	// Prompts.
	Dataset      string `yaml:"dataset"`       // file path, hf://ORG/NAME[?split=..&column=..], or synthetic[:...]
	DatasetField string `yaml:"dataset_field"` // JSONL field / CSV column / HF column; empty: the format's defaults
	// DatasetFormat is the rows' shape: auto (empty: detected from the
	// first row), prompt, chat (OpenAI messages) or sharegpt.
	DatasetFormat string `yaml:"dataset_format"`
	// InputLen is the length distribution of synthetic prompts, in
	// tokens (with a shared prefix: of the part after it), made exact
	// with the server's or the model's tokenizer; zero: the dataset's
	// mean=, else the default. Only for synthetic datasets.
	InputLen lengths.Dist `yaml:"input_len"`
	// SimFallbackMeanTokens is the mean prompt length, in tokens, of the
	// synthetic prompts used under --sim when Dataset cannot be loaded
	// (no network, no cache). 0 disables the fallback.
	SimFallbackMeanTokens int `yaml:"sim_fallback_mean_tokens"`

	// Schedule. Concurrency 1 and Rate 0 is sequential (batch 1);
	// Rate 0 is closed-loop at Concurrency; Rate > 0 is open-loop at Rate
	// req/s with Concurrency as the in-flight cap (0: unlimited). Stages
	// or a Ramp replace Rate.
	NumSamples  int           `yaml:"num_samples"` // 0: no count limit
	Duration    time.Duration `yaml:"duration"`    // 0: no time limit
	Concurrency int           `yaml:"concurrency"`
	Rate        float64       `yaml:"rate"`
	Arrival     string        `yaml:"arrival"`    // constant | poisson | gamma
	Burstiness  float64       `yaml:"burstiness"` // gamma shape; 1 = poisson
	Warmup      int           `yaml:"warmup"`     // requests sent first and excluded from results
	// Load that changes over time, instead of Rate: Stages one after the
	// other (each open loop at its rate, or closed loop at its
	// concurrency), or a linear Ramp of the open-loop rate. The run ends
	// with the last stage (or before, by NumSamples or Duration).
	// Arrival and Burstiness apply to the open-loop stages and the ramp;
	// Concurrency is their in-flight cap.
	Stages []Stage `yaml:"stages"`
	Ramp   *Ramp   `yaml:"ramp"`

	// Multi-turn conversation replay (docs/definitions.md, "Multi-turn
	// conversations"): each conversation's user turns are sent in order,
	// each with the history so far. Concurrency and Rate then count
	// conversations (in progress; started per second), NumSamples and
	// Warmup requests (turns).
	MultiTurn bool `yaml:"multi_turn"`
	// History is what earlier turns' answers are: server (empty: the
	// server's own answers) or dataset (the answers the dataset recorded).
	History string `yaml:"history"`
	// ThinkTime is the pause between a turn's end and the next turn's
	// intended send time: exactly this long (constant, the default), or
	// drawn from ThinkTimeDistribution with this mean.
	ThinkTime             time.Duration `yaml:"think_time"`
	ThinkTimeDistribution string        `yaml:"think_time_distribution"` // constant | exponential

	// Request shape.
	// OutputLen draws each prompt's output length, sent as max_tokens and
	// min_tokens alike (vLLM; PyTorch: max_new_tokens, min_new_tokens),
	// so that every answer is exactly that long; it replaces max_tokens,
	// min_tokens and datasets' own output lengths. Zero: not set.
	OutputLen   lengths.Dist `yaml:"output_len"`
	MaxTokens   int          `yaml:"max_tokens"`
	MinTokens   int          `yaml:"min_tokens"`
	IgnoreEOS   bool         `yaml:"ignore_eos"`
	Temperature *float64     `yaml:"temperature"`
	Seed        *int64       `yaml:"seed"`
	// ExtraBody holds server-specific fields added to every request body
	// (e.g. reasoning_effort: low); keys tokenwatt sets itself are
	// refused when the backend is made (backends.ExtraBody).
	ExtraBody map[string]any `yaml:"extra_body"`

	// SaveText keeps each request's prompt and generated answer in its
	// record (prompt, text). Off, no prompt or answer text is written
	// anywhere: they may be private.
	SaveText bool `yaml:"save_text"`

	// IdleBaseline is how long GPU power is measured before the first
	// request, for the idle baseline (0: none).
	IdleBaseline time.Duration `yaml:"idle_baseline"`

	// SLO, if set, is the latency promise each request is held to: its
	// record says whether it met it, and the run reports goodput
	// (--slo, "ttft=500ms,tpot=50ms,e2e=2s").
	SLO *SLO `yaml:"slo"`

	// Failure handling.
	MaxConsecutiveFailures int           `yaml:"max_consecutive_failures"` // 0: never stop
	Timeout                time.Duration `yaml:"timeout"`                  // per request; 0: none
}

// The bounds Validate puts on a scenario's counts and rate, so that an
// absurd value is an error naming its key rather than a run that hangs,
// overflows or sends everything at once.
const (
	// MaxConcurrency bounds concurrency (closed-loop requests in flight,
	// or the open-loop in-flight cap). One client address reaches one
	// endpoint over at most about 64,000 TCP connections; a million
	// leaves room for HTTP/2 and several addresses while a goroutine and
	// a connection each (tens of KiB) still fit a client's memory.
	MaxConcurrency = 1_000_000
	// MaxRequests bounds num_samples and warmup: a billion requests is
	// more than a day at 10,000 req/s (a longer run gives a duration, or
	// none to run until interrupted), and num_samples + warmup still fits
	// an int on every platform.
	MaxRequests = 1_000_000_000
	// MinRate is the slowest open-loop rate, in requests per second: one
	// request every 11.6 days. Slower, the schedule's offsets leave the
	// range of a duration (292 years) soon after the first request.
	MinRate = 1e-6
)

// History sources (Scenario.History, --history).
const (
	HistoryServer  = "server"
	HistoryDataset = "dataset"
)

// Think-time distributions (Scenario.ThinkTimeDistribution).
const (
	ThinkConstant    = "constant"
	ThinkExponential = "exponential"
)

// Arrival process names (Scenario.Arrival, --arrival).
const (
	ArrivalConstant = "constant"
	ArrivalPoisson  = "poisson"
	ArrivalGamma    = "gamma"
)
