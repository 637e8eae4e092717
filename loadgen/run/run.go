// Package run is one measured run, end to end. A Config goes in; Start
// opens everything the run writes or serves, in the order that makes bad
// input fail before the first request (the /metrics listener, the
// built-in simulator, the energy source, the backend and its model, the
// prompts, the records file, the metrics, the energy meter, the push
// client); Run measures the idle baseline, runs the schedule and writes
// the summary row; Close releases all of it, whatever failed.
//
// cmd/loadgen turns flags into a Config and prints progress; bench and
// other programs can run a measurement in process. It must not depend on
// cmd/ or dump.
package run

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// Config is one run, resolved: the scenario with every override applied
// and validated, and where its results go.
type Config struct {
	// RunID names the run; empty generates one (UTC time plus randomness).
	RunID string
	// BenchmarkName is the row's benchmark_name: what ran. Empty is the
	// scenario's name.
	BenchmarkName string
	// Scenario is the resolved scenario: backend, endpoint, model (empty:
	// the only one served), schedule, dataset, token bounds.
	Scenario *scenario.Scenario
	// APIKey is the bearer token for the server; it is only ever put in
	// the Authorization header.
	APIKey string
	// Sim, if not nil, starts the built-in simulator on a free loopback
	// port and runs against it; the run is then labelled simulated
	// everywhere. Its Model is set from the scenario's (or defaulted).
	// Without it, a run is labelled simulated all the same when Start
	// finds the server or the energy source to be the simulator (a
	// standalone `loadgen sim`): see Run.Simulated.
	Sim *sim.Config
	// Out is the directory of records.jsonl and energy.jsonl.
	Out string
	// SummaryPath is the CSV summary appended to; empty is Out/summary.csv.
	SummaryPath string
	// CarbonIntensity is the grid's g CO2eq/kWh for the emissions column.
	CarbonIntensity float64
	// Grace is how long in-flight requests may finish after ctx is done.
	Grace time.Duration
	// Version is tokenwatt's version, on tokenwatt_run_info.
	Version string

	// MetricsAddr serves the run's metrics at http://ADDR/metrics; empty
	// serves nothing.
	MetricsAddr string
	// WebConfigFile is an exporter-toolkit web config for /metrics.
	WebConfigFile string
	// PushURL also pushes the metrics there, every PushInterval.
	PushURL      string
	PushInterval time.Duration

	// Energy is the energy source spec: auto, dcgm, nvml, scrape:URL, sim
	// or none (energy.OpenSource).
	Energy string
	// EnergyInterval is how often GPU energy is sampled.
	EnergyInterval time.Duration
	// IdleBaseline measures idle GPU power this long before the first
	// request; zero measures none.
	IdleBaseline time.Duration
	// KnownIdle, if not nil, is an idle baseline measured before, used
	// instead of measuring one (IdleBaseline is then ignored): a sweep
	// measures it at its first point and gives it to the others.
	KnownIdle *IdlePower
	// DCGMAddr is a standalone DCGM host engine's HOST:PORT; empty runs
	// DCGM embedded.
	DCGMAddr string
	// GPUs chooses the GPUs measured: auto (or empty), all, or a comma
	// list of indices and UUIDs (energy.ParseGPUs).
	GPUs string
	// GPUSelector is label matchers a scrape source's GPU series must
	// match, e.g. pod="vllm-0" (energy.SourceOptions.Selector).
	GPUSelector string
	// Hostname labels this host's GPUs; empty: NODE_NAME, else the OS
	// hostname.
	Hostname string

	// Tokenizer is the model's tokenizer.json (or its directory), which
	// makes synthetic prompts exactly their target length when the
	// server does not answer POST /tokenize; empty: the Hugging Face
	// cache's copy of the model's, if any, else lengths are estimated.
	Tokenizer string

	// Saturation are the limits past which the client counts as
	// saturated: a zero field is its default, a negative one turns its
	// signal off.
	Saturation loadgen.SaturationThresholds

	// Shard, when its Count is more than 1, makes the run one of
	// several load generators sharing the scenario and the run id
	// (loadgen.Shard): it sends its share of the requests, and its
	// metrics, summary row and report.json describe that share.
	Shard loadgen.Shard
	// StartAt, if not zero, is when the schedule starts, the same for
	// every shard: the run warms up, then waits for it, measuring the
	// idle baseline at the end of the wait.
	StartAt time.Time

	// Logger gets the run's notices and warnings; nil discards them.
	Logger *slog.Logger
}

