// Package sim is the built-in vLLM simulator: an HTTP server that speaks
// vLLM's OpenAI-compatible API (chat and text completions, streaming and
// not, /v1/models, /health, /tokenize, /metrics with vllm:* series) with a
// configurable, deterministic latency and failure model, so that the load
// generator can be tested and demonstrated without a GPU.
//
// Everything it serves is labelled simulated: every response carries the
// header X-Tokenwatt-Simulated: true, the model card says "simulated": true
// and is owned by "tokenwatt-sim", and /metrics exports
// tokenwatt_sim_info{simulated="true"}.
//
// It also simulates the GPUs' energy (Config.IdleWatts, WattsPerSeq,
// JoulesPerToken, GPUs) and exports it on /metrics exactly as tokenwatt's
// energy-exporter exports real GPUs (tokenwatt_gpu_energy_joules_total,
// tokenwatt_gpu_power_watts), with gpu_model "tokenwatt-sim (simulated)",
// uuids SIM-<seed>-<i> and tokenwatt_energy_exporter_info{source="sim",
// simulated="true"}, so that the scrape energy source reads it like any
// remote GPU host.
//
// Determinism: each generation request that passes validation gets the next
// number of a per-server arrival counter (1, 2, ...). Every random decision
// for that request (injected fault, natural output length, token texts,
// TTFT/ITL jitter, where a fault strikes) comes from a generator seeded by
// Config.Seed and that number only. The same seed and the same sequence of
// requests therefore give the same texts, lengths, jitter and failures;
// timing that depends on concurrency (queueing, batching slow-down) follows
// the actual load.
//
// This package must not depend on the load generator, the exporter or the
// report packages: it stands in for a real server.
package sim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// SimulatedHeader is the response header that marks every response of the
// simulator, so that no output can be mistaken for a real server's.
const SimulatedHeader = "X-Tokenwatt-Simulated"

// StampPrefix opens the SSE comment line with which a simulator with
// Config.StampChunks starts each token's write of a stream:
// ": tokenwatt-sent <unix_ns> <timer_late_ns>\n". unix_ns is
// time.Now().UnixNano() taken immediately before the write and its
// flush; timer_late_ns is that instant minus the token's deadline (how
// late the simulator's own timer woke it; negative if early). The first
// token's stamp precedes the role chunk, which carries no text. SSE
// clients ignore comment lines; tokenwatt's client reads them
// (backends, which has the same constant).
const StampPrefix = ": tokenwatt-sent "

// OwnedBy is the owned_by field of the simulator's model card.
const OwnedBy = "tokenwatt-sim"

// Config is the simulator's latency and failure model. DefaultConfig gives
// a realistic starting point. New takes the durations, probabilities and
// powers as they are (zero TTFT and ITL give an instant server, zero watts
// a GPU that uses no energy); only Model, MaxNumSeqs, DefaultMaxTokens,
// MaxModelLen and GPUs, for which zero means nothing, fall back to
// DefaultConfig's values when zero.
//
// The five fault probabilities are exclusive per request: one uniform draw
// picks at most one fault, so their sum must not exceed 1.
type Config struct {
	Model            string        // served model id; "" means "tokenwatt-sim"
	TTFT             time.Duration // time from admission (a free sequence slot) to the first token, plus PrefillPerToken × prompt tokens
	PrefillPerToken  time.Duration // prefill time per prompt token, added to TTFT: longer prompts (e.g. a conversation's history) take longer to the first token
	ITL              time.Duration // gap between consecutive tokens with one running sequence
	Jitter           time.Duration // each TTFT and ITL gets uniform noise in [-Jitter, +Jitter], clamped at 0
	MaxNumSeqs       int           // sequences decoded at once (vLLM --max-num-seqs); more wait in a FIFO queue; 0 means 256
	SlowdownPerSeq   float64       // ITL is multiplied by 1 + SlowdownPerSeq × (running − 1)
	DefaultMaxTokens int           // max_tokens when a request sets none; 0 means 256
	MaxModelLen      int           // context length (vLLM --max-model-len): prompt + max_tokens above it is answered 400; 0 means DefaultMaxModelLen
	Fail500          float64       // probability of an HTTP 500 (OpenAI error JSON) instead of a response
	Fail429          float64       // probability of an HTTP 429 (OpenAI error JSON) instead of a response
	Disconnect       float64       // probability that the connection is closed mid-response
	Stall            float64       // probability that a response stops after the first token until the client gives up
	Garbage          float64       // probability that one SSE data line (or a non-streaming body) is not valid JSON
	Reasoning        bool          // chat: the first half of the tokens are delta.reasoning_content, like vLLM's reasoning models
	Seed             int64         // seed of every random decision; see the package comment

	// StampChunks starts each token's write of a stream with the SSE
	// comment line ": tokenwatt-sent <unix_ns> <timer_late_ns>\n" (see
	// StampPrefix), so that a client on the same host can tell its own
	// lateness from the simulator's. Off, the bytes are vLLM's.
	StampChunks bool

	// The power model. The simulated GPUs draw IdleWatts plus WattsPerSeq
	// per running sequence (admitted and generating), and JoulesPerToken
	// for each generated token, all together and split evenly across GPUs.
	IdleWatts      float64 // power with no sequence running, watts
	WattsPerSeq    float64 // extra power per running sequence, watts
	JoulesPerToken float64 // extra energy per generated token, joules
	GPUs           int     // number of simulated GPUs; 0 means 1
}

