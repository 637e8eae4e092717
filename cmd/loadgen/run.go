package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/internal/command"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/dataset"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// runCmd runs a scenario. Pointer flags distinguish "not given" from a
// zero value, so only flags given on the command line (or in the
// environment) override the scenario file.
type runCmd struct {
	Scenario string `short:"s" default:"energy_star" help:"Built-in scenario name (see 'loadgen scenarios') or a scenario YAML file."`
	Config   string `type:"existingfile" help:"Python POC (ai_energy_benchmarks) YAML config; replaces --scenario."`

	Backend  *string `enum:"openai,vllm,pytorch," default:"" help:"Server kind: vllm (OpenAI API plus min_tokens/ignore_eos), openai, pytorch."`
	Endpoint *string `help:"Server base URL, with or without /v1 (default http://localhost:8000/v1; pytorch: http://localhost:8080)."`
	Model    *string `help:"Model to request (default: the only model the server serves)."`
	APIKey   string  `name:"api-key" env:"OPENAI_API_KEY" help:"Bearer token for the server; never written anywhere."`
	API      *string `name:"api" enum:"chat,completions," default:"" help:"OpenAI API: chat or completions."`
	Stream   *bool   `negatable:"" help:"Stream responses (SSE); --no-stream measures whole responses."`

	NumSamples  *int           `help:"Measured requests to send (0: no limit)."`
	Duration    *time.Duration `help:"Stop scheduling after this long (0: no limit)."`
	Concurrency *int           `short:"c" help:"Requests in flight (closed loop), or the in-flight cap with --rate."`
	Rate        *float64       `help:"Open-loop arrival rate in requests/s (0: closed loop)."`
	Arrival     *string        `enum:"constant,poisson,gamma," default:"" help:"Open-loop arrivals: constant, poisson or gamma."`
	Burstiness  *float64       `help:"Gamma arrivals' shape: 1 is poisson, <1 burstier, >1 steadier."`
	Warmup      *int           `help:"Requests sent first and left out of every result."`

	MaxTokens   *int     `help:"max_tokens per request."`
	MinTokens   *int     `help:"min_tokens per request (vLLM)."`
	IgnoreEOS   *bool    `name:"ignore-eos" help:"Generate exactly max_tokens (vLLM ignore_eos)."`
	Temperature *float64 `help:"Sampling temperature (0: greedy)."`
	Seed        *int64   `help:"Seed for the server's sampling and for synthetic prompts and arrivals."`

	Dataset      *string `help:"Prompts: a .jsonl/.csv/.txt file, hf://ORG/NAME[?split=&column=], or synthetic[:mean=N,n=N]."`
	DatasetField *string `help:"JSONL field, CSV column or HF column holding the prompt (default prompt, then text)."`

	Out                    string         `default:"results" help:"Output directory for records.jsonl and summary.csv."`
	RunID                  string         `name:"run-id" help:"Run identifier (default: generated)."`
	MaxConsecutiveFailures *int           `help:"Stop after this many failures in a row (0: never)."`
	Timeout                *time.Duration `help:"Per-request timeout (0: none)."`
	Grace                  time.Duration  `default:"30s" help:"After Ctrl-C, how long in-flight requests may finish before they are canceled."`
	CarbonIntensity        *float64       `help:"Grid carbon intensity in g CO2eq/kWh for the emissions column (default: the POC config's metrics.country_iso_code if known, else 475, the world mean CodeCarbon uses)."`

	MetricsAddr   string        `name:"metrics-addr" default:"127.0.0.1:9465" help:"Serve the run's Prometheus metrics at http://ADDR/metrics (empty: off)."`
	Linger        time.Duration `default:"0s" help:"Keep serving /metrics this long after the run, so the final values are scraped."`
	WebConfigFile string        `name:"web.config.file" type:"existingfile" help:"exporter-toolkit web config for /metrics (TLS, basic auth)."`
	PushURL       string        `name:"push-url" help:"Also push the metrics here: VictoriaMetrics/vmagent .../api/v1/import/prometheus or a Pushgateway .../metrics/job/NAME."`
	PushInterval  time.Duration `name:"push-interval" default:"10s" help:"How often to push with --push-url (and once more at the end)."`

	Energy         string         `default:"auto" help:"GPU energy source: auto (dcgm, then nvml, else none; sim under --sim), dcgm, nvml, scrape:URL (dcgm-exporter or energy-exporter /metrics), sim, none."`
	EnergyInterval time.Duration  `name:"energy-interval" default:"100ms" help:"How often GPU energy is sampled."`
	IdleBaseline   *time.Duration `name:"idle-baseline" help:"Measure idle GPU power this long before the first request (0: none; energy_star: 10s)."`
	DCGMAddr       string         `name:"dcgm-addr" help:"Standalone DCGM host engine HOST:PORT (default: embedded)."`

	LowLatency bool   `name:"low-latency" help:"Keep CPUs out of deep idle states during the run (PM QoS, Linux, root) so wake-ups add no latency; costs CPU power."`
	CPUProfile string `name:"cpuprofile" placeholder:"FILE" help:"Write a Go CPU profile of the run to FILE (go tool pprof FILE)."`

	carbon float64 // the carbon intensity in effect, set by resolveScenario

	Sim      bool     `help:"Start the built-in simulator on a free loopback port and run against it."`
	SimFlags simFlags `embed:"" prefix:"sim-" group:"Simulator (with --sim)"`
}

