package report

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it)\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// fullRow has every column known, with values that exercise formatting:
// fractions, tiny and large floats, a comma and a quote that need CSV
// quoting.
func fullRow() *Row {
	return &Row{
		BenchmarkName:                   `energy "star", gpt`,
		Backend:                         "vllm",
		Model:                           "openai/gpt-oss-120b",
		TotalPrompts:                    10,
		SuccessfulPrompts:               9,
		FailedPrompts:                   1,
		TotalDurationSeconds:            new(12.5),
		AvgLatencySeconds:               new(1.2345678901234567),
		TotalTokens:                     new(int64(3000)),
		TotalPromptTokens:               new(int64(1000)),
		TotalCompletionTokens:           new(int64(2000)),
		ThroughputTokensPerSecond:       new(240.0),
		Timestamp:                       time.Date(2025, 6, 1, 12, 30, 45, 123456000, time.UTC),
		RunID:                           "r-20250601",
		Scenario:                        "energy_star",
		Endpoint:                        "http://127.0.0.1:8000/v1",
		RequestRate:                     new(0.0),
		TTFTMeanSeconds:                 new(0.05),
		TTFTP50Seconds:                  new(0.048),
		TTFTP90Seconds:                  new(0.07),
		TTFTP99Seconds:                  new(0.09),
		ITLP50Seconds:                   new(0.0005),
		ITLP90Seconds:                   new(0.000000001),
		ITLP99Seconds:                   new(0.02),
		TPOTMeanSeconds:                 new(0.015),
		E2EP50Seconds:                   new(1.2),
		E2EP90Seconds:                   new(1.5),
		E2EP99Seconds:                   new(1.9),
		ScheduleLagP99Seconds:           new(0.0),
		OutputThroughputTokensPerSecond: new(160.0),
		EnergySource:                    "sim",
		EnergyMethod:                    "counter",
		GPUs:                            new(8),
		GPUEnergyWh:                     new(12345678.25),
		ActiveEnergyWh:                  new(10.5),
		AvgPowerW:                       new(700.0),
		PeakPowerW:                      new(712.5),
		IdlePowerW:                      new(90.0),
		JoulesPerOutputToken:            new(0.125),
		WhPer1000Queries:                new(3.75),
		CarbonIntensityGPerKWh:          new(475.0),
		EmissionsGCO2eq:                 new(5.5),
		Simulated:                       true,
		WarmupRequests:                  new(2),
		Concurrency:                     new(1),
		Arrival:                         "constant",
		ClientSaturated:                 new(false),
		GPUUUIDs:                        "GPU-a GPU-b",
		GPUSelection:                    "--gpus",
		EnergyWarning:                   "gpu 0 (GPU-a) has MIG on: its energy is the whole GPU's",
		SendRate:                        new(2.04),
		CompletionRate:                  new(1.98),
		Failures:                        "timeout=1",
		FailedPromptTokens:              new(int64(120)),
		FailedOutputTokens:              new(int64(7)),
		RateWarning:                     "target 2 req/s not reached (sent 1.5, completed 1.4 req/s): the client sent behind its schedule",
		SLO:                             "ttft=500ms,e2e=2s",
		SLOMetRequests:                  new(8),
		SLOOutputTokens:                 new(int64(1800)),
		GoodputRequestsPerSecond:        new(0.64),
		GoodputOutputTokensPerSecond:    new(144.0),
		JoulesPerSLOOutputToken:         new(0.1388888888888889),
	}
}

// unknownRow knows only what every run knows.
func unknownRow() *Row {
	return &Row{BenchmarkName: "empty", TotalPrompts: 0}
}

