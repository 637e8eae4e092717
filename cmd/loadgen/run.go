package main

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/internal/command"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
	"github.com/tokenwatt/tokenwatt/loadgen/run"
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
	Stream   *bool   `negatable:"" help:"Stream responses (SSE); --no-stream measures whole responses (E2E only: TTFT, ITL and TPOT null)."`

	NumSamples  *int           `help:"Measured requests to send (0: no limit)."`
	Duration    *time.Duration `help:"Stop scheduling after this long (0: no limit)."`
	Concurrency *int           `short:"c" help:"Requests in flight (closed loop), or the in-flight cap with --rate."`
	Rate        *float64       `help:"Open-loop arrival rate in requests/s (0: closed loop)."`
	Arrival     *string        `enum:"constant,poisson,gamma," default:"" help:"Open-loop arrivals: constant, poisson or gamma."`
	Burstiness  *float64       `help:"Gamma arrivals' shape: 1 is poisson, <1 burstier, >1 steadier."`
	Warmup      *int           `help:"Requests sent first and left out of every result."`
	Stages      *string        `placeholder:"DURATION@LOAD,..." help:"Load that changes over time, stage after stage: DURATION@RATE (open loop, req/s), DURATION@cN (closed loop, N in flight) or DURATION@RATE/cN (its own in-flight cap), e.g. 60s@5,60s@20,2m@c8; the run ends with the last. Replaces --rate."`
	Ramp        *string        `placeholder:"FROM:TO:DURATION" help:"A linear open-loop ramp of the rate, e.g. 1:50:10m (1 to 50 req/s over 10 minutes); the run ends with it. Replaces --rate."`

	MultiTurn             *bool          `name:"multi-turn" negatable:"" help:"Replay each conversation of a chat or ShareGPT dataset turn by turn, each turn with the history so far; -c and --rate then count conversations, --num-samples turns."`
	History               *string        `enum:"server,dataset," default:"" help:"Multi-turn history: server (the server's own earlier answers, the default) or dataset (the answers the dataset recorded)."`
	ThinkTime             *time.Duration `name:"think-time" help:"Multi-turn: pause between a turn's end and the next turn (its mean with --think-time-distribution exponential)."`
	ThinkTimeDistribution *string        `name:"think-time-distribution" enum:"constant,exponential," default:"" help:"Multi-turn think time: constant (the default) or exponential."`

	MaxTokens   *int     `help:"max_tokens per request."`
	MinTokens   *int     `help:"min_tokens per request (vLLM)."`
	IgnoreEOS   *bool    `name:"ignore-eos" help:"Generate exactly max_tokens (vLLM ignore_eos)."`
	Temperature *float64 `help:"Sampling temperature (0: greedy)."`
	Seed        *int64   `help:"Seed for the server's sampling and for synthetic prompts and arrivals."`
	ExtraBody   *string  `name:"extra-body" placeholder:"JSON" help:"A JSON object added to every request body, over the scenario's extra_body, e.g. '{\"reasoning_effort\":\"low\"}'; keys tokenwatt sets itself (model, max_tokens, stream, ...) are refused."`
	SaveText    *bool    `name:"save-text" negatable:"" help:"Keep each request's prompt and answer (up to 1 MiB) in records.jsonl. Off by default: prompts and answers may be private."`

	Dataset       *string `help:"Prompts: a .jsonl/.json/.csv/.txt file, hf://ORG/NAME[?split=&column=], or synthetic[:mean=N,n=N,prefix=N,groups=G]."`
	DatasetField  *string `help:"JSON field, CSV column or HF column holding the prompt or conversation (default: prompt, text, messages, conversations, conversation)."`
	DatasetFormat *string `enum:"auto,prompt,chat,sharegpt," default:"" help:"Dataset rows' shape: auto (detected from the first row), prompt, chat (OpenAI messages) or sharegpt (conversations of from/value)."`
	InputLen      *string `name:"input-len" placeholder:"DIST" help:"Synthetic prompts' length in tokens, made exact with the server's or the model's tokenizer: N, uniform:min=N,max=N, normal:mean=N,std=N[,min=N,max=N] or lognormal:... (with prefix=: the part after the prefix)."`
	OutputLen     *string `name:"output-len" placeholder:"DIST" help:"Each prompt's exact output length in tokens (sent as max_tokens and min_tokens), same forms as --input-len; replaces --max-tokens and --min-tokens."`
	Tokenizer     string  `name:"tokenizer" placeholder:"PATH" help:"The model's tokenizer.json (or its directory), for exact synthetic prompt lengths when the server has no POST /tokenize (default: the Hugging Face cache's copy, if any)."`

	Out                    string         `default:"results" help:"Output directory: OUT/RUN_ID/ gets the run's records.jsonl, energy.jsonl and report.json; OUT/summary.csv gets a row (also under --config: instead of its output_dir and reporter.output_file)."`
	RunID                  string         `name:"run-id" help:"Run identifier (default: generated)."`
	Shard                  string         `name:"shard" env:"TOKENWATT_SHARD" placeholder:"I/N" help:"Run shard I (0 to N-1) of N load generators that share the scenario and --run-id: requests and open-loop arrivals I, I+N, I+2N, ... of the unsharded run, and an even share of the concurrency, num_samples and warm-up. /N takes I from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)."`
	StartAt                string         `name:"start-at" env:"TOKENWATT_START_AT" placeholder:"TIME" help:"Start the schedule at TIME, RFC 3339 (2025-06-01T12:00:00Z) or Unix seconds, the same for every shard: the run warms up, then waits, measuring the idle baseline at the end of the wait."`
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
	GPUs           string         `name:"gpus" default:"auto" placeholder:"auto|all|LIST" help:"GPUs whose energy counts: auto (dcgm/nvml: those in CUDA_VISIBLE_DEVICES, else those running a compute process, else all with a warning; scrape: all, with a warning when several), all, or a comma list of indices and UUIDs (a MIG UUID names its GPU)."`
	GPUSelector    string         `name:"gpu-selector" placeholder:"MATCHERS" help:"With --energy scrape:URL, count only the GPU series matching these label matchers, e.g. 'pod=\"vllm-0\",namespace=\"llm\"' (dcgm-exporter's Kubernetes labels)."`
	Hostname       string         `name:"hostname" placeholder:"NAME" help:"The hostname label of this host's GPUs (default: $NODE_NAME, else the OS hostname)."`

	SLO *string `name:"slo" placeholder:"ttft=500ms,tpot=50ms,e2e=2s" help:"Latency SLO each request is held to (any of ttft, tpot, e2e): records get slo_met, the summary goodput and J per SLO-meeting output token; 'none' drops the scenario's."`

	Percentiles []float64 `default:"50,90,99" sep:"," placeholder:"P,P,..." help:"Latency percentiles the table shows (0 < P < 100); report.json always has p50, p90, p95, p99 and p99.9."`

	LowLatency bool   `name:"low-latency" help:"Keep CPUs out of deep idle states during the run (PM QoS, Linux, root) so wake-ups add no latency; costs CPU power."`
	CPUProfile string `name:"cpuprofile" placeholder:"FILE" help:"Write a Go CPU profile of the run to FILE (go tool pprof FILE)."`
	MemProfile string `name:"memprofile" placeholder:"FILE" help:"Write a Go heap profile to FILE when the run ends: the live heap as of the last garbage collection, and every allocation of the run (go tool pprof -sample_index=alloc_space FILE)."`

	Saturation saturationFlags `embed:"" prefix:"saturation-" group:"Client saturation (when the load generator, not the server, limits a run)"`

	carbon float64 // the carbon intensity in effect, set by resolveScenario
	// stages and ramp are --stages and --ramp, parsed.
	stages []scenario.Stage
	ramp   *scenario.Ramp
	// benchmarkName says what ran: the scenario's name, with the
	// settings the flags changed (set by resolveScenario).
	benchmarkName string

	Sim      bool     `help:"Start the built-in simulator on a free loopback port and run against it."`
	SimFlags simFlags `embed:"" prefix:"sim-" group:"Simulator (with --sim)"`
}

