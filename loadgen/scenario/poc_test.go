package scenario

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The warnings every config of the gpt_oss_120b shape produces.
var (
	warnHarmony = "backend.model: openai/gpt-oss-120b: the POC wrapped each gpt-oss prompt in a Harmony system/user " +
		"template; tokenwatt sends prompts as they are through the chat API, so prompt token counts differ"
	warnDevices = "backend.device, backend.device_ids: ignored: the inference server places the model, " +
		"and energy is measured on every GPU the energy source sees"
	warnTruncation = "scenario.truncation: ignored: prompts are sent whole, and the server truncates or rejects " +
		"those longer than its context"
	warnCodeCarbon = "metrics.enabled, metrics.output_dir, metrics.project_name, metrics.type: CodeCarbon is not used: " +
		"energy comes from tokenwatt's own sources (DCGM, NVML or the simulator)"
)

func TestPOCCountryCarbonIntensity(t *testing.T) {
	const regionWarning = "metrics.region: ignored: tokenwatt has national, not regional, carbon intensities " +
		"(use --carbon-intensity for a regional figure)"
	for _, tc := range []struct {
		name, metrics, code string
		warnings            []string
	}{
		{"absent", "  project_name: p\n", "", nil},
		{"known alpha-3", "  country_iso_code: USA\n", "USA", nil},
		{"known, lower case", "  country_iso_code: fra\n", "fra", nil},
		{"known alpha-2", "  country_iso_code: DE\n", "DE", nil},
		{"trimmed", "  country_iso_code: \" SWE \"\n", "SWE", nil},
		{"unknown", "  country_iso_code: ATL\n", "ATL", []string{`metrics.country_iso_code: "ATL" is unknown: ` +
			"tokenwatt has no national carbon intensity for it; the default 475 g/kWh applies unless --carbon-intensity is given"}},
		{"region beside a known country", "  country_iso_code: USA\n  region: california\n", "USA", []string{regionWarning}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "poc.yaml")
			if err := os.WriteFile(path, []byte("backend:\n  model: m\nmetrics:\n"+tc.metrics), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadPOCConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.CountryISOCode(); got != tc.code {
				t.Errorf("CountryISOCode() = %q, want %q", got, tc.code)
			}
			var warnings []string
			_, all := c.ToScenario()
			for _, w := range all {
				if strings.HasPrefix(w, "metrics.country_iso_code") || strings.HasPrefix(w, "metrics.region") {
					warnings = append(warnings, w)
				}
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings = %q, want %q", warnings, tc.warnings)
			}
		})
	}
}

