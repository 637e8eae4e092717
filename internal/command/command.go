// Package command runs a kong command line the way every tokenwatt binary
// does: one-line errors prefixed with the program's name, never a stack
// trace, and exit codes that say what went wrong. It depends only on kong
// and internal/termtext.
package command

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// Exit codes shared by tokenwatt's binaries.
const (
	ExitOK     = 0
	ExitFailed = 1 // the work ran but failed
	ExitUsage  = 2 // bad input: flags, config, unreachable or missing dependencies
)

// Error carries the exit code of the error that caused it.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Exit returns err with an exit code.
func Exit(code int, err error) error { return &Error{Code: code, Err: err} }

// Usage marks err as bad input (ExitUsage).
func Usage(err error) error { return Exit(ExitUsage, err) }

// Usagef formats a bad-input error.
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// kongExit carries the exit code of kong's own exits (--help, --version)
// out of Parse, so that Run returns instead of the process exiting.
type kongExit struct{ code int }

// Run parses args into grammar (a kong CLI struct) and runs the chosen
// command with binds, returning the exit code. Every error is printed to
// stderr as one line, "name: message".
func Run(name string, grammar any, args []string, stdout, stderr io.Writer, options []kong.Option, binds ...any) (code int) {
	defer func() {
		if r := recover(); r != nil {
			ke, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = ke.code
		}
	}()
	options = append([]kong.Option{
		kong.Name(name),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}, options...)
	parser, err := kong.New(grammar, options...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailed
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (see %s --help)\n", name, err, name)
		return ExitUsage
	}
	if err = kctx.Run(binds...); err == nil {
		return ExitOK
	}
	// One line, whatever the error's text holds, with no control
	// characters (a server's message may carry terminal escapes).
	fmt.Fprintf(stderr, "%s: %s\n", name, termtext.Escape(strings.Join(strings.Fields(err.Error()), " ")))
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ExitFailed
}
