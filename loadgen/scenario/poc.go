package scenario

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/report"
)

// The Python POC's (ai_energy_benchmarks) defaults for keys a config
// leaves out, from its config/parser.py, so a POC config runs here as it
// ran there.
const (
	pocDefaultName     = "benchmark"
	pocDefaultBackend  = "vllm"
	pocDefaultEndpoint = "http://localhost:8000/v1"
	// pocDefaultPyTorchEndpoint is where backend.type pytorch configs send
	// requests: backends/pytorch/server.py's (and TorchServe's) default.
	pocDefaultPyTorchEndpoint = "http://localhost:8080"
	pocDefaultModel           = "openai/gpt-oss-120b"
	pocDefaultDataset         = "AIEnergyScore/text_generation"
	pocDefaultTextColumn      = "text"
	pocDefaultNumSamples      = 10
	pocDefaultBatchSize       = 1
	pocDefaultMaxNewTokens    = 100
	pocDefaultMinNewTokens    = 50
	pocDefaultSummaryPath     = "./results/benchmark_results.csv"
	pocDefaultOutputDir       = "./benchmark_output"
	pocDefaultTask            = "text-generation"
)

// How the POC shaped and bounded each request, whatever its config said:
// runner.py passes temperature=0.7 to every request, VLLMBackend gives
// each request 300 s, and the POC gave up after 3 failures in a row.
const (
	pocTemperature            = 0.7
	pocTimeout                = 300 * time.Second
	pocMaxConsecutiveFailures = 3
)

// aiEnergyScoreMeanPromptTokens is the mean prompt length of
// AIEnergyScore/text_generation (as in configs/scenarios/energy_star.yaml),
// so a --sim run of a POC config without network access still sends
// prompts of a realistic size.
const aiEnergyScoreMeanPromptTokens = 369

// POCConfig is a config file of the Python POC (ai_energy_benchmarks), key
// for key. A nil pointer, slice or map means the key is absent from the
// file and the POC's default applies; ToScenario, SummaryPath and
// OutputDir apply those defaults.
type POCConfig struct {
	Name            *string     `yaml:"name"`
	Backend         POCBackend  `yaml:"backend"`
	Scenario        POCScenario `yaml:"scenario"`
	Metrics         POCMetrics  `yaml:"metrics"`
	Reporter        POCReporter `yaml:"reporter"`
	OutputDirectory *string     `yaml:"output_dir"`
}

// POCBackend is a POC config's backend section.
type POCBackend struct {
	Type      *string `yaml:"type"` // vllm | pytorch
	Device    *string `yaml:"device"`
	DeviceIDs []int   `yaml:"device_ids"`
	Model     *string `yaml:"model"`
	Endpoint  *string `yaml:"endpoint"`
	Task      *string `yaml:"task"`
}

// POCScenario is a POC config's scenario section. InputShapes and
// GenerateKwargs were free-form in the POC; the keys tokenwatt reads are
// input_shapes.batch_size and generate_kwargs.max_new_tokens and
// min_new_tokens.
type POCScenario struct {
	DatasetName     *string        `yaml:"dataset_name"`
	TextColumnName  *string        `yaml:"text_column_name"`
	NumSamples      *int           `yaml:"num_samples"`
	Truncation      *bool          `yaml:"truncation"`
	Reasoning       *bool          `yaml:"reasoning"`
	ReasoningParams map[string]any `yaml:"reasoning_params"`
	InputShapes     map[string]any `yaml:"input_shapes"`
	GenerateKwargs  map[string]any `yaml:"generate_kwargs"`
}

// POCMetrics is a POC config's metrics section: CodeCarbon's settings.
type POCMetrics struct {
	Type           *string `yaml:"type"` // codecarbon
	Enabled        *bool   `yaml:"enabled"`
	ProjectName    *string `yaml:"project_name"`
	OutputDir      *string `yaml:"output_dir"`
	CountryISOCode *string `yaml:"country_iso_code"`
	Region         *string `yaml:"region"`
}

// POCReporter is a POC config's reporter section.
type POCReporter struct {
	Type       *string `yaml:"type"` // csv
	OutputFile *string `yaml:"output_file"`
}