func (c *runCmd) Run(e *env) error {
	cfg, err := c.config(e)
	if err != nil {
		return err
	}
	stopProcess, err := tuneProcess(e, c.LowLatency, c.CPUProfile, c.MemProfile)
	if err != nil {
		return usageErr(err)
	}
	defer stopProcess()
	r, err := run.Start(e.ctx, cfg)
	if err != nil {
		return exitError(err)
	}
	defer r.Close()
	prog := startProgress(e, r)
	unwatch := watchInterrupts(e, r)
	res, err := r.Run(e.ctx)
	unwatch()
	prog.stop()
	// Before Close: the connections and the run's state are still there.
	writeMemProfile(e, c.MemProfile)
	if err != nil {
		return exitError(err)
	}
	if res.Saturated {
		e.log.Warn(res.Saturation)
	}
	for _, w := range openFilesWarnings(res) {
		e.log.Warn(w)
	}
	// The table first, whatever could not be written: it may be all that
	// is left of the run.
	finish, noFinish := r.FinishReasons()
	late, timer := r.ClientLateness()
	if err := report.WriteTableWith(e.stdout, res.Row, report.TableOptions{Percentiles: c.Percentiles, Quantile: r.Quantile,
		FinishReasons: finish, NoFinishReason: noFinish, ClientLateness: late, ServerTimerLateness: timer}); err != nil {
		return err
	}
	switch {
	case res.SummaryErr != nil && res.SummaryPath != "":
		e.log.Warn(fmt.Sprintf("%v; the row is in %s instead", res.SummaryErr, res.SummaryPath))
	case res.SummaryErr != nil:
		// Most likely the run directory's disk is full too: stderr is
		// the last place the row can go.
		e.log.Warn(fmt.Sprintf("the summary row could be written to no file (%v); here it is, header first:", res.SummaryErr))
		w := csv.NewWriter(e.stderr)
		_ = w.Write(report.Columns())
		_ = w.Write(res.Row.Record())
		w.Flush()
	default:
		e.log.Info(fmt.Sprintf("wrote %s (records, report.json) and appended to %s (stopped: %s)", res.RunDir, res.SummaryPath, res.StopReason))
	}
	if res.ReportErr != nil {
		e.log.Warn(res.ReportErr.Error())
	}
	if r.MetricsServing() && c.Linger > 0 && !e.interrupted() {
		e.log.Info(fmt.Sprintf("lingering %v so the final metrics are scraped", c.Linger))
		select {
		case <-time.After(c.Linger):
		case <-e.ctx.Done():
		}
	}
	return exitStatus(res)
}

