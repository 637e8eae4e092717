package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/internal/composetest"
	"github.com/tokenwatt/tokenwatt/loadgen/run"
)

// The compose tests parse the command of every docker-compose.yml service
// that runs loadgen with loadgen's real grammar, and check what the
// grammar cannot: that the scenario loads, that the hosts it talks to are
// services of its stack, and that its listeners are reachable from other
// containers. Nothing is run and nothing is dialed.

// clearEnv unsets the variables a grammar reads, so that the developer's
// environment (or TestMain's) cannot fill in what a command line lacks.
func clearEnv(t *testing.T, prefixes ...string) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
		}
	}
}

// parseLoadgen parses args with loadgen's grammar and options, running
// nothing.
func parseLoadgen(t *testing.T, args []string) (*cli, *kong.Context, error) {
	t.Helper()
	var grammar cli
	parser, err := kong.New(&grammar, append([]kong.Option{
		kong.Name("loadgen"),
		kong.Writers(io.Discard, io.Discard),
		kong.Exit(func(code int) {
			t.Fatalf("loadgen %s: exits %d while parsing (--help, --version?)", strings.Join(args, " "), code)
		}),
	}, kongOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	return &grammar, kctx, err
}

// checkListen checks that a listen address is reachable from the other
// containers and is a port the service publishes.
func checkListen(s *composetest.Service, flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %v", flag, addr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		return fmt.Errorf("%s %s: other containers cannot reach %s; listen on :%s or 0.0.0.0:%s", flag, addr, host, port, port)
	}
	n, err := strconv.Atoi(port)
	if err != nil || !slices.Contains(s.ContainerPorts(), n) {
		return fmt.Errorf("%s %s: the service publishes no container port %s", flag, addr, port)
	}
	return nil
}

// checkURL checks that rawURL is an http(s) URL whose host is a service
// (or alias) of the stack that publishes its port.
func checkURL(f *composetest.File, s *composetest.Service, what, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("%s %q is not an http(s) URL with a host", what, rawURL)
	}
	target, ok := f.Reachable(s)[u.Hostname()]
	if !ok {
		return fmt.Errorf("%s %s: host %s is no service or alias in this service's stack", what, rawURL, u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, _ := strconv.Atoi(port); !slices.Contains(target.ContainerPorts(), n) {
		return fmt.Errorf("%s %s: that service publishes no container port %s", what, rawURL, port)
	}
	return nil
}

func TestComposeLoadgenCommands(t *testing.T) {
	clearEnv(t, "TOKENWATT_", "OPENAI_API_KEY")
	f := composetest.Load(t, "../../docker-compose.yml")
	services := f.ServicesRunning("loadgen")
	if len(services) == 0 {
		t.Fatal("docker-compose.yml runs loadgen in no service built from this repository")
	}
	for name, args := range services {
		t.Run(name, func(t *testing.T) {
			s := f.Services[name]
			if len(args) == 0 {
				t.Fatal("no command: the image would only print --help")
			}
			grammar, kctx, err := parseLoadgen(t, args)
			if err != nil {
				t.Fatalf("loadgen %s: %v", strings.Join(args, " "), err)
			}
			switch kctx.Command() {
			case "run":
				checkRunCommand(t, f, s, &grammar.Run)
			case "sim":
				c := &grammar.Sim
				if _, err := c.SimFlags.config(c.Model); err != nil {
					t.Errorf("loadgen sim: %v", err)
				}
				if err := checkListen(s, "--addr", c.Addr); err != nil {
					t.Error(err)
				}
			default:
				t.Errorf("runs `loadgen %s`; a service should run `run` or `sim`", kctx.Command())
			}
		})
	}
}

// checkRunCommand checks a parsed `loadgen run` as far as possible
// without a server: the scenario resolves, and every address is right
// for the compose network.
func checkRunCommand(t *testing.T, f *composetest.File, s *composetest.Service, c *runCmd) {
	t.Helper()
	sc, _, err := c.resolveScenario(&env{ctx: t.Context(), stdout: io.Discard, stderr: io.Discard,
		interrupted: func() bool { return false }})
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	if _, err := run.NewBackend(sc, ""); err != nil {
		t.Errorf("backend: %v", err)
	}
	if !c.Sim {
		if err := checkURL(f, s, "--endpoint", sc.Endpoint); err != nil {
			t.Error(err)
		}
	}
	switch spec := c.Energy; {
	case strings.HasPrefix(spec, energy.SourceScrape+":"):
		if err := checkURL(f, s, "--energy", strings.TrimPrefix(spec, energy.SourceScrape+":")); err != nil {
			t.Error(err)
		}
	case spec == energy.SourceSim && !c.Sim:
		t.Errorf("--energy sim needs --sim; read a separate simulator with scrape:http://HOST:PORT/metrics")
	case !slices.Contains([]string{energy.SourceAuto, energy.SourceDCGM, energy.SourceNVML, energy.SourceNone, energy.SourceSim}, spec):
		t.Errorf("--energy %q: want auto, dcgm, nvml, none or scrape:URL", spec)
	}
	if c.MetricsAddr == "" {
		t.Error("--metrics-addr is empty: Prometheus scrapes the loadgen")
	} else if err := checkListen(s, "--metrics-addr", c.MetricsAddr); err != nil {
		t.Error(err)
	}
	if !path.IsAbs(c.Out) || !s.Mounted(c.Out) {
		t.Errorf("--out %s is not on a volume: the results would be lost with the container", c.Out)
	}
}

// TestComposeLoadgenGrammarRejectsTypos makes sure the check above
// cannot pass by accident: a misspelt flag fails to parse.
func TestComposeLoadgenGrammarRejectsTypos(t *testing.T) {
	clearEnv(t, "TOKENWATT_", "OPENAI_API_KEY")
	for _, args := range [][]string{
		{"run", "--scenaro", "soak"},
		{"run", "--scenario", "soak", "--metrics-adr", ":9465"},
		{"sim", "--addr", "0.0.0.0:8000", "--fail500", "0.01"},
		{"sim", "--jitter", "4"},
	} {
		if _, _, err := parseLoadgen(t, args); err == nil {
			t.Errorf("loadgen %s parsed without error", strings.Join(args, " "))
		}
	}
}