// LoadPOCConfig reads the POC config file at path. Decoding is strict,
// with the messages of Decode: a key the POC never had is an
// error naming the file, the line and the key. Values the POC itself
// rejected (its validate_config) are errors too.
func LoadPOCConfig(path string) (*POCConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read POC config: %w", err)
	}
	var c POCConfig
	doc, err := decodeStrict(data, path, &c)
	if err != nil {
		return nil, err
	}
	if errs := c.check(); len(errs) > 0 {
		return nil, doc.locate(path, errs)
	}
	return &c, nil
}

// check rejects what the POC's validate_config rejected, and values of
// the free-form sections that tokenwatt reads but cannot use.
func (c *POCConfig) check() keyErrors {
	var errs keyErrors
	add := func(key, format string, args ...any) {
		errs = append(errs, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
	}
	if t := c.backendType(); t != "vllm" && t != "pytorch" {
		add("backend.type", "%q is not supported (allowed: vllm, pytorch)", t)
	}
	if e := c.endpoint(); e == "" {
		add("backend.endpoint", "must not be empty (e.g. %s)", pocDefaultEndpoint)
	} else if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("backend.endpoint", "%q is not an http(s) URL (e.g. %s)", e, pocDefaultEndpoint)
	}
	if n := c.Scenario.NumSamples; n != nil && *n < 1 {
		add("scenario.num_samples", "must be 1 or more, got %d", *n)
	} else if n != nil && *n > MaxRequests {
		add("scenario.num_samples", "must be at most %d, got %d", MaxRequests, *n)
	}
	if t := c.Metrics.Type; t != nil && *t != "codecarbon" {
		add("metrics.type", "%q is not supported (allowed: codecarbon)", *t)
	}
	if t := c.Reporter.Type; t != nil && *t != "csv" {
		add("reporter.type", "%q is not supported (allowed: csv)", *t)
	}
	batch, err := intKey(c.Scenario.InputShapes, "batch_size")
	switch {
	case err != nil:
		add("scenario.input_shapes.batch_size", "%v", err)
	case batch != nil && *batch < 1:
		add("scenario.input_shapes.batch_size", "must be 1 or more, got %d", *batch)
	case batch != nil && *batch > MaxConcurrency:
		add("scenario.input_shapes.batch_size", "must be at most %d (it is the run's concurrency), got %d", MaxConcurrency, *batch)
	}
	maxNew, err := intKey(c.Scenario.GenerateKwargs, "max_new_tokens")
	switch {
	case err != nil:
		add("scenario.generate_kwargs.max_new_tokens", "%v", err)
	case maxNew != nil && *maxNew < 1:
		add("scenario.generate_kwargs.max_new_tokens", "must be 1 or more, got %d", *maxNew)
	}
	minNew, err := intKey(c.Scenario.GenerateKwargs, "min_new_tokens")
	switch {
	case err != nil:
		add("scenario.generate_kwargs.min_new_tokens", "%v", err)
	case minNew != nil && *minNew < 0:
		add("scenario.generate_kwargs.min_new_tokens", "must be 0 or more, got %d", *minNew)
	case minNew != nil && *minNew > c.maxNewTokens():
		add("scenario.generate_kwargs.min_new_tokens", "%d is more than max_new_tokens %d", *minNew, c.maxNewTokens())
	}
	return errs
}