// watchInterrupts says what the first stop signal does (scheduling stops,
// requests in flight get the grace period) and makes the second cancel
// them at once. The returned function ends the watch.
func watchInterrupts(e *env, r *run.Run) func() {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-e.ctx.Done():
		case <-done:
			return
		}
		if n := r.Progress().InFlight.Load(); n > 0 {
			e.log.Info(fmt.Sprintf("stopping: waiting up to %v for %d in-flight requests (Ctrl-C again to abort)", r.Grace(), n))
		} else {
			e.log.Info("stopping: no requests in flight")
		}
		select {
		case <-e.abort:
		case <-done:
			return
		}
		e.log.Info(fmt.Sprintf("aborting: canceling %d in-flight requests; records and summary will be written", r.Progress().InFlight.Load()))
		r.Abort()
	}()
	return func() {
		close(done)
		<-finished
	}
}

// exitStatus is a finished run's exit: 3 when some of what it measured
// could not be written (records, summary row, report.json), failed when
// too many or all of its requests failed, 130 when it was interrupted.
func exitStatus(res *run.Result) error {
	switch {
	case res.RecordsErr != nil && res.StopReason == loadgen.StopWriteError:
		return command.Exit(exitWriteFailed, fmt.Errorf("%w; the run stopped there (its summary counts every request)", res.RecordsErr))
	case res.RecordsErr != nil:
		return command.Exit(exitWriteFailed, res.RecordsErr)
	case res.SummaryErr != nil && res.SummaryPath != "":
		return command.Exit(exitWriteFailed, fmt.Errorf("could not append to the summary file; the row is in %s", res.SummaryPath))
	case res.SummaryErr != nil:
		return command.Exit(exitWriteFailed, res.SummaryErr)
	case res.ReportErr != nil:
		return command.Exit(exitWriteFailed, res.ReportErr)
	case res.Err != nil:
		return command.Exit(exitFailed, res.Err)
	case res.StopReason == loadgen.StopInterrupted:
		return command.Exit(exitInterrupted, errors.New("interrupted: stopped scheduling, in-flight requests finished or were canceled; records and summary are complete"))
	case res.Requests > 0 && res.OK == 0:
		return command.Exit(exitFailed, fmt.Errorf("all %d requests failed; see %s", res.Requests, res.RecordsPath))
	}
	return nil
}