func TestColumns(t *testing.T) {
	want := []string{
		"benchmark_name", "backend", "model", "total_prompts", "successful_prompts",
		"failed_prompts", "total_duration_seconds", "avg_latency_seconds", "total_tokens",
		"total_prompt_tokens", "total_completion_tokens", "throughput_tokens_per_second", "timestamp",
		"schema_version", "run_id", "scenario", "endpoint", "request_rate",
		"ttft_mean_seconds", "ttft_p50_seconds", "ttft_p90_seconds", "ttft_p99_seconds",
		"itl_p50_seconds", "itl_p90_seconds", "itl_p99_seconds", "tpot_mean_seconds",
		"e2e_p50_seconds", "e2e_p90_seconds", "e2e_p99_seconds", "schedule_lag_p99_seconds",
		"output_throughput_tokens_per_second", "energy_source", "energy_method", "gpus",
		"gpu_energy_wh", "active_energy_wh", "avg_power_w", "peak_power_w", "idle_power_w",
		"joules_per_output_token", "wh_per_1000_queries", "carbon_intensity_g_per_kwh",
		"emissions_g_co2eq", "simulated", "warmup_requests", "concurrency", "arrival",
		"client_saturated", "gpu_uuids", "gpu_selection", "energy_warning",
		"send_rate", "completion_rate", "failures", "failed_prompt_tokens", "failed_output_tokens", "rate_warning",
		"slo", "slo_met_requests", "slo_output_tokens", "goodput_requests_per_second",
		"goodput_output_tokens_per_second", "joules_per_slo_output_token",
	}
	if got := Columns(); !reflect.DeepEqual(got, want) {
		t.Errorf("Columns() =\n%q\nwant\n%q", got, want)
	}
	Columns()[0] = "mutated"
	if Columns()[0] != "benchmark_name" {
		t.Error("Columns() shares its slice with the schema")
	}
}

func TestRecordUnknownIsEmpty(t *testing.T) {
	known := map[string]string{
		"benchmark_name":     "empty",
		"total_prompts":      "0",
		"successful_prompts": "0",
		"failed_prompts":     "0",
		"schema_version":     "1",
		"simulated":          "false",
	}
	cells := unknownRow().Record()
	for i, name := range Columns() {
		if cells[i] != known[name] {
			t.Errorf("column %s = %q, want %q", name, cells[i], known[name])
		}
	}
}

func TestRecordFloats(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"},
		{12.5, "12.5"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{1e-9, "0.000000001"},
		{1e21, "1000000000000000000000"},
		{-2.25, "-2.25"},
	}
	for _, tt := range tests {
		r := &Row{TTFTP50Seconds: new(tt.v)}
		got := r.Record()[columnIndex(t, "ttft_p50_seconds")]
		if got != tt.want {
			t.Errorf("%v formats as %q, want %q", tt.v, got, tt.want)
		}
	}
}

func columnIndex(t *testing.T, name string) int {
	t.Helper()
	for i, c := range Columns() {
		if c == name {
			return i
		}
	}
	t.Fatalf("no column %q", name)
	return -1
}

func TestAppendCSVGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "results.csv")
	if err := AppendCSV(path, fullRow()); err != nil {
		t.Fatal(err)
	}
	// A second run appends below the first, without a second header.
	if err := AppendCSV(path, unknownRow()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "results.golden", got)
}