// ToScenario maps the config onto a Scenario, applying the POC's defaults
// and its fixed request shape: prompts sent one at a time (batch_size
// concurrent requests when input_shapes.batch_size > 1), temperature 0.7
// as the POC's runner sent, a 300 s timeout, and a stop after 3
// consecutive failures. min_new_tokens is sent as vLLM's min_tokens (the
// POC wrote it in its configs but never sent it).
//
// The warnings name, once each, every key the file sets that tokenwatt
// cannot honour and why, so that no setting is dropped silently. Call it
// on a config from LoadPOCConfig, which has rejected invalid values.
func (c *POCConfig) ToScenario() (Scenario, []string) {
	sc := &c.Scenario
	s := Scenario{
		Name:                   deref(c.Name, pocDefaultName),
		Backend:                c.backendType(),
		Endpoint:               c.endpoint(),
		Model:                  deref(c.Backend.Model, pocDefaultModel),
		DatasetField:           deref(sc.TextColumnName, pocDefaultTextColumn),
		NumSamples:             deref(sc.NumSamples, pocDefaultNumSamples),
		Concurrency:            pocDefaultBatchSize,
		MaxTokens:              c.maxNewTokens(),
		Temperature:            ptr(pocTemperature),
		MaxConsecutiveFailures: pocMaxConsecutiveFailures,
		Timeout:                pocTimeout,
	}
	s.Description = fmt.Sprintf("ai_energy_benchmarks (Python POC) config %s", s.Name)
	if s.Backend == "vllm" {
		// VLLMBackend posted to /v1/chat/completions.
		s.API = "chat"
	}
	dataset := deref(sc.DatasetName, pocDefaultDataset)
	s.Dataset = dataset
	if !isLocalDataset(dataset) {
		s.Dataset = "hf://" + dataset
	}
	if dataset == pocDefaultDataset {
		s.SimFallbackMeanTokens = aiEnergyScoreMeanPromptTokens
	}
	if sc.GenerateKwargs == nil {
		s.MinTokens = pocDefaultMinNewTokens
	} else if n, _ := intKey(sc.GenerateKwargs, "min_new_tokens"); n != nil {
		s.MinTokens = *n
	}
	if n, _ := intKey(sc.InputShapes, "batch_size"); n != nil {
		s.Concurrency = *n
	}

	var warnings []string
	warn := func(keys []string, format string, args ...any) {
		if len(keys) > 0 {
			warnings = append(warnings, strings.Join(keys, ", ")+": "+fmt.Sprintf(format, args...))
		}
	}
	b := &c.Backend
	if s.Backend == "pytorch" {
		warn([]string{"backend.type"}, "pytorch: the POC loaded the model in its own process; tokenwatt sends requests "+
			"to a PyTorch server at %s, which must already be running", s.Endpoint)
	}
	if strings.Contains(strings.ToLower(s.Model), "gpt-oss") {
		warn([]string{"backend.model"}, "%s: the POC wrapped each gpt-oss prompt in a Harmony system/user template; "+
			"tokenwatt sends prompts as they are through the chat API, so prompt token counts differ", s.Model)
	}
	warn(present(map[string]bool{"backend.device": b.Device != nil, "backend.device_ids": b.DeviceIDs != nil}),
		"ignored: the inference server places the model, and energy is measured on every GPU the energy source sees")
	if b.Task != nil && *b.Task != pocDefaultTask {
		warn([]string{"backend.task"}, "%q is ignored: tokenwatt only runs %s", *b.Task, pocDefaultTask)
	}
	if sc.Truncation != nil {
		warn([]string{"scenario.truncation"}, "ignored: prompts are sent whole, and the server truncates or rejects "+
			"those longer than its context")
	}
	if deref(sc.Reasoning, false) {
		warn(present(map[string]bool{"scenario.reasoning": true, "scenario.reasoning_params": sc.ReasoningParams != nil}),
			"not sent: tokenwatt sends each prompt without reasoning_effort or other reasoning parameters")
	} else if sc.ReasoningParams != nil {
		warn([]string{"scenario.reasoning_params"}, "ignored because scenario.reasoning is not true (as in the POC)")
	}
	if batch := s.Concurrency; batch > 1 {
		warn([]string{"scenario.input_shapes.batch_size"}, "%d: sent as %d concurrent requests "+
			"(the POC sent prompts one at a time whatever batch_size said)", batch, batch)
	}
	warn(otherKeys("scenario.input_shapes", sc.InputShapes, "batch_size"), "ignored: tokenwatt reads only batch_size")
	warn(otherKeys("scenario.generate_kwargs", sc.GenerateKwargs, "max_new_tokens", "min_new_tokens"),
		"not sent: tokenwatt sends max_new_tokens and min_new_tokens only, with temperature %v as the POC did", pocTemperature)
	m := &c.Metrics
	if m.Enabled != nil && !*m.Enabled {
		warn([]string{"metrics.enabled"}, "false is ignored: tokenwatt measures energy whenever an energy source is available")
	}
	warn(present(map[string]bool{
		"metrics.type":         m.Type != nil,
		"metrics.enabled":      m.Enabled != nil && *m.Enabled,
		"metrics.project_name": m.ProjectName != nil,
		"metrics.output_dir":   m.OutputDir != nil,
	}), "CodeCarbon is not used: energy comes from tokenwatt's own sources (DCGM, NVML or the simulator)")
	if code := c.CountryISOCode(); code != "" {
		if _, _, known := report.CountryCarbonIntensity(code); !known {
			warn([]string{"metrics.country_iso_code"}, "%q is unknown: tokenwatt has no national carbon intensity for it; "+
				"the default %g g/kWh applies unless --carbon-intensity is given", code, report.DefaultCarbonIntensity)
		}
	}
	if m.Region != nil {
		warn([]string{"metrics.region"}, "ignored: tokenwatt has national, not regional, carbon intensities "+
			"(use --carbon-intensity for a regional figure)")
	}
	return s, warnings
}

