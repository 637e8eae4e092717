package report

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// SchemaVersion is the version of the CSV summary schema this package
// writes. Columns are only ever appended; a file whose header differs from
// Columns is refused rather than misaligned.
const SchemaVersion = 1

// timestampLayout is the format of the timestamp column: UTC with
// microseconds and a "+00:00" offset, exactly what the Python POC's
// datetime.now(timezone.utc).isoformat() wrote. It is valid RFC 3339, and
// unlike a "Z" suffix it is accepted by datetime.fromisoformat on every
// Python version, so the POC's tooling keeps reading our files.
const timestampLayout = "2006-01-02T15:04:05.000000-07:00"

// Row is one run's CSV summary. Nil pointers and empty strings are unknown
// values and are written as empty cells, never as 0. Durations are seconds,
// energy is watt-hours where the column says _wh and joules where it says
// joules.
type Row struct {
	// The Python POC's columns, in its order and with its meaning.
	BenchmarkName             string
	Backend                   string
	Model                     string
	TotalPrompts              int      // measured requests (warm-up excluded)
	SuccessfulPrompts         int      // requests whose outcome was ok
	FailedPrompts             int      // every other measured request
	TotalDurationSeconds      *float64 // run window: first measured send to last completion
	AvgLatencySeconds         *float64 // mean E2E latency of successful requests
	TotalTokens               *int64   // TotalPromptTokens + TotalCompletionTokens
	TotalPromptTokens         *int64
	TotalCompletionTokens     *int64
	ThroughputTokensPerSecond *float64  // (prompt + completion tokens) / duration, the POC's meaning
	Timestamp                 time.Time // end of the run; zero is unknown

	// tokenwatt's columns (schema_version is implied by the type).
	RunID                           string
	Scenario                        string
	Endpoint                        string
	RequestRate                     *float64 // configured req/s; 0 is closed loop
	TTFTMeanSeconds                 *float64
	TTFTP50Seconds                  *float64
	TTFTP90Seconds                  *float64
	TTFTP99Seconds                  *float64
	ITLP50Seconds                   *float64
	ITLP90Seconds                   *float64
	ITLP99Seconds                   *float64
	TPOTMeanSeconds                 *float64
	E2EP50Seconds                   *float64
	E2EP90Seconds                   *float64
	E2EP99Seconds                   *float64
	ScheduleLagP99Seconds           *float64
	OutputThroughputTokensPerSecond *float64 // completion tokens / duration
	EnergySource                    string   // e.g. dcgm, nvml, sim, none
	EnergyMethod                    string   // counter, integrated or mixed
	GPUs                            *int
	GPUEnergyWh                     *float64
	ActiveEnergyWh                  *float64 // GPU energy minus idle power × duration
	AvgPowerW                       *float64
	PeakPowerW                      *float64
	IdlePowerW                      *float64
	JoulesPerOutputToken            *float64
	WhPer1000Queries                *float64
	CarbonIntensityGPerKWh          *float64
	EmissionsGCO2eq                 *float64

	// tokenwatt's additions after schema version 1's published list.
	Simulated      bool // the target was tokenwatt's simulator (--sim, or detected)
	WarmupRequests *int
	Concurrency    *int // configured concurrency (in-flight cap in open loop; 0 is unlimited)
	Arrival        string
	// ClientSaturated says whether the load generator itself limited the
	// run at any time (behind its open-loop schedule, out of CPU, or kept
	// waiting for a CPU), so that the latencies may describe the client;
	// nil is unknown.
	ClientSaturated *bool
	// GPUUUIDs are the measured GPUs' UUIDs, space-separated, in the
	// source's order; empty without energy.
	GPUUUIDs string
	// GPUSelection is how they were chosen: all, --gpus,
	// CUDA_VISIBLE_DEVICES, compute processes, label selector, or all
	// with the reason (energy.Selection.How).
	GPUSelection string
	// EnergyWarning is a doubt about the energy figures (e.g. several GPUs
	// counted without an explicit choice, or a MIG GPU's energy being the
	// whole GPU's); empty when there is none.
	EnergyWarning string

	// Achieved rates beside the configured request_rate: SendRate is
	// measured sends / (last send - first send); CompletionRate is
	// successful requests / the run window. nil when unknown.
	SendRate       *float64
	CompletionRate *float64
	// Failures are the failed requests by outcome, "timeout=3
	// canceled=2"; empty when every request succeeded.
	Failures string
	// FailedPromptTokens and FailedOutputTokens are the tokens of failed
	// and canceled requests, reported apart: the token totals, throughput
	// and J per token are those of successful requests.
	FailedPromptTokens *int64
	FailedOutputTokens *int64
	// RateWarning says that the run did not reach its target rate, and
	// why (the in-flight cap, the client, or the server); empty otherwise.
	RateWarning string

	// SLO goodput (docs/definitions.md, "SLO goodput"), with an SLO
	// (--slo): SLO is the promise, "ttft=500ms,tpot=50ms" (empty: none,
	// and the other SLO columns are unknown); SLOMetRequests the
	// requests that met it and SLOOutputTokens their output tokens;
	// goodput is those per second of the window; JoulesPerSLOOutputToken
	// is the run's GPU energy over SLOOutputTokens.
	SLO                          string
	SLOMetRequests               *int
	SLOOutputTokens              *int64
	GoodputRequestsPerSecond     *float64
	GoodputOutputTokensPerSecond *float64
	JoulesPerSLOOutputToken      *float64
}

