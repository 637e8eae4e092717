// Command energy-exporter serves per-GPU energy and power for Prometheus
// on a GPU host: tokenwatt_gpu_energy_joules_total and
// tokenwatt_gpu_power_watts, read through DCGM or NVML. A loadgen on
// another host reads it with --energy scrape:http://HOST:9466/metrics.
// See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/promslog"

	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/internal/command"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (package command): 1 when serving failed after a good
// start, 2 for bad input or no GPU source available.
const (
	exitOK     = command.ExitOK
	exitFailed = command.ExitFailed
	exitUsage  = command.ExitUsage
)

// Shutdown bounds: scrapes in progress get serveGrace to finish; the
// sampler gets samplerGrace to return from a read before the source is
// closed (a GPU that stopped answering may never return: the process
// then exits without closing it).
const (
	serveGrace   = 5 * time.Second
	samplerGrace = 2 * time.Second
)

// cli is the whole command line. serve is the default command, so
// `energy-exporter --source nvml` works.
type cli struct {
	Serve       serveCmd         `cmd:"" default:"withargs" help:"Serve GPU energy and power at /metrics (the default command)."`
	Health      healthCmd        `cmd:"" help:"Exit 0 when an energy-exporter serves GPU series, else 1 (a container health check)."`
	Version     versionCmd       `cmd:"" help:"Print energy-exporter's version."`
	VersionFlag kong.VersionFlag `name:"version" help:"Print energy-exporter's version and exit."`
}

type serveCmd struct {
	// scrape:URL works too (chaining exporters, tests) but is not
	// advertised: this daemon is for the host with the GPUs.
	Source        string        `default:"auto" placeholder:"auto|dcgm|nvml" help:"GPU energy source: dcgm, nvml, or auto (dcgm, then nvml)."`
	DCGMAddr      string        `name:"dcgm-addr" placeholder:"HOST:PORT" help:"Read DCGM from a running nv-hostengine at HOST:PORT instead of embedding DCGM (needs libdcgm.so.4 here too)."`
	GPUs          string        `name:"gpus" default:"all" placeholder:"all|auto|LIST" help:"GPUs to export: all, auto (those in CUDA_VISIBLE_DEVICES, else those running a compute process, else all with a warning), or a comma list of indices and UUIDs (a MIG UUID names its GPU)."`
	Hostname      string        `name:"hostname" placeholder:"NAME" help:"The hostname label of this host's GPUs (default: $NODE_NAME, as the Kubernetes downward API sets it, else the OS hostname)."`
	Interval      time.Duration `default:"1s" help:"Sampling interval; a GPU with no reading for three intervals and one bounded read (at least 0.5 s, at most 5 s) is left out of /metrics."`
	Listen        string        `default:":9466" placeholder:"[HOST]:PORT" help:"Address to serve /metrics on."`
	WebConfigFile string        `name:"web.config.file" placeholder:"FILE" help:"exporter-toolkit web configuration (TLS, basic auth)."`
	LogLevel      string        `name:"log.level" default:"info" enum:"debug,info,warn,error" help:"Only log messages at or above this level: debug, info, warn, error."`
	LogFormat     string        `name:"log.format" default:"logfmt" enum:"logfmt,json" help:"Log format: logfmt or json."`
}

// openFunc opens an energy source by name (energy.OpenSource; tests
// inject fakes).
type openFunc func(ctx context.Context, spec string, opts energy.SourceOptions) (energy.Source, string, error)

// env is what commands need from the process, passed explicitly so that
// tests can run the CLI in-process.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	open   openFunc
	// listening, if set, is told the bound address once /metrics serves.
	listening func(addr string)
}

var usageErr = command.Usage

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(&env{ctx: ctx, stdout: os.Stdout, stderr: os.Stderr, open: energy.OpenSource}, os.Args[1:]))
}

// run parses args and executes the chosen command, returning the exit
// code. Every error is printed as one line on stderr, never a stack trace.
func run(e *env, args []string) int {
	return command.Run("energy-exporter", &cli{}, args, e.stdout, e.stderr, kongOptions(), e)
}

// kongOptions are the options of energy-exporter's grammar, besides
// those command.Run adds (tests parse command lines with them).
func kongOptions() []kong.Option {
	return []kong.Option{
		kong.Description("Serve per-GPU energy and power (DCGM or NVML) for Prometheus."),
		kong.Vars{"version": "energy-exporter " + version},
	}
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintf(e.stdout, "energy-exporter %s\n", version)
	return nil
}

