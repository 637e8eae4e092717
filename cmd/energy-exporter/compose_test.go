package main

import (
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/internal/composetest"
)

// The compose tests parse the command of every docker-compose.yml service
// that runs energy-exporter with energy-exporter's real grammar, and
// check what the grammar leaves to Run: the source name, the interval,
// and a listen address other containers reach. Nothing is run.

// exporterServices returns the services built from this repository whose
// entrypoint is energy-exporter, with its arguments.
func exporterServices(t *testing.T) map[string]*composetest.Service {
	t.Helper()
	f := composetest.Load(t, "../../docker-compose.yml")
	out := map[string]*composetest.Service{}
	for name, s := range f.Services {
		if s.Build != nil && len(s.Entrypoint) > 0 && path.Base(s.Entrypoint[0]) == "energy-exporter" {
			out[name] = s
		}
	}
	return out
}

// parseExporter parses args with energy-exporter's grammar and options,
// running nothing.
func parseExporter(t *testing.T, args []string) (*cli, *kong.Context, error) {
	t.Helper()
	var grammar cli
	parser, err := kong.New(&grammar, append([]kong.Option{
		kong.Name("energy-exporter"),
		kong.Writers(io.Discard, io.Discard),
		kong.Exit(func(code int) {
			t.Fatalf("energy-exporter %s: exits %d while parsing (--help, --version?)", strings.Join(args, " "), code)
		}),
	}, kongOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	return &grammar, kctx, err
}

func TestComposeEnergyExporterCommands(t *testing.T) {
	services := exporterServices(t)
	if len(services) == 0 {
		t.Fatal("docker-compose.yml runs energy-exporter in no service built from this repository")
	}
	for name, s := range services {
		t.Run(name, func(t *testing.T) {
			args := append(slices.Clone(s.Entrypoint[1:]), s.Command...)
			grammar, kctx, err := parseExporter(t, args)
			if err != nil {
				t.Fatalf("energy-exporter %s: %v", strings.Join(args, " "), err)
			}
			if kctx.Command() != "serve" {
				t.Fatalf("runs `energy-exporter %s`; want serve", kctx.Command())
			}
			c := &grammar.Serve
			if !slices.Contains([]string{energy.SourceAuto, energy.SourceDCGM, energy.SourceNVML}, c.Source) &&
				!strings.HasPrefix(c.Source, energy.SourceScrape+":") {
				t.Errorf("--source %q: want auto, dcgm or nvml", c.Source)
			}
			if c.Interval < 10*time.Millisecond {
				t.Errorf("--interval %v: must be at least 10ms", c.Interval)
			}
			host, port, err := net.SplitHostPort(c.Listen)
			if err != nil {
				t.Fatalf("--listen %q: %v", c.Listen, err)
			}
			if host != "" && host != "0.0.0.0" && host != "::" {
				t.Errorf("--listen %s: other containers cannot reach %s; listen on :%s", c.Listen, host, port)
			}
			if n, err := strconv.Atoi(port); err != nil || !slices.Contains(s.ContainerPorts(), n) {
				t.Errorf("--listen %s: the service publishes no container port %s", c.Listen, port)
			}
		})
	}
}

// TestComposeEnergyExporterGrammarRejectsTypos makes sure the check
// above cannot pass by accident: a misspelt flag fails to parse.
func TestComposeEnergyExporterGrammarRejectsTypos(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--sourse", "auto"},
		{"serve", "--listen-addr", ":9466"},
		{"serve", "--interval", "1"},
	} {
		if _, _, err := parseExporter(t, args); err == nil {
			t.Errorf("energy-exporter %s parsed without error", strings.Join(args, " "))
		}
	}
}

// The compose health check of every energy-exporter service is the
// health command (GPU series served), not an open-port probe, and it
// points at the port the service listens on.
func TestComposeEnergyExporterHealthcheckNeedsGPUSeries(t *testing.T) {
	for name, s := range exporterServices(t) {
		t.Run(name, func(t *testing.T) {
			if s.Healthcheck == nil || len(s.Healthcheck.Test) < 3 || s.Healthcheck.Test[0] != "CMD" || s.Healthcheck.Test[1] != "energy-exporter" {
				t.Fatalf("healthcheck %+v: want [CMD energy-exporter health ...]", s.Healthcheck)
			}
			grammar, kctx, err := parseExporter(t, s.Healthcheck.Test[2:])
			if err != nil || kctx.Command() != "health" {
				t.Fatalf("healthcheck runs `energy-exporter %s`: %v; want health", strings.Join(s.Healthcheck.Test[2:], " "), err)
			}
			serve, _, err := parseExporter(t, append(slices.Clone(s.Entrypoint[1:]), s.Command...))
			if err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(serve.Serve.Listen)
			if !strings.Contains(grammar.Health.URL, ":"+port+"/metrics") {
				t.Errorf("health --url %s, but the exporter listens on %s", grammar.Health.URL, serve.Serve.Listen)
			}
		})
	}
}
