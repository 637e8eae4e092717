package report

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/atomicfile"
)

// ReportSchema names the version of report.json's layout
// (docs/report.md). A field is only ever added; a change of meaning gets
// a new version.
const ReportSchema = "tokenwatt.report/v1"

// ReportFileName is the run directory's machine-readable report.
const ReportFileName = "report.json"

// ReportPercentiles are the percentiles every distribution in report.json
// carries, keyed as "p50", "p90", "p95", "p99", "p99.9".
var ReportPercentiles = []float64{50, 90, 95, 99, 99.9}

// PercentileKey is the key of percentile p (0 < p < 100) in report.json
// and the table: "p50", "p99.9".
func PercentileKey(p float64) string { return "p" + formatFloat(p) }

// Report is report.json: one run's resolved settings and every statistic,
// for other tools (and `loadgen compare`) to read. Unknown values are
// JSON null, never 0.
type Report struct {
	Schema           string     `json:"schema"`
	RunID            string     `json:"run_id"`
	BenchmarkName    string     `json:"benchmark_name"`
	TokenwattVersion string     `json:"tokenwatt_version"`
	Host             string     `json:"host"`
	Simulated        bool       `json:"simulated"`
	Started          *time.Time `json:"started"`  // first measured send
	Finished         *time.Time `json:"finished"` // last completion
	DurationS        *float64   `json:"duration_s"`
	StopReason       string     `json:"stop_reason"`

	Settings Settings `json:"settings"`
	Requests Requests `json:"requests"`
	Rates    Rates    `json:"rates"`
	// Latency holds the distributions of successful requests' ttft,
	// itl, tpot, e2e and e2e_from_sched, and every send's schedule_lag,
	// in seconds; a distribution with no value is null.
	Latency map[string]*Distribution `json:"latency_s"`
	Tokens  Tokens                   `json:"tokens"`
	Energy  *ReportEnergy            `json:"energy"` // null without an energy source
	SLO     *ReportSLO               `json:"slo"`    // null without an SLO (--slo)
	Client  Client                   `json:"client"`
	Files   Files                    `json:"files"`
	// Stages are a run's stages, or its ramp as one stage, in order;
	// null for a run without them.
	Stages []StageStats `json:"stages"`
}

// StageStats is one stage of a run whose load changes over time: what it
// asked for and what its requests (those it sent, by their records'
// stage) got.
type StageStats struct {
	Index int    `json:"index"`
	Spec  string `json:"spec"` // as --stages writes it (60s@5, 2m@c8, 30s@20/c64), or a ramp as --ramp does (1:50:10m)
	// Rate is an open-loop stage's target, requests per second (a ramp's
	// at its start, RateTo at its end); null for a closed-loop stage.
	Rate   *float64 `json:"rate"`
	RateTo *float64 `json:"rate_to"` // a ramp's end rate; null otherwise
	// Concurrency is a closed-loop stage's requests in flight, an
	// open-loop stage's in-flight cap (0: none).
	Concurrency int     `json:"concurrency"`
	DurationS   float64 `json:"duration_s"` // as planned
	// Started is when the stage began (null: the run stopped before it);
	// RanS how long it ran: its duration, or less when the run stopped
	// during it.
	Started *time.Time `json:"started"`
	RanS    float64    `json:"ran_s"`
	// Requests, OK and Failed count the stage's requests by outcome.
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	// SendRate is Requests / RanS; ExpectedRequests what an open-loop
	// stage's rate asks for in RanS (the rate's integral; null in closed
	// loop).
	SendRate         *float64 `json:"send_rate"`
	ExpectedRequests *float64 `json:"expected_requests"`
	// Successful requests' mean TTFT and E2E, seconds, and output tokens.
	TTFTMeanS    *float64 `json:"ttft_mean_s"`
	E2EMeanS     *float64 `json:"e2e_mean_s"`
	OutputTokens *int64   `json:"output_tokens"`
	// EnergyJ is the energy attributed to the stage's requests (prefill
	// and decode; idle time is no request's), null without an energy
	// source; JoulesPerOutputToken is that of its successful requests
	// over their output tokens.
	EnergyJ              *float64 `json:"energy_j"`
	JoulesPerOutputToken *float64 `json:"joules_per_output_token"`
	// Warning says an open-loop stage sent fewer requests than its rate
	// asks for; empty otherwise.
	Warning string `json:"warning"`
}