// IdlePower is an idle baseline: the measured GPUs' power with nothing
// running.
type IdlePower struct {
	// PerGPUW is watts per measured GPU, in the energy source's order.
	PerGPUW []float64
	// RunID is the run that measured it.
	RunID string
}

// TotalW is the baseline over all GPUs.
func (p *IdlePower) TotalW() float64 {
	var t float64
	for _, w := range p.PerGPUW {
		t += w
	}
	return t
}

// InputError is a run stopped by bad input before it measured anything:
// a flag or config value, an address in use, an unreachable endpoint, a
// model not served, a missing GPU library, a summary file that cannot be
// appended (checked by Start, before the first request). cmd/loadgen
// exits 2 for it.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(err error) error { return &InputError{Err: err} }

func inputErrf(format string, args ...any) error { return inputErr(fmt.Errorf(format, args...)) }

// ErrInterruptedIdle is returned by Run when ctx ended while the idle
// baseline was measured: nothing was sent.
var ErrInterruptedIdle = errors.New("interrupted while measuring the idle baseline; nothing was sent")

// ErrInterruptedStart is returned by Run when ctx ended while it waited
// for Config.StartAt to measure the idle baseline: nothing measured was
// sent.
var ErrInterruptedStart = errors.New("interrupted while waiting for --start-at; nothing measured was sent")

// Run is a started run. Create it with Start, then call Run once and
// Close always.
type Run struct {
	cfg Config
	sc  *scenario.Scenario
	// share is the shard's share of sc (sc itself when not sharded):
	// what the metrics, the row and report.json describe.
	share   *scenario.Scenario
	log     *slog.Logger
	runID   string
	model   string
	backend backends.Backend
	prompts []loadgen.Prompt
	simSrv  *sim.Running
	server  *exporter.Server
	source  energy.Source // owned here until the meter takes it
	// selection and energyWarnings are how source chose its GPUs and the
	// doubts about its figures, for the summary.
	selection      energy.Selection
	energyWarnings []string
	gpuUUIDs       []string // the measured GPUs
	gpuModels      []string // and their models, in the same order
	meter          *energy.Meter[*loadgen.Record]
	records        *loadgen.RecordsFile
	summary        *lockedSummary
	metrics        *exporter.Run
	push           *exporter.Push
	runner         *loadgen.Runner
	openFiles      *openFilesSink
	stages         *stageSink // a run with stages or a ramp only
	// watch is set once the schedule starts; progress lines read it from
	// their own goroutine, from before then (the idle baseline).
	watch atomic.Pointer[saturationWatch]
	// recordsErr is the records file's first write error, set the moment
	// it happens (progress lines read it).
	recordsErr atomic.Pointer[error]
	closed     bool
	recordsN   string // records file path, for messages
	runDir     string // Out/<run id>: records.jsonl, energy.jsonl, report.json
	// promptsSHA is the SHA-256 of the prompts, for report.json.
	promptsSHA string
	// datasetFormat is the shape the dataset's rows were read as.
	datasetFormat string
	// promptTokenizer is what counted synthetic prompts' tokens (report
	// settings' prompt_tokenizer); "" when none were made.
	promptTokenizer string
	// detected says why Start found the target simulated without
	// Config.Sim: the server's answer, the energy source.
	detected []string
}

// Result is a finished run: the runner's result, the summary row that was
// appended, and whether the client itself limited the run.
type Result struct {
	loadgen.Result
	Row *report.Row
	// Err is the runner's error: too many consecutive failures.
	Err error
	// RecordsErr is the records file's write or close error, if any: the
	// run measured, but its records are incomplete. The first write error
	// stops the run (StopReason loadgen.StopWriteError).
	RecordsErr error
	// SummaryErr is why the row could not be appended to the summary file
	// (a full disk): the row is then in SummaryPath, a fresh summary.csv
	// in RunDir, or, when that failed too, nowhere but Row.
	SummaryErr error
	// ReportErr is why report.json could not be written.
	ReportErr error
	// Saturated reports whether the client was ever saturated; Saturation
	// then says how often and how badly.
	Saturated  bool
	Saturation string
	// Report is what report.json holds.
	Report *report.Report
	// RecordsPath and SummaryPath are where the run wrote; RunDir holds
	// its records, energy samples and ReportPath, report.json.
	RecordsPath, SummaryPath, RunDir, ReportPath string
	// OpenFileErrors counts the requests that failed with "too many open
	// files": this process's open-files limit failed them, not the
	// server.
	OpenFileErrors int64
	// Idle is the idle baseline the run's energy figures used: measured
	// by it (RunID its own) or Config.KnownIdle; nil when none.
	Idle *IdlePower
	// SimAcceptErrors is the connections the built-in simulator could not
	// accept (with Config.Sim), its OpenFiles those refused for the
	// open-files limit.
	SimAcceptErrors sim.AcceptErrors
}