func TestAppendCSVExistingFile(t *testing.T) {
	header := strings.Join(Columns(), ",")
	tests := []struct {
		name     string
		existing string
		want     string // content after AppendCSV(unknownRow()), with ROW for its record
	}{
		{"empty file gets a header", "", header + "\nROW\n"},
		{"blank lines only get a header", "\n\n", "\n\n" + header + "\nROW\n"},
		{"header only", header + "\n", header + "\nROW\n"},
		{"missing final newline", header, header + "\nROW\n"},
		{"CRLF header", header + "\r\n", header + "\r\nROW\n"},
		{"byte-order mark", "\ufeff" + header + "\n", "\ufeff" + header + "\nROW\n"},
	}
	row := strings.Join(unknownRow().Record(), ",")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "results.csv")
			if err := os.WriteFile(path, []byte(tt.existing), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := AppendCSV(path, unknownRow()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tt.want, "ROW", row); string(got) != want {
				t.Errorf("file =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestAppendCSVHeaderMismatch(t *testing.T) {
	cols := Columns()
	renamed := Columns()
	renamed[7] = "avg_latency"
	tests := []struct {
		name   string
		header []string
		want   string
	}{
		{"renamed column", renamed, `column 8 is "avg_latency", want "avg_latency_seconds"`},
		{"the Python POC's 13 columns", cols[:13], `it has the Python POC's 13 columns only`},
		{"older, shorter schema", cols[:20], `header ends after column 20, want "ttft_p90_seconds" next`},
		{"newer, longer schema", append(Columns(), "future_column"), fmt.Sprintf(`column %d "future_column" is not in the schema`, len(cols)+1)},
		{"reordered", append([]string{cols[1], cols[0]}, cols[2:]...), `column 1 is "backend", want "benchmark_name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.csv")
			existing := strings.Join(tt.header, ",") + "\nsome,old,row\n"
			if err := os.WriteFile(path, []byte(existing), 0o644); err != nil {
				t.Fatal(err)
			}
			err := AppendCSV(path, fullRow())
			if !errors.Is(err, ErrHeaderMismatch) {
				t.Fatalf("AppendCSV error = %v, want ErrHeaderMismatch", err)
			}
			for _, part := range []string{path, tt.want, "--out"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %q", err, part)
				}
			}
			got, _ := os.ReadFile(path)
			if string(got) != existing {
				t.Errorf("file changed after a refused append:\n%s", got)
			}
		})
	}
}

func TestReadCSVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.csv")
	want := []*Row{fullRow(), unknownRow()}
	if err := AppendCSV(path, want...); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadCSV after AppendCSV:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadCSVErrors(t *testing.T) {
	header := strings.Join(Columns(), ",")
	cells := unknownRow().Record()
	withCell := func(name, value string) string {
		c := append([]string(nil), cells...)
		c[columnIndex(t, name)] = value
		return strings.Join(c, ",")
	}
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"empty file", "", "empty file"},
		{"foreign header", "a,b,c\n", `column 1 is "a", want "benchmark_name"`},
		{"bad float", header + "\n" + withCell("ttft_p50_seconds", "fast") + "\n", `line 2, column "ttft_p50_seconds"`},
		{"NaN", header + "\n" + withCell("e2e_p99_seconds", "NaN") + "\n", "not a finite number"},
		{"bad int", header + "\n" + withCell("gpus", "1.5") + "\n", `column "gpus"`},
		{"bad bool", header + "\n" + withCell("simulated", "") + "\n", `column "simulated"`},
		{"bad timestamp", header + "\n" + withCell("timestamp", "yesterday") + "\n", `column "timestamp"`},
		{"other schema version", header + "\n" + withCell("schema_version", "2") + "\n", `schema version "2", want 1`},
		{"short row", header + "\na,b\n", "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "results.csv")
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCSV(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadCSV error = %v, want one naming %s and containing %q", err, path, tt.want)
			}
		})
	}
}

func TestReadCSVAcceptsZTimestamp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.csv")
	c := unknownRow().Record()
	c[columnIndex(t, "timestamp")] = "2025-06-01T12:30:45Z"
	content := strings.Join(Columns(), ",") + "\n" + strings.Join(c, ",") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 6, 1, 12, 30, 45, 0, time.UTC); !rows[0].Timestamp.Equal(want) {
		t.Errorf("timestamp = %v, want %v", rows[0].Timestamp, want)
	}
}

// A summary sent to /dev/null (dump --out /dev/null) is written and
// dropped: only regular files are synced.
func TestAppendCSVToDevNull(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil {
		t.Skip(err)
	}
	if err := AppendCSV(os.DevNull, &Row{BenchmarkName: "x"}); err != nil {
		t.Fatalf("AppendCSV(%s): %v", os.DevNull, err)
	}
}

// Validate catches what a NaN read from a server turns into: a count of
// -9223372036854775808, or a NaN figure. Negative figures that may be
// real (active energy below the idle baseline) pass.
func TestRowValidate(t *testing.T) {
	good := fullRow()
	neg := -0.5
	good.ActiveEnergyWh = &neg
	if err := good.Validate(); err != nil {
		t.Fatalf("a real row: %v", err)
	}
	for name, spoil := range map[string]func(r *Row){
		"count from NaN": func(r *Row) { r.TotalPrompts = math.MinInt64 },
		"tokens":         func(r *Row) { v := int64(-1); r.TotalTokens = &v },
		"NaN percentile": func(r *Row) { v := math.NaN(); r.TTFTP50Seconds = &v },
		"Inf energy":     func(r *Row) { v := math.Inf(1); r.GPUEnergyWh = &v },
	} {
		r := fullRow()
		spoil(r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