// column binds one CSV column to a Row field. The single table below
// drives Columns, Record and ReadCSV, so a column cannot be written in one
// place and parsed as another.
type column struct {
	name   string
	format func(r *Row) string
	parse  func(r *Row, cell string) error
}

var schema = []column{
	textColumn("benchmark_name", func(r *Row) *string { return &r.BenchmarkName }),
	textColumn("backend", func(r *Row) *string { return &r.Backend }),
	textColumn("model", func(r *Row) *string { return &r.Model }),
	countColumn("total_prompts", func(r *Row) *int { return &r.TotalPrompts }),
	countColumn("successful_prompts", func(r *Row) *int { return &r.SuccessfulPrompts }),
	countColumn("failed_prompts", func(r *Row) *int { return &r.FailedPrompts }),
	floatColumn("total_duration_seconds", func(r *Row) **float64 { return &r.TotalDurationSeconds }),
	floatColumn("avg_latency_seconds", func(r *Row) **float64 { return &r.AvgLatencySeconds }),
	intColumn("total_tokens", func(r *Row) **int64 { return &r.TotalTokens }),
	intColumn("total_prompt_tokens", func(r *Row) **int64 { return &r.TotalPromptTokens }),
	intColumn("total_completion_tokens", func(r *Row) **int64 { return &r.TotalCompletionTokens }),
	floatColumn("throughput_tokens_per_second", func(r *Row) **float64 { return &r.ThroughputTokensPerSecond }),
	timeColumn("timestamp", func(r *Row) *time.Time { return &r.Timestamp }),

	{name: "schema_version", format: formatSchemaVersion, parse: parseSchemaVersion},
	textColumn("run_id", func(r *Row) *string { return &r.RunID }),
	textColumn("scenario", func(r *Row) *string { return &r.Scenario }),
	textColumn("endpoint", func(r *Row) *string { return &r.Endpoint }),
	floatColumn("request_rate", func(r *Row) **float64 { return &r.RequestRate }),
	floatColumn("ttft_mean_seconds", func(r *Row) **float64 { return &r.TTFTMeanSeconds }),
	floatColumn("ttft_p50_seconds", func(r *Row) **float64 { return &r.TTFTP50Seconds }),
	floatColumn("ttft_p90_seconds", func(r *Row) **float64 { return &r.TTFTP90Seconds }),
	floatColumn("ttft_p99_seconds", func(r *Row) **float64 { return &r.TTFTP99Seconds }),
	floatColumn("itl_p50_seconds", func(r *Row) **float64 { return &r.ITLP50Seconds }),
	floatColumn("itl_p90_seconds", func(r *Row) **float64 { return &r.ITLP90Seconds }),
	floatColumn("itl_p99_seconds", func(r *Row) **float64 { return &r.ITLP99Seconds }),
	floatColumn("tpot_mean_seconds", func(r *Row) **float64 { return &r.TPOTMeanSeconds }),
	floatColumn("e2e_p50_seconds", func(r *Row) **float64 { return &r.E2EP50Seconds }),
	floatColumn("e2e_p90_seconds", func(r *Row) **float64 { return &r.E2EP90Seconds }),
	floatColumn("e2e_p99_seconds", func(r *Row) **float64 { return &r.E2EP99Seconds }),
	floatColumn("schedule_lag_p99_seconds", func(r *Row) **float64 { return &r.ScheduleLagP99Seconds }),
	floatColumn("output_throughput_tokens_per_second", func(r *Row) **float64 { return &r.OutputThroughputTokensPerSecond }),
	textColumn("energy_source", func(r *Row) *string { return &r.EnergySource }),
	textColumn("energy_method", func(r *Row) *string { return &r.EnergyMethod }),
	intColumn("gpus", func(r *Row) **int { return &r.GPUs }),
	floatColumn("gpu_energy_wh", func(r *Row) **float64 { return &r.GPUEnergyWh }),
	floatColumn("active_energy_wh", func(r *Row) **float64 { return &r.ActiveEnergyWh }),
	floatColumn("avg_power_w", func(r *Row) **float64 { return &r.AvgPowerW }),
	floatColumn("peak_power_w", func(r *Row) **float64 { return &r.PeakPowerW }),
	floatColumn("idle_power_w", func(r *Row) **float64 { return &r.IdlePowerW }),
	floatColumn("joules_per_output_token", func(r *Row) **float64 { return &r.JoulesPerOutputToken }),
	floatColumn("wh_per_1000_queries", func(r *Row) **float64 { return &r.WhPer1000Queries }),
	floatColumn("carbon_intensity_g_per_kwh", func(r *Row) **float64 { return &r.CarbonIntensityGPerKWh }),
	floatColumn("emissions_g_co2eq", func(r *Row) **float64 { return &r.EmissionsGCO2eq }),

	boolColumn("simulated", func(r *Row) *bool { return &r.Simulated }),
	intColumn("warmup_requests", func(r *Row) **int { return &r.WarmupRequests }),
	intColumn("concurrency", func(r *Row) **int { return &r.Concurrency }),
	textColumn("arrival", func(r *Row) *string { return &r.Arrival }),
	optBoolColumn("client_saturated", func(r *Row) **bool { return &r.ClientSaturated }),
	textColumn("gpu_uuids", func(r *Row) *string { return &r.GPUUUIDs }),
	textColumn("gpu_selection", func(r *Row) *string { return &r.GPUSelection }),
	textColumn("energy_warning", func(r *Row) *string { return &r.EnergyWarning }),
	floatColumn("send_rate", func(r *Row) **float64 { return &r.SendRate }),
	floatColumn("completion_rate", func(r *Row) **float64 { return &r.CompletionRate }),
	textColumn("failures", func(r *Row) *string { return &r.Failures }),
	intColumn("failed_prompt_tokens", func(r *Row) **int64 { return &r.FailedPromptTokens }),
	intColumn("failed_output_tokens", func(r *Row) **int64 { return &r.FailedOutputTokens }),
	textColumn("rate_warning", func(r *Row) *string { return &r.RateWarning }),
	textColumn("slo", func(r *Row) *string { return &r.SLO }),
	intColumn("slo_met_requests", func(r *Row) **int { return &r.SLOMetRequests }),
	intColumn("slo_output_tokens", func(r *Row) **int64 { return &r.SLOOutputTokens }),
	floatColumn("goodput_requests_per_second", func(r *Row) **float64 { return &r.GoodputRequestsPerSecond }),
	floatColumn("goodput_output_tokens_per_second", func(r *Row) **float64 { return &r.GoodputOutputTokensPerSecond }),
	floatColumn("joules_per_slo_output_token", func(r *Row) **float64 { return &r.JoulesPerSLOOutputToken }),
}

