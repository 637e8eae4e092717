package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Server serves a registry at /metrics. Listen binds before anything else
// happens, so an address in use fails before a run sends a request.
type Server struct {
	ln            net.Listener
	webConfigFile string
	srv           *http.Server
	done          chan error
}

// Listen binds addr. webConfigFile, if not empty, is an exporter-toolkit
// web configuration (TLS, basic auth), validated here so that a bad file
// fails at once.
func Listen(addr, webConfigFile string) (*Server, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", webConfigFile, err)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w (choose another address, or \"\" to disable)", addr, err)
	}
	return &Server{ln: ln, webConfigFile: webConfigFile}, nil
}

// Serve serves reg's metrics at /metrics until Close. logger (nil: none)
// gets exporter-toolkit's messages.
func (s *Server) Serve(reg *prometheus.Registry, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// Protobuf when Prometheus asks for it, which is how native
		// histograms travel; text for everyone else.
		EnableOpenMetrics: true,
		Registry:          reg,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "tokenwatt loadgen: metrics at /metrics")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan error, 1)
	flags := &web.FlagConfig{WebConfigFile: &s.webConfigFile}
	go func() { s.done <- web.Serve(s.ln, s.srv, flags, logger) }()
}

// Addr is the bound address (with the real port when addr had port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving, letting scrapes in progress finish within ctx. A
// server that never served just releases its address.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