// Run opens the source, binds, and serves until ctx ends.
func (c *serveCmd) Run(e *env) error {
	if c.Interval < 10*time.Millisecond {
		return usageErr(fmt.Errorf("--interval %v: must be at least 10ms (the default is 1s)", c.Interval))
	}
	if c.Source == energy.SourceNone || c.Source == energy.SourceSim {
		return usageErr(fmt.Errorf("--source %s: an energy exporter needs a GPU source: auto, dcgm or nvml", c.Source))
	}
	if _, err := energy.ParseGPUs(c.GPUs); err != nil {
		return usageErr(err)
	}
	logger, err := c.logger(e.stderr)
	if err != nil {
		return usageErr(err)
	}
	src, err := c.open(e, logger)
	if err != nil {
		return err
	}
	srv, err := exporter.Listen(exporter.ServerOptions{
		Addr: c.Listen, AddrFlag: "--listen", AddrHint: "choose another address", WebConfigFile: c.WebConfigFile,
		Program: "energy-exporter", Version: version, Description: "tokenwatt: per-GPU energy and power for Prometheus",
	})
	if err != nil {
		_ = src.Close()
		return usageErr(err)
	}

	sampler := energy.NewSampler(src, c.Interval)
	sampler.SetLogger(logger)
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		energy.NewGPUCollector(sampler, energy.GPUCollectorOptions{Info: true, Version: version}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	sampleCtx, stopSampling := context.WithCancel(context.WithoutCancel(e.ctx))
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sampler.Run(sampleCtx)
	}()
	if err := srv.Serve(reg, logger); err != nil {
		stopSampling()
		return err
	}
	chosen := ""
	if how := energy.SelectionOf(src).How; how != "" {
		chosen = " chosen by " + how
	}
	logger.Info(fmt.Sprintf("energy-exporter %s: %s, %d GPU(s)%s (%s), method %s, every %v; serving %s",
		version, src.Name(), len(src.Devices()), chosen, strings.Join(energy.UUIDs(src.Devices()), " "), src.Method(), c.Interval, srv.URL()))
	if e.listening != nil {
		e.listening(srv.Addr())
	}

	select {
	case <-e.ctx.Done():
	case <-srv.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), serveGrace)
	defer cancel()
	serveErr := srv.Close(shutdownCtx)
	stopSampling()
	closeSource(logger, src, sampled)
	if serveErr != nil {
		return fmt.Errorf("serve %s: %w", srv.Addr(), serveErr)
	}
	return nil
}

// logger is the daemon's logger, as --log.level and --log.format say
// (promslog, as node_exporter's).
func (c *serveCmd) logger(w io.Writer) (*slog.Logger, error) {
	level, format := promslog.NewLevel(), promslog.NewFormat()
	if err := level.Set(c.LogLevel); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	if err := format.Set(c.LogFormat); err != nil {
		return nil, fmt.Errorf("--log.format: %w", err)
	}
	return promslog.New(&promslog.Config{Level: level, Format: format, Writer: w}), nil
}

// open opens the --source, or says why there is none.
func (c *serveCmd) open(e *env, logger *slog.Logger) (energy.Source, error) {
	src, why, err := e.open(e.ctx, c.Source, energy.SourceOptions{
		DCGMAddr: c.DCGMAddr,
		Interval: c.Interval,
		Logger:   logger,
		GPUs:     c.GPUs,
		Hostname: c.Hostname,
	})
	switch {
	case err != nil:
		return nil, usageErr(err)
	case src == nil:
		// auto found nothing: a GPU exporter without GPUs would serve
		// empty metrics forever, so it says why and stops.
		return nil, usageErr(fmt.Errorf("%s; nothing to export", why))
	}
	if why != "" {
		logger.Info(why)
	}
	for _, w := range energy.Warnings(src) {
		logger.Warn(w)
	}
	return src, nil
}

// closeSource closes src once the sampler has returned from its last
// read; a GPU that stopped answering may never return, and the process
// then exits without closing it.
func closeSource(logger *slog.Logger, src energy.Source, sampled <-chan struct{}) {
	select {
	case <-sampled:
		if err := src.Close(); err != nil {
			logger.Warn(fmt.Sprintf("close %s: %v", src.Name(), err))
		}
	case <-time.After(samplerGrace):
		logger.Warn(fmt.Sprintf("the %s source did not return from a read within %v; exiting without closing it", src.Name(), samplerGrace))
	}
}