// exitError gives the run library's errors their exit codes.
func exitError(err error) error {
	var input *run.InputError
	switch {
	case errors.Is(err, run.ErrInterruptedIdle), errors.Is(err, run.ErrInterruptedStart):
		return command.Exit(exitInterrupted, err)
	case errors.As(err, &input):
		return usageErr(input.Err)
	}
	return err
}

// config resolves the scenario and turns the flags into the run's
// configuration.
func (c *runCmd) config(e *env) (run.Config, error) {
	sc, summaryPath, err := c.resolveScenario(e)
	if err != nil {
		return run.Config{}, err
	}
	for _, p := range c.Percentiles {
		if !(p > 0 && p < 100) {
			return run.Config{}, usageErrf("--percentiles %g: each must be above 0 and below 100", p)
		}
	}
	cfg := run.Config{
		RunID: c.RunID, BenchmarkName: c.benchmarkName, Scenario: sc, APIKey: c.APIKey, Out: c.Out, SummaryPath: summaryPath,
		CarbonIntensity: c.carbon, Grace: c.Grace, Version: version,
		MetricsAddr: c.MetricsAddr, WebConfigFile: c.WebConfigFile, PushURL: c.PushURL, PushInterval: c.PushInterval,
		Energy: c.Energy, EnergyInterval: c.EnergyInterval, IdleBaseline: sc.IdleBaseline, DCGMAddr: c.DCGMAddr,
		GPUs: c.GPUs, GPUSelector: c.GPUSelector, Hostname: c.Hostname, Tokenizer: c.Tokenizer,
		Logger: e.log,
	}
	if c.IdleBaseline != nil {
		cfg.IdleBaseline = *c.IdleBaseline
	}
	if cfg.Shard, cfg.StartAt, err = c.shardAndStart(time.Now()); err != nil {
		return run.Config{}, err
	}
	if cfg.Saturation, err = c.Saturation.thresholds(); err != nil {
		return run.Config{}, usageErr(err)
	}
	if c.Sim {
		if sc.Model == "" {
			sc.Model = sim.DefaultConfig().Model
		}
		simCfg, err := c.SimFlags.config(sc.Model)
		if err != nil {
			return run.Config{}, usageErr(err)
		}
		cfg.Sim = &simCfg
	}
	return cfg, nil
}

// maxStartAhead bounds how far ahead --start-at may be: further is most
// likely a Unix time in milliseconds, or a wrong date.
const maxStartAhead = 24 * time.Hour