// CountryISOCode is metrics.country_iso_code ("" when absent): its
// national carbon intensity sets the run's emissions factor, as CodeCarbon
// did for the POC.
func (c *POCConfig) CountryISOCode() string {
	return strings.TrimSpace(deref(c.Metrics.CountryISOCode, ""))
}

// SummaryPath is where the CSV summary goes: reporter.output_file, or the
// POC's default. A relative path is relative to the current directory, as
// it was for the POC (not to the config file's directory).
func (c *POCConfig) SummaryPath() string {
	return deref(c.Reporter.OutputFile, pocDefaultSummaryPath)
}

// OutputDir is the run's output directory: output_dir, or the POC's
// default, relative to the current directory.
func (c *POCConfig) OutputDir() string {
	return deref(c.OutputDirectory, pocDefaultOutputDir)
}

func (c *POCConfig) backendType() string { return deref(c.Backend.Type, pocDefaultBackend) }

func (c *POCConfig) endpoint() string {
	if c.backendType() == "pytorch" {
		// The POC ran PyTorch in-process; tokenwatt reaches it through a
		// TorchServe-style server, on TorchServe's inference port.
		return deref(c.Backend.Endpoint, pocDefaultPyTorchEndpoint)
	}
	return deref(c.Backend.Endpoint, pocDefaultEndpoint)
}

// maxNewTokens follows the POC's runner: generate_kwargs.max_new_tokens,
// else 100, also when generate_kwargs is given without it.
func (c *POCConfig) maxNewTokens() int {
	if n, _ := intKey(c.Scenario.GenerateKwargs, "max_new_tokens"); n != nil {
		return *n
	}
	return pocDefaultMaxNewTokens
}

// intKey reads an integer from a free-form section; nil when absent.
func intKey(m map[string]any, key string) (*int, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	n, ok := v.(int)
	if !ok {
		return nil, fmt.Errorf("want an integer, got %v", v)
	}
	return &n, nil
}

// present returns the keys whose flag is true, sorted.
func present(keys map[string]bool) []string {
	var out []string
	for k, ok := range keys {
		if ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// otherKeys returns the keys of m not in read, as dotted paths, sorted.
func otherKeys(prefix string, m map[string]any, read ...string) []string {
	var out []string
	for k := range m {
		if !slices.Contains(read, k) {
			out = append(out, prefix+"."+k)
		}
	}
	slices.Sort(out)
	return out
}

// isLocalDataset reports whether a POC dataset_name is a file rather than
// a Hugging Face dataset ID (ORG/NAME or NAME): it looks like a path or
// has a dataset file's extension.
func isLocalDataset(name string) bool {
	if filepath.IsAbs(name) || strings.HasPrefix(name, "./") || strings.HasPrefix(name, "../") ||
		strings.HasPrefix(name, "~") || strings.Count(name, "/") > 1 {
		return true
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jsonl", ".ndjson", ".json", ".csv", ".txt":
		return true
	}
	return false
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func ptr[T any](v T) *T { return &v }
