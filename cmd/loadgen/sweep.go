package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/command"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/run"
	"github.com/tokenwatt/tokenwatt/sweep"
)

// sweepCmd runs a scenario at one load after another (package sweep),
// each point a run of its own, with the run command's flags.
type sweepCmd struct {
	Rates            string `placeholder:"LIST|FROM:TO:xF|FROM:TO:+S" help:"Open-loop rates, req/s, one point each: a list (1,2,4,8), a geometric range (1:64:x2) or an arithmetic one (5:50:+5). -c caps each point's requests in flight."`
	Concurrencies    string `placeholder:"LIST|FROM:TO:xF|FROM:TO:+S" help:"Closed-loop concurrencies instead, one point each: a list (1,4,16) or a range (1:64:x2)."`
	StopOnSaturation bool   `name:"stop-on-saturation" negatable:"" default:"true" help:"Stop at the first point that saturates the server: a rate below 95 % of its target, a concurrency whose rise adds (almost) no throughput, SLO goodput falling."`
	FrontierLatency  string `name:"frontier-latency" default:"e2e_p99" placeholder:"DIST_STAT" help:"The latency the energy-latency frontier weighs against J/token: ttft, itl, tpot, e2e or e2e_from_sched, then mean, p50, p90, p95, p99 or p99.9 (e.g. ttft_p99)."`
	SweepID          string `name:"sweep-id" help:"Sweep identifier (default: generated): OUT/SWEEP_ID/ holds sweep.json and each point's run directory, SWEEP_ID-r4 (rate 4) or SWEEP_ID-c16 (concurrency 16)."`

	Flags runCmd `embed:""`
}