// shardAndStart reads --shard (its index from JOB_COMPLETION_INDEX when
// it gives only /N) and --start-at.
func (c *runCmd) shardAndStart(now time.Time) (loadgen.Shard, time.Time, error) {
	var shard loadgen.Shard
	if c.Shard != "" {
		var err error
		if shard, err = loadgen.ParseShard(c.Shard, os.Getenv("JOB_COMPLETION_INDEX")); err != nil {
			return shard, time.Time{}, usageErrf("--shard %v", err)
		}
		if shard.Sharded() && c.RunID == "" {
			return shard, time.Time{}, usageErrf("--shard %s: give every shard the same --run-id, so that their results are one run", shard)
		}
		if shard.Sharded() && c.PushURL != "" && !pushNamesInstance(c.PushURL) {
			// The shards' series differ only by instance: without one of
			// their own, pushed series would collide.
			c.PushURL = withShardInstance(c.PushURL, shard)
		}
	}
	if c.StartAt == "" {
		return shard, time.Time{}, nil
	}
	at, err := parseStartAt(c.StartAt)
	if err != nil {
		return shard, time.Time{}, usageErrf("--start-at %v", err)
	}
	if ahead := at.Sub(now); ahead > maxStartAhead {
		return shard, time.Time{}, usageErrf("--start-at %s is %v ahead, more than %v (a Unix time in seconds, not milliseconds?)",
			at.UTC().Format(time.RFC3339Nano), ahead.Round(time.Second), maxStartAhead)
	}
	return shard, at, nil
}

// withShardInstance is pushURL giving a shard's pushed series the
// instance label shard-I: a Pushgateway's grouping key gets
// /instance/shard-I, any other URL (VictoriaMetrics, vmagent) the query
// parameter extra_label=instance=shard-I.
func withShardInstance(pushURL string, shard loadgen.Shard) string {
	u, err := url.Parse(pushURL)
	if err != nil {
		return pushURL // StartPush says what is wrong with it
	}
	name := fmt.Sprintf("shard-%d", shard.Index)
	if strings.Contains(u.Path, "/metrics/job/") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/instance/" + name
		return u.String()
	}
	q := u.Query()
	q.Add("extra_label", "instance="+name)
	u.RawQuery = q.Encode()
	return u.String()
}

// pushNamesInstance reports whether a push URL gives the pushed series
// an instance label: VictoriaMetrics' extra_label=instance=NAME, or a
// Pushgateway grouping key's /instance/NAME (or /instance@base64/).
func pushNamesInstance(pushURL string) bool {
	u, err := url.Parse(pushURL)
	if err != nil {
		return true // StartPush says what is wrong with it
	}
	for _, v := range u.Query()["extra_label"] {
		if name, value, _ := strings.Cut(v, "="); name == "instance" && value != "" {
			return true
		}
	}
	return strings.Contains(u.Path, "/instance/") || strings.Contains(u.Path, "/instance@base64/")
}

// parseStartAt reads a time as RFC 3339 (with a zone; fractions of a
// second allowed) or as Unix seconds, e.g. 1767225600 or 1767225600.25,
// read exactly to the nanosecond.
func parseStartAt(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	ok := err == nil && n >= 0 && len(frac) <= 9 && strings.Trim(frac, "0123456789") == "" && !strings.HasPrefix(sec, "+")
	if !ok {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2025-06-01T12:00:00Z) or Unix seconds (1748779200)", s)
	}
	ns := 0
	if frac != "" {
		ns, _ = strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
	}
	return time.Unix(n, int64(ns)), nil
}

// compactJSON is m as compact JSON, keys sorted; "" for none.
func compactJSON(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprint(m) // Validate reports it
	}
	return string(b)
}

// tuneProcess does what --low-latency and --cpuprofile ask for the run
// (run or sweep) and makes sure --memprofile's file can be written; the
// returned function undoes them. The caller writes the heap profile
// (writeMemProfile) when the run has ended.
func tuneProcess(e *env, low bool, cpuProfile, memProfile string) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
	}
	if low {
		stops = append(stops, lowLatency(e))
	}
	if cpuProfile != "" {
		stopCPU, err := startCPUProfile(cpuProfile)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, stopCPU)
	}
	if err := checkMemProfile(memProfile); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// startCPUProfile starts a CPU profile into path; the returned function
// stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// checkMemProfile makes sure --memprofile's file can be written before
// the run rather than after it.
func checkMemProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--memprofile: %v", err)
	}
	return f.Close()
}

// writeMemProfile writes a heap profile into path (none when empty). It
// forces no garbage collection: the live heap is the last collection's,
// during the run rather than after it. A failure is logged: the run's
// results matter more.
func writeMemProfile(e *env, path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		e.log.Warn(fmt.Sprintf("--memprofile: %v", err))
	}
}

// lowLatency holds the PM QoS request if it can, warning if not: timing
// gets less precise without it, the run is still valid. The returned
// function, deferred by the caller, releases it.
func lowLatency(e *env) func() {
	release, err := holdLowLatency()
	if err != nil {
		e.log.Warn(fmt.Sprintf("%v; continuing without it", err))
		return func() {}
	}
	return release
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
		if c.Out != "results" {
			// An --out given puts the run's files there, the summary too.
			summaryPath = ""
		}
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
	if err := c.parseLoad(); err != nil {
		return nil, "", err
	}
	var extra backends.ExtraBody
	if c.ExtraBody != nil {
		var err error
		if extra, err = backends.ParseExtraBody(*c.ExtraBody); err != nil {
			return nil, "", usageErrf("--extra-body: %v", err)
		}
	}
	if c.SLO != nil {
		sc.SLO = nil
		if s := strings.TrimSpace(*c.SLO); s != "" && s != "none" {
			slo, err := scenario.ParseSLO(s)
			if err != nil {
				return nil, "", usageErrf("--slo: %v", err)
			}
			sc.SLO = slo
		}
	}
	base := *sc
	c.applyFlags(sc)
	if len(extra) > 0 {
		// The flag's keys over the scenario's; base keeps its own map.
		merged := maps.Clone(sc.ExtraBody)
		if merged == nil {
			merged = map[string]any{}
		}
		maps.Copy(merged, extra)
		sc.ExtraBody = merged
	}
	if err := c.applyLengths(sc); err != nil {
		return nil, "", usageErr(err)
	}
	for _, note := range c.reconcile(&base, sc) {
		e.log.Info(note)
	}
	c.benchmarkName = benchmarkName(&base, sc)
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
	if sc.NumSamples <= 0 && sc.Duration <= 0 && !isSoak(sc) && !sc.Staged() {
		return nil, "", usageErrf("scenario %s has no end: give --num-samples or --duration", sc.Name)
	}
	return sc, summaryPath, nil
}

// isSoak reports whether sc is meant to run until interrupted: open loop
// with neither a count nor a duration.
func isSoak(sc *scenario.Scenario) bool { return sc.Rate > 0 }

// parseLoad reads --stages and --ramp, which replace --rate and each
// other.
func (c *runCmd) parseLoad() error {
	switch {
	case c.Stages != nil && c.Ramp != nil:
		return usageErrf("--stages and --ramp: give one (a ramp is one open-loop stage whose rate changes linearly)")
	case (c.Stages != nil || c.Ramp != nil) && c.Rate != nil && *c.Rate > 0:
		return usageErrf("--rate and --%s: give one (stages and ramps set the rate over time)", map[bool]string{true: "stages", false: "ramp"}[c.Stages != nil])
	}
	var err error
	if c.Stages != nil {
		if c.stages, err = scenario.ParseStages(*c.Stages); err != nil {
			return usageErrf("--stages: %v", err)
		}
	}
	if c.Ramp != nil {
		if c.ramp, err = scenario.ParseRamp(*c.Ramp); err != nil {
			return usageErrf("--ramp: %v", err)
		}
	}
	return nil
}