func TestPOCFixtures(t *testing.T) {
	temp := 0.7
	tests := []struct {
		file         string
		want         Scenario
		warnings     []string
		summary, dir string
	}{
		{
			file: "gpt_oss_120b.yaml",
			want: Scenario{
				Name:                   "gpt_oss_120b_benchmark",
				Description:            "ai_energy_benchmarks (Python POC) config gpt_oss_120b_benchmark",
				Backend:                "vllm",
				Endpoint:               "http://localhost:8000/v1",
				Model:                  "openai/gpt-oss-120b",
				API:                    "chat",
				Dataset:                "hf://AIEnergyScore/text_generation",
				DatasetField:           "text",
				SimFallbackMeanTokens:  369,
				NumSamples:             10,
				Concurrency:            1,
				MaxTokens:              100,
				MinTokens:              50,
				Temperature:            &temp,
				MaxConsecutiveFailures: 3,
				Timeout:                5 * time.Minute,
			},
			// region: null is as good as absent, and country_iso_code USA
			// is in the carbon table, so neither is named.
			warnings: []string{warnHarmony, warnDevices, warnTruncation, warnCodeCarbon},
			summary:  "./results/gpt_oss_120b_results.csv",
			dir:      "./benchmark_output",
		},
		{
			file: "pytorch_test.yaml",
			want: Scenario{
				Name:                   "pytorch_test",
				Description:            "ai_energy_benchmarks (Python POC) config pytorch_test",
				Backend:                "pytorch",
				Endpoint:               "http://localhost:8080",
				Model:                  "microsoft/phi-2",
				Dataset:                "hf://AIEnergyScore/text_generation",
				DatasetField:           "text",
				SimFallbackMeanTokens:  369,
				NumSamples:             5,
				Concurrency:            1,
				MaxTokens:              50,
				MinTokens:              10,
				Temperature:            &temp,
				MaxConsecutiveFailures: 3,
				Timeout:                5 * time.Minute,
			},
			warnings: []string{
				"backend.type: pytorch: the POC loaded the model in its own process; tokenwatt sends requests " +
					"to a PyTorch server at http://localhost:8080, which must already be running",
				warnDevices, warnTruncation, warnCodeCarbon,
			},
			summary: "./results/pytorch_test_results.csv",
			dir:     "./benchmark_output",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := LoadPOCConfig(filepath.Join("testdata", "poc", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			s, warnings := c.ToScenario()
			if !reflect.DeepEqual(s, tt.want) {
				t.Errorf("scenario\n got  %+v\n want %+v", s, tt.want)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("mapped scenario does not validate: %v", err)
			}
			if !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("warnings\n got  %q\n want %q", warnings, tt.warnings)
			}
			if got := c.SummaryPath(); got != tt.summary {
				t.Errorf("SummaryPath = %q, want %q", got, tt.summary)
			}
			if got := c.OutputDir(); got != tt.dir {
				t.Errorf("OutputDir = %q, want %q", got, tt.dir)
			}
		})
	}
}

