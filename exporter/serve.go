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
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// ServerOptions configure the /metrics server.
type ServerOptions struct {
	// Addr is the [HOST]:PORT to listen on.
	Addr string
	// AddrFlag names the flag that set Addr, and AddrHint what to do when
	// it is in use, for the one-line error.
	AddrFlag, AddrHint string
	// WebConfigFile, if not empty, is an exporter-toolkit web
	// configuration (TLS, basic auth), validated by Listen.
	WebConfigFile string
	// Program is the binary's name (loadgen, energy-exporter): the
	// landing page's title and the prefix of its build_info metric.
	Program string
	// Description is the landing page's one-line description.
	Description string
	// Version is tokenwatt's version, on the landing page and build_info.
	Version string
}

// Server serves a registry at /metrics, a landing page at / and the
// program's build_info, with exporter-toolkit's TLS and basic auth. It is
// the one server both binaries use. Listen binds before anything else
// happens, so an address in use fails before a run sends a request.
type Server struct {
	opts ServerOptions
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when serving stops
	err  error         // why serving stopped, once done is closed
}

// Listen validates the web configuration and binds the address, so that
// both fail before anything is served.
func Listen(opts ServerOptions) (*Server, error) {
	if opts.WebConfigFile != "" {
		if err := web.Validate(opts.WebConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", opts.WebConfigFile, err)
		}
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w (%s)", opts.AddrFlag, opts.Addr, err, opts.AddrHint)
	}
	return &Server{opts: opts, ln: ln}, nil
}

// Serve serves reg until Close, adding the program's build_info to it.
// logger (nil: none) gets exporter-toolkit's messages.
func (s *Server) Serve(reg *prometheus.Registry, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h, err := s.handler(reg)
	if err != nil {
		return err
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	flags := &web.FlagConfig{WebConfigFile: &s.opts.WebConfigFile}
	go func() {
		defer close(s.done)
		if err := web.Serve(s.ln, s.srv, flags, logger); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return nil
}

// handler serves reg at /metrics and the landing page at /.
func (s *Server) handler(reg *prometheus.Registry) (http.Handler, error) {
	// The version label comes from the options, not prometheus/common's
	// global: several servers (in-process runs, tests) may serve at once.
	// A second Serve of the same registry finds build_info there already.
	_ = reg.Register(versioncollector.NewCollector(promName(s.opts.Program),
		versioncollector.WithExtraConstLabels(prometheus.Labels{"version": s.opts.Version})))
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        s.opts.Program,
		Description: s.opts.Description,
		Version:     s.opts.Version,
		Links:       []web.LandingLinks{{Address: "/metrics", Text: "Metrics"}},
		Profiling:   "false",
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// Protobuf when Prometheus asks for it, which is how native
		// histograms travel; text for everyone else.
		EnableOpenMetrics: true,
		Registry:          reg,
	}))
	mux.Handle("/", landing)
	return mux, nil
}

// promName turns a program name into a metric name prefix.
func promName(program string) string {
	b := []byte(program)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Addr is the bound address (with the real port when addr had port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is what to scrape, for log lines.
func (s *Server) URL() string {
	if s.opts.WebConfigFile != "" {
		return s.Addr() + "/metrics (TLS and auth per --web.config.file)"
	}
	return "http://" + s.Addr() + "/metrics"
}

// Done is closed when serving stops, by Close or on its own (nil before
// Serve); Err then says why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is the error serving stopped with, once Done is closed: nil after
// Close.
func (s *Server) Err() error { return s.err }

// Close stops serving, letting scrapes in progress finish within ctx. A
// server that never served just releases its address.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	if err == nil {
		err = s.err
	}
	return err
}