func (c *runCmd) Run(e *env) error {
	sc, summaryPath, err := c.resolveScenario(e)
	if err != nil {
		return err
	}
	runID := c.RunID
	if runID == "" {
		runID = newRunID()
	}
	if c.LowLatency {
		defer lowLatency(e)()
	}
	if c.CPUProfile != "" {
		f, err := os.Create(c.CPUProfile)
		if err != nil {
			return usageErrf("--cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return usageErrf("--cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	// Bind the metrics address first: a port in use must fail the run
	// before it sends anything, pre-flight included.
	var metricsSrv *exporter.Server
	if c.MetricsAddr != "" {
		if metricsSrv, err = exporter.Listen(c.MetricsAddr, c.WebConfigFile); err != nil {
			return usageErr(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = metricsSrv.Close(ctx)
		}()
	}

	ctx := e.ctx
	var simURL string
	if c.Sim {
		model := sc.Model
		if model == "" {
			model = sim.DefaultConfig().Model
			sc.Model = model
		}
		cfg, err := c.SimFlags.config(model)
		if err != nil {
			return usageErr(err)
		}
		srv, err := sim.Start(context.WithoutCancel(ctx), "127.0.0.1:0", cfg)
		if err != nil {
			return fmt.Errorf("start simulator: %w", err)
		}
		defer srv.Close()
		simURL = srv.URL
		sc.Endpoint = srv.URL + "/v1"
		fmt.Fprintf(e.stderr, "loadgen: SIMULATED run: built-in simulator serving %q at %s (ttft %v, itl %v); no real server or GPU is measured\n",
			model, srv.URL, cfg.TTFT, cfg.ITL)
	}

	// The energy source fails fast too: a missing DCGM library must stop
	// the run before its first request.
	energySrc, err := c.openEnergy(e, simURL)
	if err != nil {
		return usageErr(err)
	}
	if energySrc != nil {
		defer func() {
			if energySrc != nil {
				energySrc.Close()
			}
		}()
	}

	backend, err := newBackend(sc, c.APIKey)
	if err != nil {
		return usageErr(err)
	}
	model, err := pickModel(ctx, backend, sc.Model)
	if err != nil {
		return err
	}

	prompts, err := c.loadPrompts(e, sc)
	if err != nil {
		return err
	}

	if summaryPath == "" {
		summaryPath = filepath.Join(c.Out, "summary.csv")
	}
	records, err := loadgen.OpenRecordsFile(filepath.Join(c.Out, loadgen.RecordsFileName))
	if err != nil {
		return err
	}
	summary := &lockedSummary{s: loadgen.NewSummary()}
	runOpts := exporter.RunOptions{Version: version, Simulated: c.Sim, CarbonIntensity: c.carbon,
		Endpoint: backends.WithoutUserinfo(backend.Endpoint()), RequestRate: sc.Rate,
		Concurrency: sc.Concurrency, Arrival: arrivalOf(sc), Warmup: sc.Warmup, EnergySource: "none"}
	if energySrc != nil {
		runOpts.EnergySource, runOpts.EnergyMethod = energySrc.Name(), energySrc.Method()
	}
	metrics := exporter.NewRun(exporter.RunLabels{RunID: runID, Scenario: sc.Name, Model: model, Backend: backend.Name()},
		runOpts)
	var energy *exporter.EnergyRun
	var attributor loadgen.Attributor
	if energySrc != nil {
		energy, err = exporter.StartEnergy(energySrc, c.EnergyInterval, metrics, c.Out, func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "loadgen: warning: "+format+"\n", args...)
		})
		if err != nil {
			records.Close()
			return err
		}
		energySrc = nil // the EnergyRun owns and closes it now
		defer func() {
			if err := energy.Stop(); err != nil {
				fmt.Fprintf(e.stderr, "loadgen: warning: %v\n", err)
			}
		}()
		attributor = energy
	}
	runner, err := loadgen.NewRunner(loadgen.RunConfig{
		RunID:     runID,
		Scenario:  sc,
		Backend:   backend,
		Model:     model,
		Prompts:   prompts,
		Simulated: c.Sim,
		Grace:     c.Grace,
		// One completion event feeds all three, so they cannot disagree.
		Sinks:      []loadgen.Sink{records, summary, metrics},
		Attributor: attributor,
	})
	if err != nil {
		records.Close()
		return usageErr(err)
	}
	metrics.TrackInFlight(func() float64 { return float64(runner.Progress.InFlight.Load()) })
	metrics.Start(time.Now())
	if metricsSrv != nil {
		metricsSrv.Serve(metrics.Registry(), slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
		fmt.Fprintf(e.stderr, "loadgen: serving metrics at %s\n", metricsURL(metricsSrv.Addr(), c.WebConfigFile))
	}
	var push *exporter.Push
	if c.PushURL != "" {
		push, err = exporter.StartPush(c.PushURL, c.PushInterval, metrics.Registry(), func(format string, args ...any) {
			fmt.Fprintf(e.stderr, "loadgen: warning: "+format+"\n", args...)
		})
		if err != nil {
			records.Close()
			return usageErr(err)
		}
	}

	fmt.Fprintf(e.stderr, "loadgen: run %s: scenario %s, %s %s model %q, %s, %d prompts\n",
		runID, sc.Name, backend.Name(), backend.Endpoint(), model, describeSchedule(sc), len(prompts))
	if energy != nil {
		if err := c.measureIdle(e, energy, sc); err != nil {
			records.Close()
			return err
		}
		energy.BeginWindow()
	}
	prog := startProgress(e, runner, summary, sc, c.Sim, metrics.SetClientSaturation)
	res, runErr := runner.Run(ctx)
	saturated, saturation := prog.stop()
	if saturated {
		fmt.Fprintf(e.stderr, "loadgen: warning: %s\n", saturation)
	}
	if err := records.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if res.Requests > 0 {
		metrics.End(res.Start, res.End)
	} else {
		metrics.End(time.Time{}, time.Now())
	}
	if push != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := push.Close(ctx); err != nil {
			fmt.Fprintf(e.stderr, "loadgen: warning: %v\n", err)
		}
		cancel()
	}

	row := summary.row(loadgen.RunInfo{
		Name:            sc.Name,
		RunID:           runID,
		Scenario:        sc.Name,
		Backend:         backend.Name(),
		Model:           model,
		Endpoint:        backend.Endpoint(),
		Start:           res.Start,
		End:             res.End,
		RequestRate:     sc.Rate,
		Concurrency:     sc.Concurrency,
		Arrival:         arrivalOf(sc),
		Warmup:          sc.Warmup,
		Simulated:       c.Sim,
		CarbonIntensity: c.carbon,
	})
	row.ClientSaturated = &saturated
	if energy != nil {
		es := energy.Summary()
		row.ApplyEnergy(report.Energy{Source: es.Source, Method: es.Method, GPUs: es.GPUs,
			EnergyJ: es.EnergyJ, IdlePowerW: es.IdlePowerW, PeakPowerW: es.PeakPowerW})
	}
	if err := report.AppendCSV(summaryPath, row); err != nil {
		return usageErr(err)
	}
	if err := report.WriteTable(e.stdout, row); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "loadgen: wrote %s and %s (stopped: %s)\n",
		filepath.Join(c.Out, loadgen.RecordsFileName), summaryPath, res.StopReason)
	if metricsSrv != nil && c.Linger > 0 && !e.interrupted() {
		fmt.Fprintf(e.stderr, "loadgen: lingering %v so the final metrics are scraped\n", c.Linger)
		select {
		case <-time.After(c.Linger):
		case <-e.ctx.Done():
		}
	}

	switch {
	case runErr != nil:
		return command.Exit(exitFailed, runErr)
	case res.StopReason == loadgen.StopInterrupted:
		return command.Exit(exitInterrupted, errors.New("interrupted: stopped scheduling, in-flight requests finished or were canceled; records and summary are complete"))
	case res.Requests > 0 && res.OK == 0:
		return command.Exit(exitFailed, fmt.Errorf("all %d requests failed; see %s", res.Requests, filepath.Join(c.Out, loadgen.RecordsFileName)))
	}
	return nil
}

// lowLatency holds the PM QoS request if it can, warning if not: timing
// gets less precise without it, the run is still valid. The returned
// function, deferred by the caller, releases it.
func lowLatency(e *env) func() {
	release, err := holdLowLatency()
	if err != nil {
		fmt.Fprintf(e.stderr, "loadgen: warning: %v; continuing without it\n", err)
		return func() {}
	}
	return release
}

// openEnergy opens the --energy source; nil means none. Under --sim,
// auto (and sim) read the simulator's simulated GPU through the same
// scrape path a remote GPU host would use.
func (c *runCmd) openEnergy(e *env, simURL string) (exporter.Source, error) {
	spec := c.Energy
	switch {
	case spec == exporter.SourceSim && simURL == "":
		return nil, errors.New("--energy sim needs --sim (for a separate loadgen sim, use --energy scrape:http://HOST:PORT/metrics)")
	case spec == exporter.SourceSim || (spec == exporter.SourceAuto && simURL != ""):
		spec = exporter.SourceScrape + ":" + simURL + "/metrics"
	}
	src, why, err := exporter.OpenSource(e.ctx, spec, exporter.SourceOptions{
		DCGMAddr: c.DCGMAddr,
		Interval: c.EnergyInterval,
		Logf:     func(format string, args ...any) { fmt.Fprintf(e.stderr, "loadgen: "+format+"\n", args...) },
	})
	if err != nil {
		return nil, err
	}
	if why != "" {
		fmt.Fprintf(e.stderr, "loadgen: %s\n", why)
	}
	if src == nil {
		fmt.Fprintln(e.stderr, "loadgen: energy: none; the summary's energy columns stay empty")
		return nil, nil
	}
	what := src.Name()
	if simURL != "" {
		what = "the simulator's SIMULATED GPU power model"
	}
	fmt.Fprintf(e.stderr, "loadgen: energy: %s, %d GPU(s), %s, every %v\n", what, len(src.Devices()), src.Method(), c.EnergyInterval)
	return src, nil
}

// measureIdle measures the idle baseline before the first request.
func (c *runCmd) measureIdle(e *env, energy *exporter.EnergyRun, sc *scenario.Scenario) error {
	d := sc.IdleBaseline
	if c.IdleBaseline != nil {
		d = *c.IdleBaseline
	}
	if d <= 0 {
		return nil
	}
	fmt.Fprintf(e.stderr, "loadgen: measuring idle GPU power for %v before the first request\n", d)
	if err := energy.MeasureIdle(e.ctx, d); err != nil {
		if e.interrupted() {
			return command.Exit(exitInterrupted, errors.New("interrupted while measuring the idle baseline; nothing was sent"))
		}
		return err
	}
	return nil
}

// metricsURL is what to scrape, for the log line.
func metricsURL(addr, webConfigFile string) string {
	if webConfigFile != "" {
		return addr + "/metrics (TLS and auth per --web.config.file)"
	}
	return "http://" + addr + "/metrics"
}

// resolveScenario loads the scenario (or POC config) and applies the
// flags given. It returns the summary path when the config names one.
func (c *runCmd) resolveScenario(e *env) (*scenario.Scenario, string, error) {
	var sc *scenario.Scenario
	var summaryPath string
	if c.Config != "" {
		poc, err := scenario.LoadPOCConfig(c.Config)
		if err != nil {
			return nil, "", usageErr(err)
		}
		s, warnings := poc.ToScenario()
		for _, w := range warnings {
			fmt.Fprintf(e.stderr, "loadgen: warning: %s: %s\n", c.Config, w)
		}
		sc = &s
		summaryPath = poc.SummaryPath()
		if g, country, ok := report.CountryCarbonIntensity(poc.CountryISOCode()); ok && c.CarbonIntensity == nil {
			c.carbon = g
			fmt.Fprintf(e.stderr, "loadgen: carbon intensity %g g/kWh for %s (%s)\n", g, country, report.CarbonSource)
		}
		if c.Out == "results" && poc.OutputDir() != "" {
			c.Out = poc.OutputDir()
		}
	} else {
		s, err := scenario.Load(c.Scenario)
		if err != nil {
			return nil, "", usageErr(err)
		}
		sc = s
	}
	switch {
	case c.CarbonIntensity != nil:
		if *c.CarbonIntensity < 0 {
			return nil, "", usageErrf("--carbon-intensity %g: must be 0 or more g CO2eq/kWh", *c.CarbonIntensity)
		}
		c.carbon = *c.CarbonIntensity
	case c.carbon == 0:
		c.carbon = report.DefaultCarbonIntensity
	}
	c.applyFlags(sc)
	if sc.Backend == "" {
		sc.Backend = "vllm"
	}
	if sc.Endpoint == "" {
		sc.Endpoint = "http://localhost:8000/v1"
		if sc.Backend == "pytorch" {
			// backends/pytorch/server.py's and TorchServe's inference port.
			sc.Endpoint = "http://localhost:8080"
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, "", usageErr(fmt.Errorf("scenario %s: %w", sc.Name, err))
	}
	if sc.NumSamples <= 0 && sc.Duration <= 0 && !isSoak(sc) {
		return nil, "", usageErrf("scenario %s has no end: give --num-samples or --duration", sc.Name)
	}
	return sc, summaryPath, nil
}

// isSoak reports whether sc is meant to run until interrupted: open loop
// with neither a count nor a duration.
func isSoak(sc *scenario.Scenario) bool { return sc.Rate > 0 }

func (c *runCmd) applyFlags(sc *scenario.Scenario) {
	set(&sc.Backend, nonEmpty(c.Backend))
	set(&sc.Endpoint, c.Endpoint)
	set(&sc.Model, c.Model)
	set(&sc.API, nonEmpty(c.API))
	if c.Stream != nil {
		sc.Stream = c.Stream
	}
	set(&sc.NumSamples, c.NumSamples)
	set(&sc.Duration, c.Duration)
	set(&sc.Concurrency, c.Concurrency)
	set(&sc.Rate, c.Rate)
	set(&sc.Arrival, nonEmpty(c.Arrival))
	set(&sc.Burstiness, c.Burstiness)
	set(&sc.Warmup, c.Warmup)
	set(&sc.MaxTokens, c.MaxTokens)
	set(&sc.MinTokens, c.MinTokens)
	set(&sc.IgnoreEOS, c.IgnoreEOS)
	if c.Temperature != nil {
		sc.Temperature = c.Temperature
	}
	if c.Seed != nil {
		sc.Seed = c.Seed
	}
	if c.Dataset != nil {
		// A new dataset has its own columns: the scenario's field was
		// chosen for the scenario's dataset, not this one.
		sc.Dataset = *c.Dataset
		sc.DatasetField = ""
	}
	set(&sc.DatasetField, c.DatasetField)
	set(&sc.MaxConsecutiveFailures, c.MaxConsecutiveFailures)
	set(&sc.Timeout, c.Timeout)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// nonEmpty treats an enum flag's empty default as "not given".
func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

func newBackend(sc *scenario.Scenario, apiKey string) (backends.Backend, error) {
	switch sc.Backend {
	case "openai", "vllm":
		api := backends.APIChat
		if sc.API == string(backends.APICompletions) {
			api = backends.APICompletions
		}
		return backends.NewOpenAI(backends.OpenAIConfig{
			Endpoint: sc.Endpoint,
			APIKey:   apiKey,
			API:      api,
			VLLM:     sc.Backend == "vllm",
		})
	case "pytorch":
		if apiKey != "" {
			return nil, errors.New("--api-key is not used by --backend pytorch (TorchServe's inference API has no bearer token here); unset it")
		}
		return backends.NewPyTorch(backends.PyTorchConfig{Endpoint: sc.Endpoint})
	default:
		return nil, fmt.Errorf("unknown backend %q (want vllm, openai or pytorch)", sc.Backend)
	}
}

// pickModel checks the endpoint and the model before the run: the server
// must answer and serve the model; with no model given, the only one
// served is used.
func pickModel(ctx context.Context, b backends.Backend, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	served, err := b.Models(ctx)
	switch {
	case errors.Is(err, backends.ErrModelsNotListed) && want != "":
		// A TorchServe inference port: healthy, model list elsewhere.
		return want, nil
	case errors.Is(err, backends.ErrModelsNotListed):
		return "", usageErrf("%s: %v", b.Endpoint(), err)
	case err != nil:
		return "", usageErrf("cannot reach the endpoint: %v (is the server running? try --sim for the built-in simulator)", err)
	}
	switch {
	case want != "" && slices.Contains(served, want):
		return want, nil
	case want != "":
		return "", usageErrf("model %q is not served at %s; served: %s (pass one with --model)", want, b.Endpoint(), quoteList(served))
	case len(served) == 1:
		return served[0], nil
	case len(served) == 0:
		return "", usageErrf("%s serves no model", b.Endpoint())
	default:
		return "", usageErrf("%s serves several models: %s; choose one with --model", b.Endpoint(), quoteList(served))
	}
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// loadPrompts loads the scenario's dataset. Under --sim, a dataset that
// needs the network and has no cached copy falls back to synthetic prompts
// of the scenario's declared shape, so the quick start works offline.
func (c *runCmd) loadPrompts(e *env, sc *scenario.Scenario) ([]string, error) {
	limit := 0
	if sc.NumSamples > 0 && sc.Duration <= 0 {
		limit = sc.NumSamples + sc.Warmup
	}
	seed := int64(0)
	if sc.Seed != nil {
		seed = *sc.Seed
	}
	prompts, err := dataset.Load(e.ctx, sc.Dataset, dataset.Options{
		Field: sc.DatasetField,
		Limit: limit,
		Seed:  seed,
	})
	var unavailable *dataset.UnavailableError
	if errors.As(err, &unavailable) && c.Sim && sc.SimFallbackMeanTokens > 0 {
		n := limit
		if n == 0 {
			n = 1000
		}
		fmt.Fprintf(e.stderr, "loadgen: dataset %s is not reachable and not cached; SIMULATED run uses %d synthetic prompts of about %d tokens instead (pass --dataset FILE for real prompts)\n",
			sc.Dataset, n, sc.SimFallbackMeanTokens)
		return dataset.Synthetic(n, sc.SimFallbackMeanTokens, seed), nil
	}
	if err != nil {
		return nil, usageErr(err)
	}
	return prompts, nil
}

func describeSchedule(sc *scenario.Scenario) string {
	var s string
	switch {
	case sc.Rate > 0:
		s = fmt.Sprintf("open loop %s %g req/s", arrivalOf(sc), sc.Rate)
		if sc.Concurrency > 0 {
			s += fmt.Sprintf(" (cap %d in flight)", sc.Concurrency)
		}
	case sc.Concurrency <= 1:
		s = "sequential"
	default:
		s = fmt.Sprintf("concurrency %d", sc.Concurrency)
	}
	if sc.NumSamples > 0 {
		s += fmt.Sprintf(", %d requests", sc.NumSamples)
	}
	if sc.Duration > 0 {
		s += fmt.Sprintf(", up to %v", sc.Duration)
	}
	if sc.NumSamples <= 0 && sc.Duration <= 0 {
		s += ", until interrupted"
	}
	if sc.Warmup > 0 {
		s += fmt.Sprintf(", %d warm-up", sc.Warmup)
	}
	return s
}

func arrivalOf(sc *scenario.Scenario) string {
	if sc.Rate <= 0 {
		return ""
	}
	if sc.Arrival == "" {
		return scenario.ArrivalConstant
	}
	return sc.Arrival
}

// newRunID returns a sortable, readable run id: UTC time plus randomness.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// lockedSummary lets the progress line read the summary that the runner's
// collector goroutine writes.
type lockedSummary struct {
	mu sync.Mutex
	s  *loadgen.Summary
}

func (l *lockedSummary) Observe(rec *loadgen.Record) {
	l.mu.Lock()
	l.s.Add(rec)
	l.mu.Unlock()
}

func (l *lockedSummary) ttftP50() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.TTFTQuantile(0.5)
}

func (l *lockedSummary) row(info loadgen.RunInfo) *report.Row {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.Row(info)
}
