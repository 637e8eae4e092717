// Command loadgen replays scenario prompts against vLLM's OpenAI-compatible
// API (or the built-in simulator) and measures every request's latency and
// tokens, writing records.jsonl and a CSV summary. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1   // the run ran but failed (e.g. too many consecutive failures)
	exitUsage       = 2   // bad input: flags, config, scenario, dataset, endpoint, model
	exitInterrupted = 130 // stopped by SIGINT/SIGTERM after writing everything
)

// cli is the whole command line. `run` is the default command, so
// `loadgen --scenario energy_star` works.
type cli struct {
	Run       runCmd       `cmd:"" default:"withargs" help:"Run a scenario against an endpoint (the default command)."`
	Sim       simCmd       `cmd:"" help:"Serve the built-in vLLM-compatible simulator (no GPU needed)."`
	Scenarios scenariosCmd `cmd:"" help:"List the built-in scenarios."`
	Version   versionCmd   `cmd:"" help:"Print loadgen's version."`
}

// env is what commands need from the process, passed explicitly so that
// tests can run the CLI in-process.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	// interrupted reports whether a stop signal arrived.
	interrupted func() bool
	// isTerminal reports whether stderr is a terminal (live progress line).
	isTerminal bool
}

// exitError carries an exit code with the error that caused it.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as bad input (exit code 2).
func usageErr(err error) error { return &exitError{code: exitUsage, err: err} }

// usageErrf formats a bad-input error.
func usageErrf(format string, args ...any) error {
	return usageErr(fmt.Errorf(format, args...))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, stderrIsTerminal()))
}

// kongExit carries the exit code of kong's own exits (--help) out of
// Parse, so that run returns instead of the process exiting.
type kongExit struct{ code int }

// run parses args and executes the chosen command, returning the exit
// code. Every error is printed as one line on stderr, never a stack trace.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, isTerminal bool) (code int) {
	defer func() {
		if r := recover(); r != nil {
			ke, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = ke.code
		}
	}()
	var c cli
	parser, err := kong.New(&c,
		kong.Name("loadgen"),
		kong.Description("Measure what an LLM token costs: latency, tokens and (with an energy source) GPU energy."),
		kong.Writers(stdout, stderr),
		kong.DefaultEnvars("TOKENWATT"),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"version": version},
	)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return exitFailed
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v (see loadgen --help)\n", err)
		return exitUsage
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, isTerminal: isTerminal,
		interrupted: func() bool { return ctx.Err() != nil }}
	err = kctx.Run(e)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "loadgen: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintf(e.stdout, "loadgen %s\n", version)
	return nil
}