// Columns returns the CSV header of schema version SchemaVersion, in
// order. The caller owns the returned slice.
func Columns() []string {
	names := make([]string, len(schema))
	for i, c := range schema {
		names[i] = c.name
	}
	return names
}

// Record returns r's cells in Columns order. Unknown values are empty
// cells. Floats are written as the shortest plain decimal that parses back
// to exactly the same value (NaN and infinities count as unknown); the
// timestamp is UTC in the POC's isoformat layout, e.g.
// 2025-01-02T03:04:05.000000+00:00.
func (r *Row) Record() []string {
	cells := make([]string, len(schema))
	for i, c := range schema {
		cells[i] = c.format(r)
	}
	return cells
}

// formatFloat formats a CSV float cell: the shortest decimal that parses
// back to exactly v, never in exponent notation (so spreadsheets and the
// POC's pandas readers see plain numbers). NaN and infinities are not
// measurements, so they are written as unknown (an empty cell).
func formatFloat(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// errNotFinite rejects NaN and infinities when reading: formatFloat never
// writes them, so such a cell was not written by this package.
var errNotFinite = errors.New("not a finite number")

func parseFloat(cell string) (float64, error) {
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q: %w", cell, errNotFinite)
	}
	return v, nil
}

func textColumn(name string, field func(*Row) *string) column {
	return column{
		name:   name,
		format: func(r *Row) string { return *field(r) },
		parse: func(r *Row, cell string) error {
			*field(r) = cell
			return nil
		},
	}
}