// loadFlag names the flag that set stages or a ramp; "" when none did.
func (c *runCmd) loadFlag() string {
	switch {
	case c.Stages != nil:
		return "--stages"
	case c.Ramp != nil:
		return "--ramp"
	}
	return ""
}

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
	set(&sc.MultiTurn, c.MultiTurn)
	set(&sc.History, nonEmpty(c.History))
	set(&sc.ThinkTime, c.ThinkTime)
	set(&sc.ThinkTimeDistribution, nonEmpty(c.ThinkTimeDistribution))
	switch {
	case c.Stages != nil:
		sc.Stages, sc.Ramp = c.stages, nil
	case c.Ramp != nil:
		sc.Stages, sc.Ramp = nil, c.ramp
	}
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
		sc.DatasetFormat = ""
	}
	set(&sc.DatasetField, c.DatasetField)
	set(&sc.DatasetFormat, nonEmpty(c.DatasetFormat))
	set(&sc.MaxConsecutiveFailures, c.MaxConsecutiveFailures)
	set(&sc.Timeout, c.Timeout)
	set(&sc.SaveText, c.SaveText)
}

// applyLengths sets the length distributions given as flags.
func (c *runCmd) applyLengths(sc *scenario.Scenario) error {
	for _, f := range []struct {
		flag string
		v    *string
		dst  *lengths.Dist
	}{{"--input-len", c.InputLen, &sc.InputLen}, {"--output-len", c.OutputLen, &sc.OutputLen}} {
		if f.v == nil {
			continue
		}
		d, err := lengths.Parse(*f.v)
		if err != nil {
			return fmt.Errorf("%s %w", f.flag, err)
		}
		*f.dst = d
	}
	return nil
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

// reconcile lets the flags the user gave win over the scenario's settings
// that contradict them, which the user did not choose (the default
// scenario's, most often): it returns a note for each change.
func (c *runCmd) reconcile(base, sc *scenario.Scenario) []string {
	var notes []string
	if c.MaxTokens != nil && c.MinTokens == nil && sc.MinTokens > sc.MaxTokens {
		notes = append(notes, fmt.Sprintf("min_tokens lowered from %s's %d to --max-tokens %d", base.Name, sc.MinTokens, sc.MaxTokens))
		sc.MinTokens = sc.MaxTokens
	}
	if flag := c.loadFlag(); flag != "" {
		notes = append(notes, c.reconcileLoad(flag, base, sc)...)
	} else if c.Rate != nil && base.Staged() {
		what := "stages"
		if base.Ramp != nil {
			what = "ramp"
		}
		notes = append(notes, fmt.Sprintf("--rate %g replaces %s's %s", sc.Rate, base.Name, what))
		sc.Stages, sc.Ramp = nil, nil
	}
	if c.Rate != nil && *c.Rate > 0 && c.Concurrency == nil && base.Rate <= 0 && !base.Staged() && sc.Concurrency > 0 {
		notes = append(notes, fmt.Sprintf("--rate %g: no in-flight cap (%s's concurrency %d is for its closed loop; give -c to cap)", sc.Rate, base.Name, sc.Concurrency))
		sc.Concurrency = 0
	}
	if c.Duration != nil && *c.Duration > 0 && c.NumSamples == nil && sc.NumSamples > 0 {
		notes = append(notes, fmt.Sprintf("--duration %s ends the run: %s's num_samples %d dropped (give --num-samples too to stop at whichever comes first)", sc.Duration, base.Name, sc.NumSamples))
		sc.NumSamples = 0
	}
	if c.NumSamples != nil && *c.NumSamples > 0 && c.Duration == nil && sc.Duration > 0 {
		notes = append(notes, fmt.Sprintf("--num-samples %d ends the run: %s's duration %s dropped (give --duration too to stop at whichever comes first)", sc.NumSamples, base.Name, sc.Duration))
		sc.Duration = 0
	}
	return notes
}

// reconcileLoad lets --stages or --ramp (flag) replace the scenario's
// rate, and end the run unless --num-samples or --duration say otherwise;
// a closed-loop scenario's concurrency is no cap for them, unless -c
// gives one.
func (c *runCmd) reconcileLoad(flag string, base, sc *scenario.Scenario) []string {
	var notes []string
	if sc.Rate > 0 {
		notes = append(notes, fmt.Sprintf("%s replaces %s's rate %g", flag, base.Name, sc.Rate))
		sc.Rate = 0
	}
	if c.NumSamples == nil && sc.NumSamples > 0 {
		notes = append(notes, fmt.Sprintf("%s ends the run: %s's num_samples %d dropped (give --num-samples too to stop at whichever comes first)", flag, base.Name, sc.NumSamples))
		sc.NumSamples = 0
	}
	if c.Duration == nil && sc.Duration > 0 {
		notes = append(notes, fmt.Sprintf("%s ends the run: %s's duration %s dropped (give --duration too to stop at whichever comes first)", flag, base.Name, sc.Duration))
		sc.Duration = 0
	}
	if c.Concurrency == nil && base.Rate <= 0 && !base.Staged() && sc.Concurrency > 0 && sc.OpenLoop() {
		notes = append(notes, fmt.Sprintf("%s: no in-flight cap on open-loop stages (%s's concurrency %d is for its closed loop; give -c to cap)", flag, base.Name, sc.Concurrency))
		sc.Concurrency = 0
	}
	return notes
}

// benchmarkName is what ran: the scenario's name when the run follows
// its method, else the name and each setting changed from it, e.g.
// "energy_star+rate=40,concurrency=0,arrival=poisson".
func benchmarkName(base, sc *scenario.Scenario) string {
	var changed []string
	add := func(key string, was, is any) {
		if fmt.Sprint(was) != fmt.Sprint(is) {
			changed = append(changed, fmt.Sprintf("%s=%v", key, is))
		}
	}
	deref := func(p any) any {
		switch v := p.(type) {
		case *bool:
			if v == nil {
				return "default"
			}
			return *v
		case *float64:
			if v == nil {
				return "default"
			}
			return *v
		}
		return p
	}
	add("dataset", base.Dataset, sc.Dataset)
	add("num_samples", base.NumSamples, sc.NumSamples)
	add("duration", base.Duration, sc.Duration)
	if !sc.Staged() {
		add("rate", base.Rate, sc.Rate)
	}
	add("concurrency", base.Concurrency, sc.Concurrency)
	add("stages", scenario.FormatStages(base.Stages), scenario.FormatStages(sc.Stages))
	rampOf := func(s *scenario.Scenario) string {
		if s.Ramp == nil {
			return ""
		}
		return s.Ramp.String()
	}
	add("ramp", rampOf(base), rampOf(sc))
	if sc.OpenLoop() {
		add("arrival", cmp.Or(base.Arrival, scenario.ArrivalConstant), cmp.Or(sc.Arrival, scenario.ArrivalConstant))
		add("burstiness", base.Burstiness, sc.Burstiness)
	}
	add("multi_turn", base.MultiTurn, sc.MultiTurn)
	if sc.MultiTurn {
		add("history", cmp.Or(base.History, scenario.HistoryServer), cmp.Or(sc.History, scenario.HistoryServer))
		add("think_time", base.ThinkTime, sc.ThinkTime)
		add("think_time_distribution", cmp.Or(base.ThinkTimeDistribution, scenario.ThinkConstant), cmp.Or(sc.ThinkTimeDistribution, scenario.ThinkConstant))
	}
	add("input_len", base.InputLen, sc.InputLen)
	add("output_len", base.OutputLen, sc.OutputLen)
	add("max_tokens", base.MaxTokens, sc.MaxTokens)
	add("min_tokens", base.MinTokens, sc.MinTokens)
	add("ignore_eos", base.IgnoreEOS, sc.IgnoreEOS)
	add("temperature", deref(base.Temperature), deref(sc.Temperature))
	add("stream", deref(base.Stream), deref(sc.Stream))
	add("api", base.API, sc.API)
	add("extra_body", compactJSON(base.ExtraBody), compactJSON(sc.ExtraBody))
	if len(changed) == 0 {
		return sc.Name
	}
	return sc.Name + "+" + strings.Join(changed, ",")
}