// Settings are the run's resolved settings: what the scenario, the POC
// config and the flags came to.
type Settings struct {
	Scenario       string `json:"scenario"`
	Endpoint       string `json:"endpoint"` // without user:password
	Model          string `json:"model"`
	Backend        string `json:"backend"`
	API            string `json:"api"`
	Stream         bool   `json:"stream"`
	Dataset        string `json:"dataset"`
	DatasetField   string `json:"dataset_field"`
	DatasetFormat  string `json:"dataset_format"` // the rows' shape: prompt, chat or sharegpt
	DatasetPrompts int    `json:"dataset_prompts"`
	DatasetSHA256  string `json:"dataset_sha256"` // of the prompts sent, in order
	// InputLen and OutputLen are the length distributions asked for
	// (compact form), PromptTokenizer what counted synthetic prompts'
	// tokens: "server" (its POST /tokenize), "tokenizer.json" or
	// "estimate"; null when not used.
	InputLen               *string  `json:"input_len"`
	OutputLen              *string  `json:"output_len"`
	PromptTokenizer        *string  `json:"prompt_tokenizer"`
	NumSamples             int      `json:"num_samples"`
	DurationS              float64  `json:"duration_s"`
	Rate                   float64  `json:"rate"` // 0: closed loop
	Arrival                string   `json:"arrival"`
	Burstiness             float64  `json:"burstiness"`
	Concurrency            int      `json:"concurrency"`
	Warmup                 int      `json:"warmup"`
	MaxTokens              int      `json:"max_tokens"`
	MinTokens              int      `json:"min_tokens"`
	IgnoreEOS              bool     `json:"ignore_eos"`
	Temperature            *float64 `json:"temperature"`
	Seed                   *int64   `json:"seed"`
	Stages                 string   `json:"stages"` // as --stages writes them; empty without
	Ramp                   string   `json:"ramp"`   // as --ramp writes it; empty without
	TimeoutS               float64  `json:"timeout_s"`
	MaxConsecutiveFailures int      `json:"max_consecutive_failures"`
	EnergySource           string   `json:"energy_source"`
	EnergyIntervalS        float64  `json:"energy_interval_s"`
	IdleBaselineS          float64  `json:"idle_baseline_s"`
	GPUs                   []string `json:"gpus"`       // UUIDs
	GPUModels              []string `json:"gpu_models"` // the GPUs' models, in the same order
	GPUSelection           string   `json:"gpu_selection"`
	CarbonIntensityGPerKWh *float64 `json:"carbon_intensity_g_per_kwh"`

	// ExtraBody is what every request body carried beside tokenwatt's
	// own fields (--extra-body, extra_body); null: nothing.
	ExtraBody map[string]any `json:"extra_body"`
	// SaveText says whether the records hold prompts and answers
	// (--save-text); report.json never does.
	SaveText bool `json:"save_text"`
	// MultiTurn is how conversations were replayed; nil: single requests.
	MultiTurn *MultiTurn `json:"multi_turn"`
	// IdleBaselineFrom is the run whose idle baseline this run used
	// instead of measuring one (a sweep's first point; IdleBaselineS is
	// then 0); empty otherwise.
	IdleBaselineFrom string `json:"idle_baseline_from"`
	// Shard is the run's shard as --shard writes it ("1/4"), the load
	// settings above (num_samples, rate, concurrency, warmup, stages,
	// ramp) then being the shard's share; empty when not sharded.
	Shard string `json:"shard"`
	// StartAt is when the schedule was to start (--start-at); nil when
	// it started as soon as the run was ready.
	StartAt *time.Time `json:"start_at"`
}