// Start opens everything the run needs, in an order that makes bad input
// fail before anything is sent: the metrics address is bound first, the
// energy source is opened before the server is asked for its models. On
// error, everything opened so far is closed.
func Start(ctx context.Context, cfg Config) (r *Run, err error) {
	r = &Run{cfg: cfg, sc: cfg.Scenario, log: cfg.Logger, runID: cfg.RunID}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.runID == "" {
		r.runID = newRunID()
	}
	if r.cfg.SummaryPath == "" {
		r.cfg.SummaryPath = filepath.Join(cfg.Out, "summary.csv")
	}
	if err := checkRunID(r.runID); err != nil {
		return r, inputErr(err)
	}
	if _, err := cfg.Shard.Share(r.sc); err != nil {
		return r, inputErrf("--shard %s: %v", cfg.Shard, err)
	}
	r.runDir = filepath.Join(cfg.Out, r.runID)
	// A records file that is not a regular file (a link to /dev/null)
	// holds no results.
	if info, err := os.Stat(filepath.Join(r.runDir, loadgen.RecordsFileName)); err == nil && info.Mode().IsRegular() {
		return r, inputErr(fmt.Errorf("run id %q already has results in %s: choose another --run-id, or another --out", r.runID, r.runDir))
	}
	// The summary's row is written last: a file it cannot go to (another
	// header, a directory not writable) must fail now, not after the run.
	if err := report.CheckCSV(r.cfg.SummaryPath); err != nil {
		return r, inputErr(err)
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if cfg.MetricsAddr != "" {
		r.server, err = exporter.Listen(exporter.ServerOptions{
			Addr: cfg.MetricsAddr, AddrFlag: "--metrics-addr", AddrHint: `choose another address, or "" to disable`,
			WebConfigFile: cfg.WebConfigFile, Program: "loadgen", Version: cfg.Version,
			Description: "tokenwatt load generator: this run's latency, token and energy metrics",
		})
		if err != nil {
			return r, inputErr(err)
		}
	}
	if err := r.startSim(ctx); err != nil {
		return r, err
	}
	if r.share, err = cfg.Shard.Share(r.sc); err != nil {
		return r, inputErr(err)
	}
	if err := r.openEnergy(ctx); err != nil {
		return r, err
	}
	if err := r.connect(ctx); err != nil {
		return r, err
	}
	if len(r.detected) > 0 {
		r.log.Info(fmt.Sprintf("SIMULATED run (detected: %s): every output is labelled simulated",
			strings.Join(r.detected, "; ")))
	}
	if r.prompts, err = r.loadPrompts(ctx); err != nil {
		return r, err
	}
	r.promptsSHA = promptsHash(r.prompts)
	if err := r.openSinks(); err != nil {
		return r, err
	}
	r.log.Info(fmt.Sprintf("run %s: scenario %s, %s %s model %q, %s, %d prompts",
		r.runID, r.sc.Name, r.backend.Name(), r.backend.Endpoint(), r.model, r.describeLoad(), len(r.prompts)))
	return r, nil
}

// startSim starts the built-in simulator when the config asks for it and
// points the scenario at it.
func (r *Run) startSim(ctx context.Context) error {
	if r.cfg.Sim == nil {
		return nil
	}
	cfg := *r.cfg.Sim
	if r.sc.Model == "" {
		r.sc.Model = sim.DefaultConfig().Model
	}
	cfg.Model = r.sc.Model
	srv, err := sim.Start(context.WithoutCancel(ctx), "127.0.0.1:0", cfg)
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	r.simSrv = srv
	r.sc.Endpoint = srv.URL + "/v1"
	r.log.Info(fmt.Sprintf("SIMULATED run: built-in simulator serving %q at %s (ttft %v, itl %v); no real server or GPU is measured",
		cfg.Model, srv.URL, cfg.TTFT, cfg.ITL))
	return nil
}

// simulated reports whether the target is tokenwatt's simulator: the
// built-in one (Config.Sim), or one Start detected.
func (r *Run) simulated() bool { return r.cfg.Sim != nil || len(r.detected) > 0 }

// openSinks opens the records file, the metrics, the energy meter, the
// runner, the /metrics server and the push client.
func (r *Run) openSinks() (err error) {
	r.recordsN = filepath.Join(r.runDir, loadgen.RecordsFileName)
	if r.records, err = loadgen.OpenRecordsFile(r.recordsN); err != nil {
		return err
	}
	if r.records.Repaired() {
		r.log.Warn(fmt.Sprintf("%s ended mid-line (a run killed while writing it): its cut line is left as it is, this run's records start on a new line", r.recordsN))
	}
	r.summary = &lockedSummary{s: loadgen.NewSummary()}
	r.openFiles = &openFilesSink{}
	load := r.share
	opts := exporter.RunOptions{Version: r.cfg.Version, BenchmarkName: cmp.Or(r.cfg.BenchmarkName, r.sc.Name), Simulated: r.simulated(), CarbonIntensity: r.cfg.CarbonIntensity,
		Endpoint: backends.WithoutUserinfo(r.backend.Endpoint()), RequestRate: load.Rate,
		Concurrency: load.Concurrency, Arrival: arrivalOf(r.sc), Warmup: load.Warmup, EnergySource: "none",
		Outcomes: outcomes, SLO: r.sc.SLO.String(), Stages: scenario.FormatStages(load.Stages), Shard: r.cfg.Shard.String()}
	if load.Ramp != nil {
		opts.Ramp = load.Ramp.String()
	}
	if r.source != nil {
		opts.EnergySource, opts.EnergyMethod = r.source.Name(), r.source.Method()
		opts.GPUUUIDs = strings.Join(r.gpuUUIDs, " ")
	}
	r.metrics = exporter.NewRun(exporter.RunLabels{RunID: r.runID, Scenario: r.sc.Name, Model: r.model, Backend: r.backend.Name()}, opts)
	var attr loadgen.Attributor
	if r.source != nil {
		r.meter, err = energy.StartMeter[*loadgen.Record](r.source, energy.MeterOptions{
			Interval: r.cfg.EnergyInterval, Dir: r.runDir, RunID: r.runID, Registerer: r.metrics.Registry(),
			Logger: r.log,
		})
		if err != nil {
			return err
		}
		r.source = nil // the meter owns and closes it now
		if k := r.cfg.KnownIdle; k != nil {
			if err := r.meter.SetIdle(k.PerGPUW); err != nil {
				return inputErrf("%v (the baseline of run %s)", err, k.RunID)
			}
		}
		attr = &attributor{meter: r.meter, metrics: r.metrics}
	}
	// One completion event feeds them all, so they cannot disagree.
	sinks := []loadgen.Sink{r.records, r.summary, metricsSink{r.metrics}, r.openFiles}
	if r.sc.Staged() {
		r.stages = newStageSink(r.sc)
		sinks = append(sinks, r.stages)
	}
	r.runner, err = loadgen.NewRunner(loadgen.RunConfig{
		RunID: r.runID, Scenario: r.sc, Shard: r.cfg.Shard, StartAt: r.cfg.StartAt, Backend: r.backend, Model: r.model, Prompts: r.prompts,
		Simulated: r.simulated(), Grace: r.cfg.Grace,
		Sinks:      sinks,
		Attributor: attr,
		// The OpenAI chat API sends a prompt's messages; completions and
		// PyTorch send its text.
		SendsMessages: r.backend.Name() != "pytorch" && r.sc.API != string(backends.APICompletions),
	})
	if err != nil {
		return inputErr(err)
	}
	r.records.OnError(r.recordsFailed)
	r.metrics.TrackInFlight(func() float64 { return float64(r.runner.Progress.InFlight.Load()) })
	r.metrics.TrackCapWaits(func() float64 { return float64(r.runner.Progress.CapWaitsTotal()) })
	r.metrics.TrackTarget(r.sc.Staged(), r.target)
	r.metrics.Start(time.Now())
	if r.server != nil {
		if err := r.server.Serve(r.metrics.Registry(), slog.New(minLevel{r.log.Handler(), slog.LevelWarn})); err != nil {
			return err
		}
		r.log.Info("serving metrics at " + r.server.URL())
	}
	if r.cfg.PushURL != "" {
		r.push, err = exporter.StartPush(r.cfg.PushURL, r.cfg.PushInterval, r.metrics.Registry(), r.log)
		if err != nil {
			return inputErr(err)
		}
	}
	return nil
}

// recordsFailed is called once, at the records file's first write error
// (a full disk): it says so, counts it and stops the run, since a run
// that cannot record its requests measures nothing that lasts. The
// requests in flight get Config.Grace; the summary and report.json are
// still written.
func (r *Run) recordsFailed(err error) {
	r.recordsErr.Store(&err)
	r.metrics.RecordsWriteError()
	r.log.Warn(fmt.Sprintf("%v: stopping the run (records can no longer be written)", err))
	r.runner.Stop(loadgen.StopWriteError)
}

// RecordsErr is the records file's first write error, nil while there
// is none; progress lines show it.
func (r *Run) RecordsErr() error {
	if p := r.recordsErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Run measures the idle baseline (if configured), runs the schedule until
// it ends or ctx is done (in-flight requests then get Config.Grace), and
// appends the summary row. The error is for a run that could not measure;
// a run that measured returns a Result, which says what failed: its
// requests (Err), writing its records, summary row or report.json
// (RecordsErr, SummaryErr, ReportErr: the row is never lost, see
// Result.SummaryErr).
func (r *Run) Run(ctx context.Context) (*Result, error) {
	if at := r.cfg.StartAt; !at.IsZero() {
		r.log.Info(fmt.Sprintf("the schedule starts at %s (--start-at), in %v%s", at.UTC().Format(time.RFC3339Nano),
			time.Until(at).Round(time.Millisecond), map[bool]string{true: ", after the warm-up"}[r.share.Warmup > 0]))
		// The warm-up goes first, so that the idle baseline is measured
		// at the end of the wait, right before the start.
		r.runner.Warmup(ctx)
	}
	if r.meter != nil {
		if err := r.measureIdle(ctx); err != nil {
			return nil, err
		}
		r.meter.BeginWindow()
	}
	watch := startSaturationWatch(r.runner, r.cfg.Saturation, r.metrics, r.log)
	r.watch.Store(watch)
	res, runErr := r.runner.Run(ctx)
	if res.LateStart > 0 {
		r.log.Warn(fmt.Sprintf("--start-at %s had passed when the run was ready: its schedule started %v late, so the shards did not start together (start them earlier)",
			r.cfg.StartAt.UTC().Format(time.RFC3339Nano), res.LateStart.Round(time.Millisecond)))
	}
	out := &Result{Result: *res, RecordsPath: r.recordsN, SummaryPath: r.cfg.SummaryPath, RunDir: r.runDir,
		ReportPath: filepath.Join(r.runDir, report.ReportFileName)}
	// The caller says so once its progress line is gone.
	out.Saturated, out.Saturation = watch.stop()
	out.Err = runErr
	out.RecordsErr = r.records.Close()
	out.OpenFileErrors = r.openFiles.n.Load()
	if r.simSrv != nil {
		out.SimAcceptErrors = r.simSrv.AcceptErrors()
	}
	r.records = nil
	if res.Requests > 0 {
		r.metrics.End(res.Start, res.End, res.LastSend)
	} else {
		r.metrics.End(time.Time{}, time.Now(), time.Time{})
	}
	r.closePush()
	stages := r.stageStats(res.Stages)
	out.Row = r.row(res, out.Saturated, stages)
	out.SummaryPath, out.SummaryErr = r.appendRow(out.Row)
	if r.meter != nil {
		if per := r.meter.Idle(); per != nil {
			out.Idle = &IdlePower{PerGPUW: per, RunID: r.runID}
			if k := r.cfg.KnownIdle; k != nil {
				out.Idle.RunID = k.RunID
			}
		}
	}
	out.Report = r.report(res, out.Row, out.Saturation)
	out.Report.Stages = stages
	out.Report.Files.Summary = out.SummaryPath
	out.ReportErr = report.WriteReport(out.ReportPath, out.Report)
	return out, nil
}

// appendRow appends row to the summary file; when that fails (Start
// checked the file, so a full disk, most likely) it writes the row to a
// fresh summary.csv in the run's directory instead. It returns where the
// row is ("" when nowhere) and why it is not in the summary file.
func (r *Run) appendRow(row *report.Row) (string, error) {
	err := report.AppendCSV(r.cfg.SummaryPath, row)
	if err == nil {
		return r.cfg.SummaryPath, nil
	}
	fallback := filepath.Join(r.runDir, report.FallbackSummaryName)
	if ferr := report.AppendCSV(fallback, row); ferr != nil {
		return "", fmt.Errorf("%w; writing the row to %s failed too: %v", err, fallback, ferr)
	}
	return fallback, err
}

// measureIdle measures the idle baseline before the first request; with
// Config.StartAt, at the end of the wait for it (idleBefore).
func (r *Run) measureIdle(ctx context.Context) error {
	if k := r.cfg.KnownIdle; k != nil {
		r.log.Info(fmt.Sprintf("idle GPU power %.4g W, measured by run %s: not measured again", k.TotalW(), k.RunID))
		return nil
	}
	d := r.cfg.IdleBaseline
	if d <= 0 {
		return nil
	}
	if !r.cfg.StartAt.IsZero() {
		if ctx.Err() != nil {
			return nil // interrupted in the warm-up: the runner returns at once
		}
		var err error
		if d, err = r.idleBefore(ctx, d); d <= 0 || err != nil {
			return err
		}
	}
	r.log.Info(fmt.Sprintf("measuring idle GPU power for %v before the first request", d))
	if err := r.meter.MeasureIdle(ctx, d); err != nil {
		if ctx.Err() != nil {
			return ErrInterruptedIdle
		}
		return err
	}
	return nil
}

// minStartIdle is the shortest idle baseline a run measures in what is
// left of the wait for Config.StartAt.
const minStartIdle = time.Second

// idleBefore waits until the idle baseline of length d can be measured
// just before Config.StartAt, and returns how long to measure it. When
// less than d is left, the baseline is what is left, with a warning (the
// start stays common to every shard); when less than minStartIdle is
// left, none is measured (0). A margin of a few energy samples is kept:
// a measurement starts and ends on a sample.
func (r *Run) idleBefore(ctx context.Context, d time.Duration) (time.Duration, error) {
	at := r.cfg.StartAt
	margin := 3 * r.cfg.EnergyInterval
	left := time.Until(at) - margin
	switch {
	case left < minStartIdle:
		r.log.Warn(fmt.Sprintf("no idle baseline: %v left before --start-at %s, less than %v (start the run at least --idle-baseline %v before it)",
			max(0, left+margin).Round(time.Millisecond), at.UTC().Format(time.RFC3339Nano), minStartIdle, d))
		return 0, nil
	case left < d:
		r.log.Warn(fmt.Sprintf("idle baseline shortened from %v to %v, the time left before --start-at %s (start the run at least --idle-baseline before it)",
			d, left.Round(time.Millisecond), at.UTC().Format(time.RFC3339Nano)))
		return left, nil
	}
	t := time.NewTimer(left - d)
	defer t.Stop()
	select {
	case <-t.C:
		return d, nil
	case <-ctx.Done():
		return 0, ErrInterruptedStart
	}
}

// row is the run's summary row. A run with stages has no one rate or
// concurrency: its request_rate and concurrency are empty, and its
// rate_warning names the stages that fell short of their rates.
func (r *Run) row(res *loadgen.Result, saturated bool, stages []report.StageStats) *report.Row {
	row := r.summary.row(loadgen.RunInfo{
		Name: cmp.Or(r.cfg.BenchmarkName, r.sc.Name), RunID: r.runID, Scenario: r.sc.Name, Backend: r.backend.Name(), Model: r.model,
		Endpoint: r.backend.Endpoint(), Start: res.Start, End: res.End, RequestRate: r.share.Rate,
		Concurrency: r.share.Concurrency, Arrival: arrivalOf(r.sc), Warmup: r.share.Warmup,
		Simulated: r.simulated(), CarbonIntensity: r.cfg.CarbonIntensity, SLO: r.sc.SLO.String(),
	})
	row.ClientSaturated = &saturated
	pacing := report.Pacing{Paced: res.Paced, CapWaits: res.CapWaits, Concurrency: r.share.Concurrency, ClientSaturated: saturated}
	if r.sc.Staged() {
		row.RequestRate, row.Concurrency = nil, nil
		row.RateWarning = stagesWarning(stages, pacing)
	} else {
		row.RateWarning = report.RateShortfall(row, pacing)
	}
	if row.RateWarning != "" {
		r.log.Warn(row.RateWarning)
	}
	if r.meter != nil {
		es := r.meter.Summary()
		row.ApplyEnergy(report.Energy{Source: es.Source, Method: es.Method, GPUs: es.GPUs,
			EnergyJ: es.EnergyJ, IdlePowerW: es.IdlePowerW, PeakPowerW: es.PeakPowerW,
			UUIDs: r.gpuUUIDs, Selection: r.selection.How, Warning: strings.Join(r.energyWarnings, "; ")})
	}
	return row
}

// closePush pushes once more and stops pushing.
func (r *Run) closePush() {
	if r.push == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.push.Close(ctx); err != nil {
		r.log.Warn(err.Error())
	}
	r.push = nil
}

// ID is the run's id.
func (r *Run) ID() string { return r.runID }

// Scenario is the scenario being run, as resolved (the simulator's
// endpoint and model filled in under Config.Sim); a shard's share of it
// (loadgen.Shard.Share: its rate, concurrency, num_samples, warm-up) in a
// sharded run.
func (r *Run) Scenario() *scenario.Scenario {
	if r.share == nil { // before Start chose it
		return r.sc
	}
	return r.share
}

// Simulated reports whether the run is simulated: under Config.Sim, or
// because Start found the server answering X-Tokenwatt-Simulated: true or
// the energy source saying its GPUs are simulated.
func (r *Run) Simulated() bool { return r.simulated() }

// Progress is the runner's live counters, for progress lines.
func (r *Run) Progress() *loadgen.Progress { return &r.runner.Progress }

// FinishReasons are the ok requests' counts by finish reason, and how
// many had none (report.json's requests.finish_reasons and
// no_finish_reason).
func (r *Run) FinishReasons() (map[string]int, int) { return r.summary.finishReasons() }

// Quantile is the q-quantile of a distribution as report.json names it
// (ttft, itl, tpot, e2e, e2e_from_sched, schedule_lag), for the table.
func (r *Run) Quantile(name string, q float64) (float64, bool) { return r.summary.quantile(name, q) }

// ClientLateness is the distribution of the stamped chunks' client
// lateness and of the simulator's timer lateness (report.json's
// client.lateness_s and server_timer_lateness_s), for the table; nil
// when no stamp came.
func (r *Run) ClientLateness() (lateness, timer *report.Distribution) {
	return r.summary.clientLateness()
}

// TTFTP50 is the median TTFT so far, for progress lines.
func (r *Run) TTFTP50() (float64, bool) { return r.summary.ttftP50() }

// Saturation is the client's state over the last monitoring window (nil
// before the first one).
func (r *Run) Saturation() *loadgen.Saturation {
	w := r.watch.Load()
	if w == nil {
		return nil
	}
	return w.latest.Load()
}

// Abort cancels the requests in flight at once instead of giving them the
// grace period (a second Ctrl-C); Run then returns as after any
// interruption, with those requests recorded as canceled. It is a no-op
// before Start has opened the runner.
func (r *Run) Abort() {
	if r.runner != nil {
		r.runner.Abort()
	}
}

// Grace is how long requests in flight may finish once ctx is done
// (Config.Grace, or loadgen.DefaultGrace when that is not positive).
func (r *Run) Grace() time.Duration {
	if r.runner != nil {
		return r.runner.Grace()
	}
	if r.cfg.Grace > 0 {
		return r.cfg.Grace
	}
	return loadgen.DefaultGrace
}

// MetricsServing reports whether the run's metrics are being served.
func (r *Run) MetricsServing() bool { return r.server != nil }

// Close releases whatever Start opened: the push client, the energy
// meter (and its source), the records file, the /metrics server and the
// simulator. It is safe to call more than once and after a failed Start.
func (r *Run) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.closePush()
	if r.meter != nil {
		if err := r.meter.Stop(); err != nil {
			r.log.Warn(err.Error())
		}
	}
	if r.source != nil {
		r.source.Close()
	}
	if r.records != nil {
		if err := r.records.Close(); err != nil {
			r.log.Warn(err.Error())
		}
	}
	if r.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = r.server.Close(ctx)
		cancel()
	}
	if r.simSrv != nil {
		r.simSrv.Close()
	}
}

// newRunID returns a sortable, readable run id: UTC time plus randomness.
func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
