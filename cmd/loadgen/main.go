// Command loadgen replays scenario prompts against vLLM's OpenAI-compatible
// API (or the built-in simulator) and measures every request's latency and
// tokens, writing records.jsonl and a CSV summary. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/tokenwatt/tokenwatt/internal/command"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (see package command; 130 is loadgen's own).
const (
	exitOK          = command.ExitOK
	exitFailed      = command.ExitFailed
	exitUsage       = command.ExitUsage
	exitInterrupted = 130 // stopped by SIGINT/SIGTERM after writing everything
	// exitWriteFailed: the run measured, but some of it could not be
	// written (records, the summary row, report.json: a full disk); the
	// table is printed and the row written elsewhere when it can be.
	exitWriteFailed = 3
)

// cli is the whole command line. `run` is the default command, so
// `loadgen --scenario energy_star` works.
type cli struct {
	Run       runCmd       `cmd:"" default:"withargs" help:"Run a scenario against an endpoint (the default command)."`
	Sweep     sweepCmd     `cmd:"" help:"Run a scenario at a list or range of rates or concurrencies, one run each, and find the energy-latency frontier."`
	Sim       simCmd       `cmd:"" help:"Serve the built-in vLLM-compatible simulator (no GPU needed)."`
	Dump      dumpCmd      `cmd:"" help:"Compute summary rows from Prometheus or VictoriaMetrics (loadgen runs, or a vLLM server alone)."`
	Report    reportCmd    `cmd:"" help:"Write a self-contained HTML report with charts of a run, several runs compared, or a sweep."`
	Compare   compareCmd   `cmd:"" help:"Compare runs (their directories or report.json): key figures side by side, with bootstrap confidence intervals from their records."`
	Scenarios scenariosCmd `cmd:"" help:"List the built-in scenarios."`
	Version   versionCmd   `cmd:"" help:"Print loadgen's version."`
}

// env is what commands need from the process, passed explicitly so that
// tests can run the CLI in-process.
type env struct {
	// ctx is done at the first stop signal (Ctrl-C, SIGTERM): scheduling
	// stops, requests in flight get --grace.
	ctx context.Context
	// abort is closed at the second: requests in flight are canceled at
	// once. Nil never closes.
	abort  <-chan struct{}
	stdout io.Writer
	stderr io.Writer
	// interrupted reports whether a stop signal arrived.
	interrupted func() bool
	// isTerminal reports whether stderr is a terminal (live progress line).
	isTerminal bool
	// width is the terminal's width in columns, asked at each redraw of
	// the progress line; nil asks stderr (terminalWidth).
	width func() int
	// log writes loadgen's notices and warnings to stderr (newLogger).
	log *slog.Logger
}

var (
	usageErr  = command.Usage
	usageErrf = command.Usagef
)

func main() {
	sig := notifyInterrupts(os.Interrupt, syscall.SIGTERM)
	defer sig.release()
	if note := raiseOpenFilesLimit(); note != "" {
		newLogger(os.Stderr, "loadgen", false).Debug(note)
	}
	os.Exit(executeAbortable(sig.stop, sig.abort, os.Args[1:], os.Stdout, os.Stderr, stderrIsTerminal()))
}

// execute parses args and executes the chosen command, returning the exit
// code. Every error is printed as one line on stderr, never a stack trace.
// ctx done stops a run gracefully; nothing aborts it.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer, isTerminal bool) int {
	return executeAbortable(ctx, nil, args, stdout, stderr, isTerminal)
}

// executeAbortable is execute where abort closing cancels a run's
// requests in flight at once.
func executeAbortable(ctx context.Context, abort <-chan struct{}, args []string, stdout, stderr io.Writer, isTerminal bool) int {
	// The progress line and the logger write from their own goroutines.
	stderr = &lockedWriter{w: stderr}
	e := &env{ctx: ctx, abort: abort, stdout: stdout, stderr: stderr, isTerminal: isTerminal,
		interrupted: func() bool { return ctx.Err() != nil }}
	e.log = newLogger(stderr, "loadgen", isTerminal)
	return command.Run("loadgen", &cli{}, args, stdout, stderr, kongOptions(), e)
}

// interrupts are the process's stop signals: the first ends stop, the
// second closes abort, and a third gets the signal's default action (the
// process dies) in case even an abort hangs.
type interrupts struct {
	stop    context.Context
	abort   chan struct{}
	release func()
}

func notifyInterrupts(sigs ...os.Signal) *interrupts {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, sigs...)
	stop, cancel := context.WithCancel(context.Background())
	in := &interrupts{stop: stop, abort: make(chan struct{})}
	quit := make(chan struct{})
	go func() {
		for n := 1; ; n++ {
			select {
			case <-ch:
			case <-quit:
				return
			}
			if n == 1 {
				cancel()
				continue
			}
			close(in.abort)
			signal.Reset(sigs...)
			return
		}
	}()
	in.release = func() {
		signal.Stop(ch)
		close(quit)
		cancel()
	}
	return in
}

// kongOptions are the options of loadgen's grammar, besides those
// command.Run adds (tests parse command lines with them).
func kongOptions() []kong.Option {
	return []kong.Option{
		kong.Description("Measure what an LLM token costs: latency, tokens and (with an energy source) GPU energy."),
		kong.DefaultEnvars("TOKENWATT"),
		kong.Vars{"version": version},
	}
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintf(e.stdout, "loadgen %s\n", version)
	return nil
}

// lockedWriter serialises writes: each line is one Write, so lines from
// different goroutines never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
