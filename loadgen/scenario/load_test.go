package scenario

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
)

func TestBuiltins(t *testing.T) {
	all, err := Builtins()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all {
		names = append(names, s.Name)
	}
	if want := []string{"chat_mix", "energy_star", "multi_turn_chat", "prefix_caching", "soak", "throughput"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("built-in names = %v, want %v", names, want)
	}
	for _, s := range all {
		t.Run(s.Name, func(t *testing.T) {
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if s.Description == "" || strings.Contains(s.Description, "\n") {
				t.Errorf("description %q: want one non-empty line", s.Description)
			}
			byName, err := Load(s.Name)
			if err != nil {
				t.Fatalf("Load(%q): %v", s.Name, err)
			}
			if !reflect.DeepEqual(*byName, s) {
				t.Errorf("Load(%q) = %+v, want %+v", s.Name, *byName, s)
			}
		})
	}
}

func TestBuiltinValues(t *testing.T) {
	tests := []struct {
		name  string
		check func(s *Scenario) bool
	}{
		{"energy_star", func(s *Scenario) bool {
			return s.Dataset == "hf://AIEnergyScore/text_generation" && s.DatasetField == "text" &&
				s.NumSamples == 1000 && s.Concurrency == 1 && s.Rate == 0 &&
				s.MaxTokens == 100 && s.MinTokens == 50 && s.Temperature != nil && *s.Temperature == 0 &&
				s.Stream != nil && *s.Stream && s.API == "chat" && s.SimFallbackMeanTokens == 369 &&
				s.MaxConsecutiveFailures == 3 && s.Timeout == 5*time.Minute
		}},
		{"soak", func(s *Scenario) bool {
			return s.Dataset == "synthetic" && s.Rate == 5 && s.Concurrency == 256 && s.NumSamples == 0 &&
				s.Duration == 0 && s.MaxTokens == 128 && s.MaxConsecutiveFailures == 0
		}},
		{"throughput", func(s *Scenario) bool {
			return s.Dataset == "synthetic" && s.Rate == 0 && s.Concurrency == 64 && s.NumSamples == 0 &&
				s.Duration == 60*time.Second && s.MaxTokens == 256 && s.IgnoreEOS
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s) {
				t.Errorf("unexpected values: %+v", *s)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
		notWant    string
	}{
		{
			name: "misspelt key suggests the known one",
			yaml: "name: x\nmax_tokens: 5\n\nmax_token: 5\n",
			want: []string{`test.yaml:4: unknown key "max_token" (did you mean "max_tokens"?)`},
		},
		{
			name: "dash instead of underscore",
			yaml: "name: x\nignore-eos: true\n",
			want: []string{`test.yaml:2: unknown key "ignore-eos" (did you mean "ignore_eos"?)`},
		},
		{
			name: "bad length distributions name their lines",
			yaml: "name: x\ninput_len: lognormal:mean=500,sd=3\noutput_len:\n  dist: normal\n  mean: -4\n",
			want: []string{`test.yaml:2: "lognormal:mean=500,sd=3": unknown parameter "sd"`, "test.yaml:4: normal mean must be from 1"},
		},
		{
			name:    "far key has no suggestion",
			yaml:    "name: x\nbananas: 3\n",
			want:    []string{`test.yaml:2: unknown key "bananas"`},
			notWant: "did you mean",
		},
		{
			name: "every unknown key is reported",
			yaml: "concurency: 2\nrat: 3\n",
			want: []string{`test.yaml:1: unknown key "concurency" (did you mean "concurrency"?)`,
				`test.yaml:2: unknown key "rat" (did you mean "rate"?)`},
		},
		{
			name: "type error names line and key",
			yaml: "name: x\nnum_samples: lots\n",
			want: []string{`test.yaml:2: num_samples: want an integer, got "lots"`},
		},
		{
			name: "duration needs a unit",
			yaml: "name: x\ntimeout: 300\n",
			want: []string{`test.yaml:2: timeout: want a duration such as "30s" or "5m", got "300"`},
		},
		{
			name: "mapping where a scalar belongs",
			yaml: "name: x\nrate:\n  value: 3\n",
			want: []string{`test.yaml:3: rate: want a number, got a mapping`},
		},
		{
			name: "syntax error has a line",
			yaml: "name: x\nrate 3\nmodel: y\n",
			want: []string{`test.yaml:2: could not find expected ':'`},
		},
		{
			name: "duplicate key",
			yaml: "name: x\nrate: 1\nrate: 2\n",
			want: []string{`test.yaml:3: mapping key "rate" already defined at line 2`},
		},
		{
			name: "empty file",
			yaml: "# only a comment\n",
			want: []string{"test.yaml: the file is empty"},
		},
		{
			name: "two documents",
			yaml: "name: x\n---\nname: y\n",
			want: []string{"test.yaml:2: only one YAML document is allowed"},
		},
		{
			name: "not a mapping",
			yaml: "- name: x\n",
			want: []string{"test.yaml:1: expected a mapping of keys"},
		},
		{
			name: "invalid values carry their lines",
			yaml: "name: x\napi: chats\n\narrival: gamma\n",
			want: []string{`test.yaml:2: api: "chats" is not supported (allowed: chat, completions)`,
				// burstiness is not in the file, so its problem has no line.
				`test.yaml: burstiness: must be > 0 with arrival gamma`},
		},
		{
			name: "absurd counts and rate carry their lines",
			yaml: "name: x\nnum_samples: 9223372036854775807\nwarmup: 9223372036854775807\nconcurrency: 2000000000\nrate: 1e-300\n",
			want: []string{`test.yaml:2: num_samples: must be at most 1000000000`, `test.yaml:3: warmup: must be at most 1000000000`,
				`test.yaml:4: concurrency: must be at most 1000000`, `test.yaml:5: rate: must be 0 (closed loop) or at least 1e-06`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.yaml), "test.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q contains %q", err, tt.notWant)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestDecodeNameFromSource(t *testing.T) {
	s, err := Decode(strings.NewReader("rate: 2\n"), "dir/my_soak.yml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "my_soak" {
		t.Errorf("name = %q, want my_soak", s.Name)
	}
}

func TestLoadUnknownName(t *testing.T) {
	tests := []struct {
		name    string
		want    []string
		notWant string
	}{
		{"energystar", []string{`unknown scenario "energystar"`, `(did you mean "energy_star"?)`,
			"built-in scenarios: chat_mix, energy_star, multi_turn_chat, prefix_caching, soak, throughput"}, ""},
		{"nightly", []string{`unknown scenario "nightly"`, "built-in scenarios: chat_mix, energy_star, multi_turn_chat, prefix_caching, soak, throughput",
			"path of a YAML scenario file"}, "did you mean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.name)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q contains %q", err, tt.notWant)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "scenarios", "steady_poisson.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, seed := 0.5, int64(42)
	no := false
	want := Scenario{
		Name:                   "steady_poisson",
		Description:            "20 req/s poisson arrivals of local prompts against a local vLLM",
		Backend:                "vllm",
		Endpoint:               "http://127.0.0.1:8000/v1",
		Model:                  "facebook/opt-125m",
		API:                    "completions",
		Stream:                 &no,
		Dataset:                "prompts.jsonl",
		DatasetField:           "question",
		NumSamples:             500,
		Duration:               2 * time.Minute,
		Concurrency:            32,
		Rate:                   20,
		Arrival:                "poisson",
		Warmup:                 5,
		MaxTokens:              64,
		MinTokens:              8,
		Temperature:            &f,
		Seed:                   &seed,
		MaxConsecutiveFailures: 5,
		Timeout:                30 * time.Second,
	}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("got  %+v\nwant %+v", *s, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	for _, p := range []string{filepath.Join(t.TempDir(), "gone.yaml"), "gone.yml"} {
		_, err := Load(p)
		if err == nil {
			t.Fatalf("%s: no error", p)
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("error %q does not name the missing path %s", err, p)
		}
	}
}

func TestLoadFileInvalid(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("name: bad\nmax_tokens: 10\nmin_tokens: 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	want := p + ":3: min_tokens: 20 is more than max_tokens 10"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestIsPath(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"soak", false},
		{"energy_star", false},
		{"my.yaml", true},
		{"my.YML", true},
		{"./soak", true},
		{"configs/soak", true},
		{"/abs/soak.yaml", true},
	}
	for _, tt := range tests {
		if got := isScenarioPath(tt.in); got != tt.want {
			t.Errorf("isScenarioPath(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	neg := -0.1
	tests := []struct {
		name   string
		mutate func(s *Scenario)
		want   string // "" for valid
	}{
		{"valid", func(*Scenario) {}, ""},
		{"empty enumerations are defaults", func(s *Scenario) { s.API, s.Arrival, s.Backend = "", "", "" }, ""},
		{"openai backend", func(s *Scenario) { s.Backend = "openai" }, ""},
		{"pytorch backend", func(s *Scenario) { s.Backend = "pytorch" }, ""},
		{"unknown backend", func(s *Scenario) { s.Backend = "tgi" },
			`backend: "tgi" is not supported (allowed: openai, vllm, pytorch)`},
		{"unknown api", func(s *Scenario) { s.API = "responses" },
			`api: "responses" is not supported (allowed: chat, completions)`},
		{"unknown arrival", func(s *Scenario) { s.Arrival = "burst" },
			`arrival: "burst" is not supported (allowed: constant, poisson, gamma)`},
		{"gamma with burstiness", func(s *Scenario) { s.Arrival, s.Burstiness = "gamma", 0.5 }, ""},
		{"unknown dataset format", func(s *Scenario) { s.DatasetFormat = "alpaca" },
			`dataset_format: "alpaca" is not supported (allowed: auto, prompt, chat, sharegpt)`},
		{"gamma without burstiness", func(s *Scenario) { s.Arrival = "gamma" }, "burstiness: must be > 0 with arrival gamma"},
		{"negative burstiness", func(s *Scenario) { s.Burstiness = -1 }, "burstiness: must be a positive number"},
		{"empty name", func(s *Scenario) { s.Name = "" }, "name: must not be empty"},
		{"endpoint without scheme", func(s *Scenario) { s.Endpoint = "localhost:8000" }, `endpoint: "localhost:8000" is not an http(s) URL`},
		{"https endpoint", func(s *Scenario) { s.Endpoint = "https://api.example.com/v1" }, ""},
		{"negative num_samples", func(s *Scenario) { s.NumSamples = -1 }, "num_samples: must be 0 or more, got -1"},
		{"negative concurrency", func(s *Scenario) { s.Concurrency = -2 }, "concurrency: must be 0 or more, got -2"},
		{"negative warmup", func(s *Scenario) { s.Warmup = -1 }, "warmup: must be 0 or more"},
		{"negative max_tokens", func(s *Scenario) { s.MaxTokens = -1 }, "max_tokens: must be 0 or more"},
		{"negative sim fallback", func(s *Scenario) { s.SimFallbackMeanTokens = -1 }, "sim_fallback_mean_tokens: must be 0 or more"},
		{"negative failures", func(s *Scenario) { s.MaxConsecutiveFailures = -1 }, "max_consecutive_failures: must be 0 or more"},
		{"negative duration", func(s *Scenario) { s.Duration = -time.Second }, "duration: must be 0 (no limit) or more"},
		{"negative timeout", func(s *Scenario) { s.Timeout = -time.Second }, "timeout: must be 0 (none) or more"},
		{"negative rate", func(s *Scenario) { s.Rate = -1 }, "rate: must be 0 (closed loop) or a positive number"},
		{"NaN rate", func(s *Scenario) { s.Rate = math.NaN() }, "rate: must be 0 (closed loop) or a positive number"},
		{"infinite rate", func(s *Scenario) { s.Rate = math.Inf(1) }, "rate: must be 0 (closed loop) or a positive number"},
		{"huge num_samples", func(s *Scenario) { s.NumSamples = math.MaxInt64 }, "num_samples: must be at most 1000000000, got 9223372036854775807 (for a longer run give a duration, or 0 to run until interrupted)"},
		{"largest num_samples", func(s *Scenario) { s.NumSamples = MaxRequests }, ""},
		{"huge warmup", func(s *Scenario) { s.Warmup = math.MaxInt64 }, "warmup: must be at most 1000000000, got 9223372036854775807"},
		{"huge concurrency", func(s *Scenario) { s.Concurrency = 2_000_000_000 }, "concurrency: must be at most 1000000, got 2000000000"},
		{"largest concurrency", func(s *Scenario) { s.Concurrency = MaxConcurrency }, ""},
		{"tiny rate", func(s *Scenario) { s.Rate = 1e-300 }, "rate: must be 0 (closed loop) or at least 1e-06 requests per second (one every 11.6 days), got 1e-300"},
		{"slowest rate", func(s *Scenario) { s.Rate = MinRate }, ""},
		{"min above max", func(s *Scenario) { s.MinTokens = 200 }, "min_tokens: 200 is more than max_tokens 100"},
		{"min without max", func(s *Scenario) { s.MaxTokens, s.MinTokens = 0, 50 }, ""},
		{"ignore_eos without max", func(s *Scenario) { s.MaxTokens, s.MinTokens, s.IgnoreEOS = 0, 0, true }, "ignore_eos: needs max_tokens > 0"},
		{"negative temperature", func(s *Scenario) { s.Temperature = &neg }, "temperature: must be 0 (greedy) or more"},
		{"multi-turn", func(s *Scenario) {
			s.MultiTurn, s.History, s.ThinkTime, s.ThinkTimeDistribution = true, "dataset", time.Second, "exponential"
		}, ""},
		{"unknown history", func(s *Scenario) { s.MultiTurn, s.History = true, "client" },
			`history: "client" is not supported (allowed: server, dataset)`},
		{"unknown think-time distribution", func(s *Scenario) { s.MultiTurn, s.ThinkTimeDistribution = true, "normal" },
			`think_time_distribution: "normal" is not supported (allowed: constant, exponential)`},
		{"negative think time", func(s *Scenario) { s.MultiTurn, s.ThinkTime = true, -time.Second }, "think_time: must be 0 (none) or more, got -1s"},
		{"history without multi_turn", func(s *Scenario) { s.History = "server" },
			"history: applies to multi-turn conversations only: set multi_turn: true (--multi-turn)"},
		{"think time without multi_turn", func(s *Scenario) { s.ThinkTime = time.Second },
			"think_time: applies to multi-turn conversations only"},
		{"input and output lengths", func(s *Scenario) {
			s.Dataset = "synthetic:prefix=100"
			s.InputLen = lengths.Dist{Dist: lengths.LogNormal, Mean: 500, Std: 100, Min: 16, Max: 4096}
			s.OutputLen = lengths.Dist{Dist: lengths.Fixed, Value: 64}
		}, ""},
		{"ignore_eos with output_len", func(s *Scenario) {
			s.MaxTokens, s.MinTokens, s.IgnoreEOS, s.OutputLen = 0, 0, true, lengths.Dist{Dist: lengths.Fixed, Value: 8}
		}, ""},
		{"invalid input_len", func(s *Scenario) { s.InputLen = lengths.Dist{Dist: lengths.Uniform, Min: 9, Max: 3} },
			"input_len: uniform min 9 is more than max 3"},
		{"invalid output_len", func(s *Scenario) { s.OutputLen = lengths.Dist{Dist: "zipf"} }, `output_len: unknown distribution "zipf"`},
		{"input_len with a file", func(s *Scenario) {
			s.Dataset, s.InputLen = "prompts.jsonl", lengths.Dist{Dist: lengths.Fixed, Value: 8}
		}, "input_len: sets the length of synthetic prompts, but the dataset is prompts.jsonl"},
		{"several problems", func(s *Scenario) { s.API, s.NumSamples = "x", -1 },
			`api: "x" is not supported (allowed: chat, completions); num_samples: must be 0 or more, got -1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			zero := 0.0
			s := Scenario{
				Name: "t", Backend: "vllm", Endpoint: "http://localhost:8000/v1", API: "chat",
				Dataset: "synthetic", NumSamples: 10, Concurrency: 1, Arrival: "constant",
				MaxTokens: 100, MinTokens: 50, Temperature: &zero,
			}
			tt.mutate(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestClosestKey(t *testing.T) {
	keys := []string{"max_tokens", "min_tokens", "rate", "api", "concurrency", "temperature"}
	tests := []struct{ in, want string }{
		{"max_token", "max_tokens"},
		{"MAX-TOKENS", "max_tokens"},
		{"temprature", "temperature"},
		{"rat", "rate"},
		{"apu", "api"},
		{"xyz", ""},
		{"tokens", ""},
	}
	for _, tt := range tests {
		if got := closest(tt.in, keys); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzDecode checks that no input makes Decode panic, and
// that whatever it accepts is valid.
func FuzzDecode(f *testing.F) {
	f.Add("name: x\nrate: 5\narrival: poisson\n")
	f.Add("max_token: 1\n")
	f.Add("timeout: 300\nrate:\n  a: [1, 2]\n")
	f.Add("- 1\n---\n")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Decode(strings.NewReader(in), "fuzz.yaml")
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Errorf("accepted an invalid scenario: %v", verr)
			}
		}
	})
}

// TestDecodeExtraBodyAndSaveText: extra_body is a map sent as JSON, nested
// maps included; one that JSON cannot carry is an error at its line.
func TestDecodeExtraBodyAndSaveText(t *testing.T) {
	s, err := Decode(strings.NewReader("name: x\nsave_text: true\nextra_body:\n  reasoning_effort: low\n  chat_template_kwargs:\n    enable_thinking: false\n  top_k: 20\n"), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"reasoning_effort": "low", "chat_template_kwargs": map[string]any{"enable_thinking": false}, "top_k": 20}
	if !s.SaveText || !reflect.DeepEqual(s.ExtraBody, want) {
		t.Errorf("save_text %v, extra_body %#v; want true, %#v", s.SaveText, s.ExtraBody, want)
	}
	for _, bad := range []string{"extra_body:\n  a:\n    1: x\n", "extra_body:\n  a: .nan\n"} {
		_, err := Decode(strings.NewReader("name: x\n"+bad), "x.yaml")
		if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:2: extra_body: cannot be sent as JSON") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := Decode(strings.NewReader("name: x\nextra_body: low\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "x.yaml:2") {
		t.Errorf("extra_body not a map: %v", err)
	}
}