// DefaultMaxModelLen is the simulator's default context length, in
// tokens: Llama 3.1's 128k. It bounds what one request can make the
// simulator generate (and hold, for a non-streamed answer).
const DefaultMaxModelLen = 131072

// DefaultConfig returns the simulator's defaults: model "tokenwatt-sim",
// TTFT 50 ms, ITL 10 ms, no jitter, 256 sequences, 256 default max tokens,
// a context of DefaultMaxModelLen tokens, no slow-down, no faults, seed 1,
// and one GPU drawing 100 W idle plus 50 W per running sequence.
func DefaultConfig() Config {
	return Config{
		Model:            "tokenwatt-sim",
		TTFT:             50 * time.Millisecond,
		ITL:              10 * time.Millisecond,
		MaxNumSeqs:       256,
		DefaultMaxTokens: 256,
		MaxModelLen:      DefaultMaxModelLen,
		Seed:             1,
		IdleWatts:        100,
		WattsPerSeq:      50,
		GPUs:             1,
	}
}

// withDefaults fills the fields whose zero value means nothing.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Model == "" {
		c.Model = d.Model
	}
	if c.MaxNumSeqs == 0 {
		c.MaxNumSeqs = d.MaxNumSeqs
	}
	if c.DefaultMaxTokens == 0 {
		c.DefaultMaxTokens = d.DefaultMaxTokens
	}
	if c.MaxModelLen == 0 {
		c.MaxModelLen = d.MaxModelLen
	}
	if c.GPUs == 0 {
		c.GPUs = d.GPUs
	}
	return c
}

// validate checks c (after withDefaults) and names the first bad field.
func (c Config) validate() error {
	durations := []struct {
		name string
		v    time.Duration
	}{{"TTFT", c.TTFT}, {"PrefillPerToken", c.PrefillPerToken}, {"ITL", c.ITL}, {"Jitter", c.Jitter}}
	for _, d := range durations {
		if d.v < 0 {
			return fmt.Errorf("simulator config: %s must not be negative, got %v", d.name, d.v)
		}
	}
	if c.MaxNumSeqs < 0 {
		return fmt.Errorf("simulator config: MaxNumSeqs must be at least 1, got %d", c.MaxNumSeqs)
	}
	if c.DefaultMaxTokens < 0 {
		return fmt.Errorf("simulator config: DefaultMaxTokens must be at least 1, got %d", c.DefaultMaxTokens)
	}
	if c.MaxModelLen < 0 {
		return fmt.Errorf("simulator config: MaxModelLen must be at least 1, got %d", c.MaxModelLen)
	}
	if !(c.SlowdownPerSeq >= 0) || math.IsInf(c.SlowdownPerSeq, 1) {
		return fmt.Errorf("simulator config: SlowdownPerSeq must be a non-negative number, got %v", c.SlowdownPerSeq)
	}
	powers := []struct {
		name string
		v    float64
	}{{"IdleWatts", c.IdleWatts}, {"WattsPerSeq", c.WattsPerSeq}, {"JoulesPerToken", c.JoulesPerToken}}
	for _, p := range powers {
		if !(p.v >= 0) || math.IsInf(p.v, 1) {
			return fmt.Errorf("simulator config: %s must be a non-negative number, got %v", p.name, p.v)
		}
	}
	if c.GPUs < 0 {
		return fmt.Errorf("simulator config: GPUs must be at least 1, got %d", c.GPUs)
	}
	sum := 0.0
	for _, f := range c.faults() {
		if !(f.p >= 0 && f.p <= 1) {
			return fmt.Errorf("simulator config: %s is a probability and must be in [0, 1], got %v", f.name, f.p)
		}
		sum += f.p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("simulator config: the fault probabilities Fail500+Fail429+Disconnect+Stall+Garbage sum to %v; they are exclusive per request and must sum to at most 1", sum)
	}
	return nil
}