func writePOC(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "poc.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPOCDefaults(t *testing.T) {
	temp := 0.7
	c, err := LoadPOCConfig(writePOC(t, "name: minimal\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, warnings := c.ToScenario()
	want := Scenario{
		Name:                   "minimal",
		Description:            "ai_energy_benchmarks (Python POC) config minimal",
		Backend:                "vllm",
		Endpoint:               "http://localhost:8000/v1",
		Model:                  "openai/gpt-oss-120b",
		API:                    "chat",
		Dataset:                "hf://AIEnergyScore/text_generation",
		DatasetField:           "text",
		SimFallbackMeanTokens:  369,
		NumSamples:             10,
		Concurrency:            1,
		MaxTokens:              100,
		MinTokens:              50,
		Temperature:            &temp,
		MaxConsecutiveFailures: 3,
		Timeout:                5 * time.Minute,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("scenario\n got  %+v\n want %+v", s, want)
	}
	if want := []string{warnHarmony}; !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}
	if got := c.SummaryPath(); got != "./results/benchmark_results.csv" {
		t.Errorf("SummaryPath = %q", got)
	}
	if got := c.OutputDir(); got != "./benchmark_output" {
		t.Errorf("OutputDir = %q", got)
	}
}

func TestPOCMapping(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		check    func(s Scenario) bool
		warnings []string // each must be among the warnings
	}{
		{
			name: "generate_kwargs without min_new_tokens sends no minimum",
			yaml: "name: x\nbackend:\n  model: m\nscenario:\n  generate_kwargs:\n    max_new_tokens: 200\n",
			check: func(s Scenario) bool {
				return s.MaxTokens == 200 && s.MinTokens == 0
			},
		},
		{
			name: "empty generate_kwargs keeps the runner's max",
			yaml: "name: x\nbackend:\n  model: m\nscenario:\n  generate_kwargs: {}\n",
			check: func(s Scenario) bool {
				return s.MaxTokens == 100 && s.MinTokens == 0
			},
		},
		{
			name: "local dataset file and another column",
			yaml: "backend:\n  model: m\nscenario:\n  dataset_name: ./data/prompts.jsonl\n  text_column_name: question\n",
			check: func(s Scenario) bool {
				return s.Dataset == "./data/prompts.jsonl" && s.DatasetField == "question" && s.SimFallbackMeanTokens == 0
			},
		},
		{
			name: "other Hugging Face dataset",
			yaml: "backend:\n  model: m\nscenario:\n  dataset_name: org/prompts\n",
			check: func(s Scenario) bool {
				return s.Dataset == "hf://org/prompts" && s.SimFallbackMeanTokens == 0
			},
		},
		{
			name:  "batch size becomes concurrency",
			yaml:  "backend:\n  model: m\nscenario:\n  input_shapes:\n    batch_size: 8\n    sequence_length: 512\n",
			check: func(s Scenario) bool { return s.Concurrency == 8 },
			warnings: []string{
				"scenario.input_shapes.batch_size: 8: sent as 8 concurrent requests (the POC sent prompts one at a time whatever batch_size said)",
				"scenario.input_shapes.sequence_length: ignored: tokenwatt reads only batch_size",
			},
		},
		{
			name:  "reasoning is not sent",
			yaml:  "backend:\n  model: m\nscenario:\n  reasoning: true\n  reasoning_params:\n    reasoning_effort: high\n",
			check: func(s Scenario) bool { return true },
			warnings: []string{"scenario.reasoning, scenario.reasoning_params: not sent: tokenwatt sends each prompt " +
				"without reasoning_effort or other reasoning parameters"},
		},
		{
			name:     "reasoning params without reasoning",
			yaml:     "backend:\n  model: m\nscenario:\n  reasoning_params:\n    reasoning_effort: low\n",
			check:    func(s Scenario) bool { return true },
			warnings: []string{"scenario.reasoning_params: ignored because scenario.reasoning is not true (as in the POC)"},
		},
		{
			name: "other generate_kwargs",
			yaml: "backend:\n  model: m\nscenario:\n  generate_kwargs:\n    max_new_tokens: 10\n    temperature: 0.2\n    do_sample: false\n",
			check: func(s Scenario) bool {
				return s.MaxTokens == 10 && *s.Temperature == 0.7
			},
			warnings: []string{"scenario.generate_kwargs.do_sample, scenario.generate_kwargs.temperature: not sent: " +
				"tokenwatt sends max_new_tokens and min_new_tokens only, with temperature 0.7 as the POC did"},
		},
		{
			name:     "metrics disabled",
			yaml:     "backend:\n  model: m\nmetrics:\n  enabled: false\n  region: california\n",
			check:    func(s Scenario) bool { return true },
			warnings: []string{"metrics.enabled: false is ignored: tokenwatt measures energy whenever an energy source is available", "metrics.region: ignored: tokenwatt has national, not regional, carbon intensities (use --carbon-intensity for a regional figure)"},
		},
		{
			name:     "another task",
			yaml:     "backend:\n  model: m\n  task: text2text-generation\n",
			check:    func(s Scenario) bool { return true },
			warnings: []string{`backend.task: "text2text-generation" is ignored: tokenwatt only runs text-generation`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadPOCConfig(writePOC(t, tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			s, warnings := c.ToScenario()
			if !tt.check(s) {
				t.Errorf("unexpected scenario %+v", s)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("mapped scenario does not validate: %v", err)
			}
			for _, w := range tt.warnings {
				found := 0
				for _, got := range warnings {
					if got == w {
						found++
					}
				}
				if found != 1 {
					t.Errorf("warning %q found %d times in %q", w, found, warnings)
				}
			}
			if tt.warnings == nil && len(warnings) != 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
		})
	}
}

func TestPOCLoadErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the error after the file name
	}{
		{
			name: "misspelt nested key",
			yaml: "name: x\nbackend:\n  type: vllm\n  devic: cuda\n",
			want: `:4: unknown key "backend.devic" (did you mean "backend.device"?)`,
		},
		{
			name: "misspelt section",
			yaml: "name: x\nreporters:\n  type: csv\n",
			want: `:2: unknown key "reporters" (did you mean "reporter"?)`,
		},
		{
			name: "tokenwatt key in a POC file",
			yaml: "name: x\nscenario:\n  max_tokens: 10\n",
			want: `:3: unknown key "scenario.max_tokens"`,
		},
		{
			name: "wrong type",
			yaml: "scenario:\n  num_samples: ten\n",
			want: `:2: scenario.num_samples: want an integer, got "ten"`,
		},
		{
			name: "scalar where a list belongs",
			yaml: "backend:\n  device_ids: 0\n",
			want: `:2: backend.device_ids: want a list, got "0"`,
		},
		{
			name: "wrong type inside a list",
			yaml: "backend:\n  device_ids: [0, first]\n",
			want: `:2: backend.device_ids[1]: want an integer, got "first"`,
		},
		{
			name: "unsupported backend",
			yaml: "backend:\n  type: tgi\n",
			want: `:2: backend.type: "tgi" is not supported (allowed: vllm, pytorch)`,
		},
		{
			name: "empty endpoint",
			yaml: "backend:\n  type: vllm\n  endpoint: \"\"\n",
			want: `:3: backend.endpoint: must not be empty (e.g. http://localhost:8000/v1)`,
		},
		{
			name: "no samples",
			yaml: "scenario:\n  num_samples: 0\n",
			want: `:2: scenario.num_samples: must be 1 or more, got 0`,
		},
		{
			name: "too many samples",
			yaml: "scenario:\n  num_samples: 9223372036854775807\n",
			want: `:2: scenario.num_samples: must be at most 1000000000, got 9223372036854775807`,
		},
		{
			name: "batch size too large",
			yaml: "scenario:\n  input_shapes:\n    batch_size: 2000000000\n",
			want: `:3: scenario.input_shapes.batch_size: must be at most 1000000 (it is the run's concurrency), got 2000000000`,
		},
		{
			name: "other metrics type",
			yaml: "metrics:\n  type: zeus\n",
			want: `:2: metrics.type: "zeus" is not supported (allowed: codecarbon)`,
		},
		{
			name: "other reporter type",
			yaml: "reporter:\n  type: json\n",
			want: `:2: reporter.type: "json" is not supported (allowed: csv)`,
		},
		{
			name: "batch size not an integer",
			yaml: "scenario:\n  input_shapes:\n    batch_size: auto\n",
			want: `:3: scenario.input_shapes.batch_size: want an integer, got auto`,
		},
		{
			name: "min above max",
			yaml: "scenario:\n  generate_kwargs:\n    max_new_tokens: 10\n    min_new_tokens: 20\n",
			want: `:4: scenario.generate_kwargs.min_new_tokens: 20 is more than max_new_tokens 10`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writePOC(t, tt.yaml)
			_, err := LoadPOCConfig(p)
			if err == nil {
				t.Fatal("no error")
			}
			if want := p + tt.want; err.Error() != want {
				t.Errorf("error\n got  %q\n want %q", err, want)
			}
		})
	}
}

func TestPOCLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := LoadPOCConfig(p)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("error %v does not name %s", err, p)
	}
}

// FuzzPOCDecode checks that no input makes decoding, checking or mapping a
// POC config panic, and that what passes the checks maps to a valid
// scenario.
func FuzzPOCDecode(f *testing.F) {
	f.Add("name: x\nbackend:\n  type: vllm\n")
	f.Add("scenario:\n  input_shapes:\n    batch_size: 4\n  generate_kwargs:\n    max_new_tokens: 5\n")
	f.Add("backend:\n  devic: 1\n")
	f.Fuzz(func(t *testing.T, in string) {
		var c POCConfig
		if _, err := decodeStrict([]byte(in), "fuzz.yaml", &c); err != nil {
			return
		}
		if len(c.check()) > 0 {
			return
		}
		s, _ := c.ToScenario()
		if err := s.Validate(); err != nil {
			t.Errorf("checked config maps to an invalid scenario: %v", err)
		}
	})
}
