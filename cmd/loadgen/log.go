package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/tokenwatt/tokenwatt/internal/termtext"
)

// newLogger is loadgen's logger: one readable line per record on w (one
// Write each, so w must take concurrent Writes: execute's stderr does),
// "NAME: message", "NAME: warning: message" (attributes follow as
// key=value). With clear (a terminal), each line first clears the
// progress line it would otherwise run into.
func newLogger(w io.Writer, name string, clear bool) *slog.Logger {
	return slog.New(&humanHandler{w: w, name: name, clear: clear})
}

// humanHandler is a slog.Handler for people, not log pipelines: no time,
// no level for notices, the program's name first.
type humanHandler struct {
	w     io.Writer
	name  string
	clear bool
	attrs []slog.Attr
	group string
}

// Enabled implements slog.Handler: notices, warnings and errors are
// shown; debug lines only with TOKENWATT_DEBUG set (non-empty).
func (h *humanHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || os.Getenv("TOKENWATT_DEBUG") != ""
}

// Handle implements slog.Handler.
func (h *humanHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.clear {
		b.WriteString("\r\033[K")
	}
	b.WriteString(h.name)
	b.WriteString(": ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	// Messages quote what servers say (model names, error messages):
	// their control characters are escaped, so a line stays one line and
	// cannot drive the terminal.
	b.WriteString(termtext.Escape(r.Message))
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%s", a.Key, termtext.Escape(a.Value.Resolve().String()))
	}
	r.Attrs(func(a slog.Attr) bool {
		if !a.Equal(slog.Attr{}) {
			fmt.Fprintf(&b, " %s=%s", h.qualify(a.Key), termtext.Escape(a.Value.Resolve().String()))
		}
		return true
	})
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *humanHandler) qualify(key string) string {
	if h.group == "" {
		return key
	}
	return h.group + "." + key
}

// WithAttrs implements slog.Handler.
func (h *humanHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range as {
		if !a.Equal(slog.Attr{}) {
			c.attrs = append(c.attrs, slog.Attr{Key: h.qualify(a.Key), Value: a.Value})
		}
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *humanHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