// countColumn is for counts that every producer knows (a run always knows
// how many requests it measured), so they have no unknown state.
func countColumn(name string, field func(*Row) *int) column {
	return column{
		name:   name,
		format: func(r *Row) string { return strconv.Itoa(*field(r)) },
		parse: func(r *Row, cell string) error {
			v, err := strconv.Atoi(cell)
			if err != nil {
				return err
			}
			*field(r) = v
			return nil
		},
	}
}

func intColumn[T ~int | ~int64](name string, field func(*Row) **T) column {
	return column{
		name: name,
		format: func(r *Row) string {
			p := *field(r)
			if p == nil {
				return ""
			}
			return strconv.FormatInt(int64(*p), 10)
		},
		parse: func(r *Row, cell string) error {
			if cell == "" {
				*field(r) = nil
				return nil
			}
			v, err := strconv.ParseInt(cell, 10, 64)
			if err != nil {
				return err
			}
			*field(r) = new(T(v))
			return nil
		},
	}
}

func floatColumn(name string, field func(*Row) **float64) column {
	return column{
		name: name,
		format: func(r *Row) string {
			p := *field(r)
			if p == nil {
				return ""
			}
			return formatFloat(*p)
		},
		parse: func(r *Row, cell string) error {
			if cell == "" {
				*field(r) = nil
				return nil
			}
			v, err := parseFloat(cell)
			if err != nil {
				return err
			}
			*field(r) = &v
			return nil
		},
	}
}

func timeColumn(name string, field func(*Row) *time.Time) column {
	return column{
		name: name,
		format: func(r *Row) string {
			t := *field(r)
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(timestampLayout)
		},
		parse: func(r *Row, cell string) error {
			if cell == "" {
				*field(r) = time.Time{}
				return nil
			}
			// RFC 3339 also accepts timestampLayout, and a hand-edited
			// "Z" timestamp means the same instant.
			t, err := time.Parse(time.RFC3339Nano, cell)
			if err != nil {
				return err
			}
			*field(r) = t.UTC()
			return nil
		},
	}
}

func boolColumn(name string, field func(*Row) *bool) column {
	return column{
		name:   name,
		format: func(r *Row) string { return strconv.FormatBool(*field(r)) },
		parse: func(r *Row, cell string) error {
			v, err := strconv.ParseBool(cell)
			if err != nil {
				return err
			}
			*field(r) = v
			return nil
		},
	}
}

// optBoolColumn is a true/false column whose empty cell is unknown.
func optBoolColumn(name string, field func(*Row) **bool) column {
	return column{
		name: name,
		format: func(r *Row) string {
			if v := *field(r); v != nil {
				return strconv.FormatBool(*v)
			}
			return ""
		},
		parse: func(r *Row, cell string) error {
			if cell == "" {
				*field(r) = nil
				return nil
			}
			v, err := strconv.ParseBool(cell)
			if err != nil {
				return err
			}
			*field(r) = &v
			return nil
		},
	}
}

func formatSchemaVersion(*Row) string { return strconv.Itoa(SchemaVersion) }

// parseSchemaVersion refuses rows of another version: a matching header
// with a different version cell means the file was edited or mixed.
func parseSchemaVersion(_ *Row, cell string) error {
	if cell != strconv.Itoa(SchemaVersion) {
		return fmt.Errorf("schema version %q, want %d", cell, SchemaVersion)
	}
	return nil
}

// Validate reports a row no run can have: a negative count (an integer
// converted from NaN, -9223372036854775808) or a NaN or infinite figure.
// A producer that reads numbers from elsewhere (dump, from a server)
// checks its rows with it before writing them.
func (r *Row) Validate() error {
	v := reflect.ValueOf(r).Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
		}
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			if f.Int() < 0 {
				return fmt.Errorf("summary row: %s is %d, below zero", name, f.Int())
			}
		case reflect.Float64:
			if x := f.Float(); math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("summary row: %s is %v", name, x)
			}
		}
	}
	return nil
}
