// Command energy-exporter serves per-GPU energy and power for Prometheus
// on a GPU host: tokenwatt_gpu_energy_joules_total and
// tokenwatt_gpu_power_watts, read through DCGM or NVML. A loadgen on
// another host reads it with --energy scrape:http://HOST:9466/metrics.
// See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

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
	Version     versionCmd       `cmd:"" help:"Print energy-exporter's version."`
	VersionFlag kong.VersionFlag `name:"version" help:"Print energy-exporter's version and exit."`
}

type serveCmd struct {
	// scrape:URL works too (chaining exporters, tests) but is not
	// advertised: this daemon is for the host with the GPUs.
	Source        string        `default:"auto" placeholder:"auto|dcgm|nvml" help:"GPU energy source: dcgm, nvml, or auto (dcgm, then nvml)."`
	DCGMAddr      string        `name:"dcgm-addr" placeholder:"HOST:PORT" help:"Read DCGM from a running nv-hostengine at HOST:PORT instead of embedding DCGM (needs libdcgm.so.4 here too)."`
	Interval      time.Duration `default:"1s" help:"Sampling interval; a GPU with no reading for three intervals is left out of /metrics."`
	Listen        string        `default:":9466" placeholder:"[HOST]:PORT" help:"Address to serve /metrics on."`
	WebConfigFile string        `name:"web.config.file" placeholder:"FILE" help:"exporter-toolkit web configuration (TLS, basic auth)."`
}

// openFunc opens an energy source by name (exporter.OpenSource; tests
// inject fakes).
type openFunc func(ctx context.Context, spec string, opts exporter.SourceOptions) (exporter.Source, string, error)

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
	os.Exit(run(&env{ctx: ctx, stdout: os.Stdout, stderr: os.Stderr, open: exporter.OpenSource}, os.Args[1:]))
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
	if c.Source == exporter.SourceNone || c.Source == exporter.SourceSim {
		return usageErr(fmt.Errorf("--source %s: an energy exporter needs a GPU source: auto, dcgm or nvml", c.Source))
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	logf := func(level slog.Level) func(string, ...any) {
		return func(format string, args ...any) {
			logger.Log(context.Background(), level, fmt.Sprintf(format, args...))
		}
	}

	src, why, err := e.open(e.ctx, c.Source, exporter.SourceOptions{
		DCGMAddr: c.DCGMAddr,
		Interval: c.Interval,
		Logf:     logf(slog.LevelInfo),
	})
	switch {
	case err != nil:
		return usageErr(err)
	case src == nil:
		// auto found nothing: a GPU exporter without GPUs would serve
		// empty metrics forever, so it says why and stops.
		return usageErr(fmt.Errorf("%s; nothing to export", why))
	}
	if why != "" {
		logger.Info(why)
	}

	ln, webConfig, err := listen(c.Listen, c.WebConfigFile)
	if err != nil {
		_ = src.Close()
		return usageErr(err)
	}

	sampler := exporter.NewSampler(src, c.Interval)
	sampler.OnLog(logf(slog.LevelWarn))
	reg := prometheus.NewRegistry()
	for _, col := range []prometheus.Collector{
		exporter.NewGPUCollector(sampler, exporter.GPUCollectorOptions{Info: true, Version: version}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(col); err != nil {
			_ = ln.Close()
			_ = src.Close()
			return fmt.Errorf("register metrics: %w", err)
		}
	}

	sampleCtx, stopSampling := context.WithCancel(context.WithoutCancel(e.ctx))
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sampler.Run(sampleCtx)
	}()

	srv := &http.Server{Handler: handler(reg), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webConfig}, logger) }()
	logger.Info(fmt.Sprintf("energy-exporter %s: %s, %d GPU(s), method %s, every %v; serving %s",
		version, src.Name(), len(src.Devices()), src.Method(), c.Interval, metricsURL(ln.Addr().String(), webConfig)))
	if e.listening != nil {
		e.listening(ln.Addr().String())
	}

	var serveErr error
	select {
	case <-e.ctx.Done():
	case serveErr = <-served:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), serveGrace)
	defer cancel()
	if serveErr == nil {
		_ = srv.Shutdown(shutdownCtx)
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	stopSampling()
	select {
	case <-sampled:
		if err := src.Close(); err != nil {
			logger.Warn(fmt.Sprintf("close %s: %v", src.Name(), err))
		}
	case <-time.After(samplerGrace):
		logger.Warn(fmt.Sprintf("the %s source did not return from a read within %v; exiting without closing it", src.Name(), samplerGrace))
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), serveErr)
	}
	return nil
}

// listen validates the web configuration and binds addr, so that both
// fail before anything is served.
func listen(addr, webConfigFile string) (net.Listener, string, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, "", fmt.Errorf("--web.config.file %s: %w", webConfigFile, err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %s: %w (choose another address)", addr, err)
	}
	return ln, webConfigFile, nil
}

// handler serves reg at /metrics and a pointer to it at /.
func handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, Registry: reg}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "tokenwatt energy-exporter: metrics at /metrics")
	})
	return mux
}

// metricsURL is what to scrape, for the log line.
func metricsURL(addr, webConfigFile string) string {
	if webConfigFile != "" {
		return addr + "/metrics (TLS and auth per --web.config.file)"
	}
	return "http://" + addr + "/metrics"
}