// Server is the simulator as an http.Handler. Create it with New; Start
// serves it on a listener.
type Server struct {
	cfg      Config
	created  int64 // model card creation time, Unix seconds
	sched    *scheduler
	metrics  *metrics
	power    *powerMeter
	registry *prometheus.Registry
	metricsH http.Handler
	arrivals atomic.Uint64 // numbers valid generation requests; see the package comment
	timers   timers        // the streams' token deadlines
}

// New validates cfg and returns a simulator. Its error names the bad field.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("simulator metrics: %w", err)
	}
	power := newPowerMeter(cfg, time.Now)
	if err := registerPower(reg, power, cfg); err != nil {
		return nil, fmt.Errorf("simulator metrics: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		created:  time.Now().Unix(),
		metrics:  m,
		power:    power,
		registry: reg,
		metricsH: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	s.sched = newScheduler(cfg.MaxNumSeqs, func(running, waiting int) {
		m.setQueue(running, waiting)
		power.setRunning(running)
	})
	return s, nil
}

// Config returns the configuration s runs with, defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// ServeHTTP serves vLLM's OpenAI-compatible API:
//
//	GET  /health               200, empty body
//	GET  /v1/models            the served model (OpenAI list shape)
//	POST /v1/chat/completions  chat completions, streaming or not
//	POST /v1/completions       text completions, streaming or not
//	POST /tokenize             vLLM's: a prompt's or messages' token ids, as usage counts them
//	GET  /metrics              Prometheus exposition: vllm:* series, simulated GPU energy
//
// An injected disconnect aborts the connection by panicking with
// http.ErrAbortHandler, which net/http's server turns into a silent close;
// serve s with an http.Server (Start does) when Disconnect is non-zero.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(SimulatedHeader, "true")
	var allowed string
	var h func(http.ResponseWriter, *http.Request)
	switch r.URL.Path {
	case "/health":
		allowed, h = http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }
	case "/v1/models":
		allowed, h = http.MethodGet, s.serveModels
	case "/v1/chat/completions":
		allowed, h = http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.serveGenerate(w, r, apiChat) }
	case "/v1/completions":
		allowed, h = http.MethodPost, func(w http.ResponseWriter, r *http.Request) { s.serveGenerate(w, r, apiCompletions) }
	case "/tokenize":
		allowed, h = http.MethodPost, s.serveTokenize
	case "/metrics":
		allowed, h = http.MethodGet, s.metricsH.ServeHTTP
	default:
		// FastAPI's answer, which is what vLLM returns for unknown paths.
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
		return
	}
	if r.Method != allowed && !(allowed == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", allowed)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
		return
	}
	h(w, r)
}

func (s *Server) serveModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, modelList{
		Object: "list",
		Data: []modelCard{{
			ID:          s.cfg.Model,
			Object:      "model",
			Created:     s.created,
			OwnedBy:     OwnedBy,
			Root:        s.cfg.Model,
			MaxModelLen: s.cfg.MaxModelLen,
			Permission: []modelPermission{{
				ID:            "modelperm-tokenwatt-sim",
				Object:        "model_permission",
				Created:       s.created,
				AllowSampling: true,
				AllowLogprobs: true,
				AllowView:     true,
				Organization:  "*",
			}},
			Simulated: true,
		}},
	})
}

// writeJSON writes v as a complete JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value written here is one of this package's plain structs,
		// so this is a programming error worth a loud 500.
		http.Error(w, "simulator: encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes vLLM's error JSON: {"error": {message, type, param, code}}.
func writeError(w http.ResponseWriter, status int, errType, param, format string, args ...any) {
	info := errorInfo{Message: fmt.Sprintf(format, args...), Type: errType, Code: status}
	if param != "" {
		info.Param = &param
	}
	writeJSON(w, status, errorResponse{Error: info})
}