func (c *sweepCmd) Run(e *env) error {
	f := &c.Flags
	switch {
	case (c.Rates == "") == (c.Concurrencies == ""):
		return usageErrf("give --rates or --concurrencies: the loads the sweep's points run at")
	case f.Rate != nil:
		return usageErrf("--rate: a sweep's rates are --rates")
	case f.Stages != nil || f.Ramp != nil:
		return usageErrf("--stages, --ramp: each point of a sweep runs one steady load (--rates or --concurrencies)")
	case f.RunID != "":
		return usageErrf("--run-id: a sweep names its points' runs after --sweep-id (SWEEP_ID-r4, SWEEP_ID-c16)")
	case f.Shard != "" || f.StartAt != "":
		return usageErrf("--shard, --start-at: a sweep runs in one process (shard a run instead: loadgen --shard I/N --start-at TIME)")
	case c.Concurrencies != "" && f.Concurrency != nil:
		return usageErrf("-c: --concurrencies sets each point's")
	}
	lat, err := sweep.ParseLatency(c.FrontierLatency)
	if err != nil {
		return usageErrf("--frontier-latency %v", err)
	}
	load, values := sweep.LoadRate, []float64(nil)
	if c.Rates != "" {
		if values, err = sweep.ParseRates(c.Rates); err != nil {
			return usageErrf("--rates %v", err)
		}
	} else {
		load = sweep.LoadConcurrency
		ns, err := sweep.ParseConcurrencies(c.Concurrencies)
		if err != nil {
			return usageErrf("--concurrencies %v", err)
		}
		for _, n := range ns {
			values = append(values, float64(n))
		}
	}
	id := c.SweepID
	if id == "" {
		id = newSweepID()
	} else if id == "." || id == ".." || strings.ContainsAny(id, `/\`+"\x00") {
		return usageErrf("--sweep-id %q: not a directory name (no / or \\)", id)
	}
	cfgs, err := c.configs(e, id, load, values)
	if err != nil {
		return err
	}
	dir := filepath.Join(f.Out, id)
	path := filepath.Join(dir, sweep.FileName)
	if _, err := os.Stat(path); err == nil {
		return usageErrf("sweep id %q already has results in %s: choose another --sweep-id, or another --out", id, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageErrf("create the sweep's directory: %v", err)
	}
	stopProcess, err := tuneProcess(e, f.LowLatency, f.CPUProfile, f.MemProfile)
	if err != nil {
		return usageErr(err)
	}
	defer stopProcess()
	defer writeMemProfile(e, f.MemProfile)

	started := time.Now().UTC()
	s := &sweep.Sweep{SweepID: id, Load: load, Planned: values, StopOnSaturation: c.StopOnSaturation,
		FrontierLatency: lat.String(), Summary: cfgs[0].SummaryPath, Started: &started,
		StopReason: sweep.StopRunning, Points: []sweep.Point{}, Frontier: []string{}}
	var idle *run.IdlePower
	var exit error
	for i, cfg := range cfgs {
		if e.ctx.Err() != nil {
			s.StopReason, s.StopDetail = sweep.StopInterrupted, fmt.Sprintf("before point %d", i+1)
			exit = command.Exit(exitInterrupted, errors.New("interrupted: the sweep stopped between points; sweep.json holds those that ran"))
			break
		}
		// The first point measures the idle baseline (if asked), the
		// others use its figure: the GPUs are the same, and idle.
		cfg.KnownIdle = idle
		e.log.Info(fmt.Sprintf("sweep %s: point %d of %d, %s", id, i+1, len(cfgs), describeLoad(load, values[i])))
		res, err := c.runPoint(e, cfg)
		if err != nil {
			s.StopReason, s.StopDetail = sweep.StopFailed, fmt.Sprintf("point %d (%s): %v", i+1, cfg.RunID, err)
			if errors.Is(err, run.ErrInterruptedIdle) {
				s.StopReason = sweep.StopInterrupted
			}
			exit = exitError(err)
			break
		}
		if i == 0 && res.Idle != nil {
			idle = res.Idle
			s.Idle = &sweep.Idle{PowerW: idle.TotalW(), RunID: idle.RunID}
		}
		p := sweep.FromReport(res.Report)
		p.Index, p.Load, p.Dir = i, values[i], cfg.RunID
		p.Saturation = sweep.Saturation(s.Points, &p)
		s.Points = append(s.Points, p)
		s.Simulated = s.Simulated || res.Report.Simulated
		if i == 0 {
			s.BenchmarkName, s.Scenario = res.Report.BenchmarkName, res.Report.Settings.Scenario
		}
		s.Update(lat)
		e.log.Info(pointLine(&s.Points[i], lat))
		if err := exitStatus(res); err != nil {
			s.StopReason, s.StopDetail = sweep.StopFailed, fmt.Sprintf("point %d (%s): %v", i+1, cfg.RunID, err)
			if res.StopReason == loadgen.StopInterrupted {
				s.StopReason, s.StopDetail = sweep.StopInterrupted, fmt.Sprintf("during point %d (%s)", i+1, cfg.RunID)
			}
			exit = err
			break
		}
		if p.Saturation != "" {
			e.log.Warn(fmt.Sprintf("point %d (%s) saturated the server: %s", i+1, cfg.RunID, p.Saturation))
			if c.StopOnSaturation {
				s.StopReason, s.StopDetail = sweep.StopSaturated, fmt.Sprintf("point %d (%s): %s", i+1, cfg.RunID, p.Saturation)
				break
			}
		}
		if err := sweep.Write(path, s); err != nil {
			e.log.Warn(err.Error())
		}
	}
	if len(s.Points) == 0 && exit != nil {
		// Nothing measured: no sweep to report, only why.
		_ = os.Remove(dir) // when empty
		return exit
	}
	if s.StopReason == sweep.StopRunning {
		s.StopReason = sweep.StopCompleted
	}
	finished := time.Now().UTC()
	s.Finished = &finished
	werr := sweep.Write(path, s)
	if err := sweep.WriteTable(e.stdout, s); err != nil {
		return err
	}
	if werr != nil {
		if exit == nil {
			exit = command.Exit(exitWriteFailed, werr)
		}
		return exit
	}
	e.log.Info(fmt.Sprintf("wrote %s (%d points, stopped: %s); each point's row is in %s", path, len(s.Points), s.StopReason, s.Summary))
	return exit
}

// configs resolves every point's run configuration before the first
// runs, so that a bad flag fails before anything is sent. The first
// point's resolution says what the flags changed; the others' are
// silent. A point's run goes to OUT/SWEEP_ID/SWEEP_ID-r4/, its row to
// the summary file of a plain run.
func (c *sweepCmd) configs(e *env, id string, load sweep.Load, values []float64) ([]run.Config, error) {
	f := &c.Flags
	quiet := *e
	quiet.log, quiet.stderr = slog.New(slog.DiscardHandler), io.Discard
	seen := map[string]bool{}
	cfgs := make([]run.Config, len(values))
	for i, v := range values {
		pe := e
		if i > 0 {
			pe = &quiet
		}
		if load == sweep.LoadRate {
			f.Rate = &v
		} else {
			// A closed loop whatever the scenario's rate: its
			// concurrency is the point's.
			n, zero := int(v), 0.0
			f.Concurrency, f.Rate = &n, &zero
		}
		cfg, err := f.config(pe)
		if err != nil {
			return nil, err
		}
		if sc := cfg.Scenario; sc.NumSamples <= 0 && sc.Duration <= 0 {
			return nil, usageErrf("each point of a sweep needs an end: give --num-samples or --duration")
		}
		cfg.Logger = e.log // the run's own notices and warnings, whichever point
		cfg.RunID = id + "-" + sweep.FormatLoad(load, v)
		if seen[cfg.RunID] {
			return nil, usageErrf("%s twice: each point's load must differ", describeLoad(load, v))
		}
		seen[cfg.RunID] = true
		cfg.Out = filepath.Join(f.Out, id)
		if cfg.SummaryPath == "" {
			cfg.SummaryPath = filepath.Join(f.Out, "summary.csv")
		}
		cfgs[i] = cfg
	}
	f.Rate, f.Concurrency = nil, nil
	return cfgs, nil
}

// runPoint runs one point as the run command runs a run, but without
// its table: the sweep's comes at the end.
func (c *sweepCmd) runPoint(e *env, cfg run.Config) (*run.Result, error) {
	r, err := run.Start(e.ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	prog := startProgress(e, r)
	unwatch := watchInterrupts(e, r)
	res, err := r.Run(e.ctx)
	unwatch()
	prog.stop()
	if err != nil {
		return nil, err
	}
	if res.Saturated {
		e.log.Warn(res.Saturation)
	}
	for _, w := range openFilesWarnings(res) {
		e.log.Warn(w)
	}
	switch {
	case res.SummaryErr != nil && res.SummaryPath != "":
		e.log.Warn(fmt.Sprintf("%v; the row is in %s instead", res.SummaryErr, res.SummaryPath))
	case res.SummaryErr != nil:
		e.log.Warn(fmt.Sprintf("the summary row of %s could be written to no file: %v", cfg.RunID, res.SummaryErr))
	}
	if res.ReportErr != nil {
		e.log.Warn(res.ReportErr.Error())
	}
	if r.MetricsServing() && c.Flags.Linger > 0 && !e.interrupted() {
		e.log.Info(fmt.Sprintf("lingering %v so the final metrics are scraped", c.Flags.Linger))
		select {
		case <-time.After(c.Flags.Linger):
		case <-e.ctx.Done():
		}
	}
	return res, nil
}

func describeLoad(load sweep.Load, v float64) string {
	if load == sweep.LoadConcurrency {
		return fmt.Sprintf("concurrency %g", v)
	}
	return fmt.Sprintf("rate %g req/s", v)
}

// pointLine is the log line a finished point gets.
func pointLine(p *sweep.Point, lat sweep.Latency) string {
	g := func(v *float64, unit string, scale float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.4g%s", *v*scale, unit)
	}
	var jpt, watts *float64
	if p.Energy != nil {
		jpt, watts = p.Energy.JoulesPerOutputToken, p.Energy.AvgPowerW
	}
	return fmt.Sprintf("point %d done (%s): %s req/s completed, %s output tokens/s, %s %s, %s J/token, %s",
		p.Index+1, p.RunID, g(p.Rates.Completion, "", 1), g(p.Tokens.OutputPerSecond, "", 1),
		lat, g(p.LatencyS, " ms", 1000), g(jpt, "", 1), g(watts, " W", 1))
}

// newSweepID returns a sortable, readable sweep id: "sweep-", UTC time,
// randomness.
func newSweepID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "sweep-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