// MultiTurn is a multi-turn run's replay settings.
type MultiTurn struct {
	History               string  `json:"history"` // server or dataset
	ThinkTimeS            float64 `json:"think_time_s"`
	ThinkTimeDistribution string  `json:"think_time_distribution"` // constant or exponential
}

// Requests counts the measured requests by outcome.
type Requests struct {
	Total    int            `json:"total"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Outcomes map[string]int `json:"outcomes"` // every outcome seen, ok included

	// FinishReasons counts the ok requests by the finish reason the
	// server gave ("stop", "length", ...; at most 32 distinct, the rest
	// under "(other)"); NoFinishReason the ok requests it gave none.
	FinishReasons  map[string]int `json:"finish_reasons"`
	NoFinishReason int            `json:"no_finish_reason"`
}

// Rates are the target and achieved rates, req/s.
type Rates struct {
	Target     *float64 `json:"target"` // null: closed loop
	Send       *float64 `json:"send"`
	Completion *float64 `json:"completion"`
	Warning    string   `json:"warning"`
}

// Distribution summarises one measured quantity.
type Distribution struct {
	Count       int64              `json:"count"`
	Mean        float64            `json:"mean"`
	Std         float64            `json:"std"` // population standard deviation
	Min         float64            `json:"min"`
	Max         float64            `json:"max"`
	Percentiles map[string]float64 `json:"percentiles"` // ReportPercentiles, by PercentileKey
}

// Tokens are token counts and throughputs: successful requests', and
// failed ones' apart.
type Tokens struct {
	Prompt                *int64   `json:"prompt"`
	Output                *int64   `json:"output"`
	Total                 *int64   `json:"total"`
	FailedPrompt          *int64   `json:"failed_prompt"`
	FailedOutput          *int64   `json:"failed_output"`
	OutputPerSecond       *float64 `json:"output_per_s"`
	PromptOutputPerSecond *float64 `json:"total_per_s"`
}

// ReportEnergy is the run's GPU energy (docs/energy.md).
type ReportEnergy struct {
	Source               string   `json:"source"`
	Method               string   `json:"method"`
	GPUs                 *int     `json:"gpus"`
	GPUEnergyWh          *float64 `json:"gpu_energy_wh"`
	ActiveEnergyWh       *float64 `json:"active_energy_wh"`
	AvgPowerW            *float64 `json:"avg_power_w"`
	PeakPowerW           *float64 `json:"peak_power_w"`
	IdlePowerW           *float64 `json:"idle_power_w"`
	JoulesPerOutputToken *float64 `json:"joules_per_output_token"`
	WhPer1000Queries     *float64 `json:"wh_per_1000_queries"`
	EmissionsGCO2eq      *float64 `json:"emissions_g_co2eq"`
	Warning              string   `json:"warning"`
}

// ReportSLO is the run's SLO goodput (docs/definitions.md, "SLO
// goodput"): how many requests met the SLO, and what that gave.
type ReportSLO struct {
	Spec string `json:"spec"` // as --slo takes it: "ttft=500ms,tpot=50ms"
	// The bounds, seconds; null: not bound.
	TTFTS *float64 `json:"ttft_s"`
	TPOTS *float64 `json:"tpot_s"`
	E2ES  *float64 `json:"e2e_s"`
	// Met and Missed count the measured requests (a failed one misses);
	// Attainment is Met over all of them.
	Met        int      `json:"met"`
	Missed     int      `json:"missed"`
	Attainment *float64 `json:"attainment"`
	// OutputTokens are the output tokens of the requests that met it.
	OutputTokens                 *int64   `json:"output_tokens"`
	GoodputRequestsPerSecond     *float64 `json:"goodput_requests_per_s"`
	GoodputOutputTokensPerSecond *float64 `json:"goodput_output_tokens_per_s"`
	// JoulesPerSLOOutputToken is the run's GPU energy over OutputTokens;
	// null without energy.
	JoulesPerSLOOutputToken *float64 `json:"joules_per_slo_output_token"`
}

// Client is whether the load generator limited the run, and, against a
// simulator that stamps its chunks (--stamp-chunks), how late the client
// read them.
type Client struct {
	Saturated  *bool  `json:"saturated"`
	Saturation string `json:"saturation"` // how often and how badly, when saturated
	// LatenessS is the distribution of every stamped text chunk's client
	// lateness (its arrival minus the simulator's stamp of its write:
	// kernel and client, docs/definitions.md), ServerTimerLatenessS of
	// the simulator's own timer lateness (its write minus the token's
	// deadline), in seconds; null when no stamp came.
	LatenessS            *Distribution `json:"lateness_s"`
	ServerTimerLatenessS *Distribution `json:"server_timer_lateness_s"`
}

// Files are the run's other outputs, as paths.
type Files struct {
	Records string `json:"records"`
	Energy  string `json:"energy"` // empty without an energy source
	Summary string `json:"summary"`
}

// FillFromRow sets the report's fields that the summary row holds.
func (rep *Report) FillFromRow(r *Row) {
	rep.Schema = ReportSchema
	rep.RunID, rep.BenchmarkName, rep.Simulated = r.RunID, r.BenchmarkName, r.Simulated
	rep.DurationS = r.TotalDurationSeconds
	rep.Requests.Total, rep.Requests.OK, rep.Requests.Failed = r.TotalPrompts, r.SuccessfulPrompts, r.FailedPrompts
	if r.RequestRate != nil && *r.RequestRate > 0 {
		rep.Rates.Target = r.RequestRate
	}
	rep.Rates.Send, rep.Rates.Completion, rep.Rates.Warning = r.SendRate, r.CompletionRate, r.RateWarning
	rep.Tokens = Tokens{Prompt: r.TotalPromptTokens, Output: r.TotalCompletionTokens, Total: r.TotalTokens,
		FailedPrompt: r.FailedPromptTokens, FailedOutput: r.FailedOutputTokens,
		OutputPerSecond: r.OutputThroughputTokensPerSecond, PromptOutputPerSecond: r.ThroughputTokensPerSecond}
	if r.EnergySource != "" && r.EnergySource != "none" {
		rep.Energy = &ReportEnergy{Source: r.EnergySource, Method: r.EnergyMethod, GPUs: r.GPUs,
			GPUEnergyWh: r.GPUEnergyWh, ActiveEnergyWh: r.ActiveEnergyWh, AvgPowerW: r.AvgPowerW,
			PeakPowerW: r.PeakPowerW, IdlePowerW: r.IdlePowerW, JoulesPerOutputToken: r.JoulesPerOutputToken,
			WhPer1000Queries: r.WhPer1000Queries, EmissionsGCO2eq: r.EmissionsGCO2eq, Warning: r.EnergyWarning}
	}
	rep.Client.Saturated = r.ClientSaturated
	rep.Settings.CarbonIntensityGPerKWh = r.CarbonIntensityGPerKWh
	if r.SLO != "" && r.SLOMetRequests != nil {
		met := *r.SLOMetRequests
		rep.SLO = &ReportSLO{Spec: r.SLO, Met: met, Missed: r.TotalPrompts - met, OutputTokens: r.SLOOutputTokens,
			GoodputRequestsPerSecond: r.GoodputRequestsPerSecond, GoodputOutputTokensPerSecond: r.GoodputOutputTokensPerSecond,
			JoulesPerSLOOutputToken: r.JoulesPerSLOOutputToken}
		if r.TotalPrompts > 0 {
			rep.SLO.Attainment = ptrF(float64(met) / float64(r.TotalPrompts))
		}
	}
}

// WriteReport writes rep as indented JSON to path, atomically (a
// temporary file renamed into place), so a reader never sees half a
// report.
func WriteReport(path string, rep *Report) error { return WriteJSON(path, rep) }

// WriteJSON writes v as indented JSON and a final newline to path,
// atomically: report.json, sweep.json.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// ReadReport reads a report.json, refusing another schema.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if rep.Schema != ReportSchema {
		return nil, fmt.Errorf("read %s: schema %q, want %q", path, rep.Schema, ReportSchema)
	}
	return &rep, nil
}
