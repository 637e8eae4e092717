package main

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"gopkg.in/yaml.v3"

	"github.com/tokenwatt/tokenwatt/exporter"
)

// The compose tests parse the command of every docker-compose.yml service
// that runs loadgen with loadgen's real grammar, and check what the
// grammar cannot: that the scenario loads, that the hosts it talks to are
// services of its stack, and that its listeners are reachable from other
// containers. Nothing is run and nothing is dialed.

// composeFile is the part of docker-compose.yml these tests read.
type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
}

type composeService struct {
	Build      *yaml.Node  `yaml:"build"`
	Entrypoint []string    `yaml:"entrypoint"`
	Command    []string    `yaml:"command"`
	Profiles   []string    `yaml:"profiles"`
	Networks   yaml.Node   `yaml:"networks"`
	Ports      []yaml.Node `yaml:"ports"`
	Volumes    []yaml.Node `yaml:"volumes"`
}

// composeVariable matches compose's $$, ${VAR}, ${VAR:-default} (and the
// other operators) and $VAR.
var composeVariable = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// composeInterpolate resolves the variables in every scalar value under n
// as if none were set: to their defaults, or to "".
func composeInterpolate(n *yaml.Node, isKey bool) {
	if n.Kind == yaml.ScalarNode && !isKey {
		n.Value = composeVariable.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			if sub := composeVariable.FindStringSubmatch(m); sub[2] == ":-" || sub[2] == "-" {
				return sub[3]
			}
			return ""
		})
	}
	for i, c := range n.Content {
		composeInterpolate(c, n.Kind == yaml.MappingNode && i%2 == 0)
	}
}

func loadComposeFile(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	composeInterpolate(&root, false)
	var f composeFile
	if err := root.Decode(&f); err != nil {
		t.Fatalf("docker-compose.yml (entrypoint and command must be lists): %v", err)
	}
	return &f
}

// reachable returns the host names s can reach: the service names and
// network aliases of every stack s runs in.
func (f *composeFile) reachable(s *composeService) map[string]*composeService {
	out := map[string]*composeService{}
	for name, other := range f.Services {
		if len(s.Profiles) > 0 && len(other.Profiles) > 0 &&
			!slices.ContainsFunc(s.Profiles, func(p string) bool { return slices.Contains(other.Profiles, p) }) {
			continue // never in the same stack
		}
		out[name] = other
		var nets map[string]*struct {
			Aliases []string `yaml:"aliases"`
		}
		if other.Networks.Kind == yaml.MappingNode {
			_ = other.Networks.Decode(&nets)
		}
		for _, n := range nets {
			if n != nil {
				for _, a := range n.Aliases {
					out[a] = other
				}
			}
		}
	}
	return out
}

// containerPorts are the container ports s publishes.
func (s *composeService) containerPorts() []int {
	var out []int
	for _, p := range s.Ports {
		target := ""
		if p.Kind == yaml.ScalarNode {
			spec, _, _ := strings.Cut(p.Value, "/")
			target = spec[strings.LastIndex(spec, ":")+1:]
		} else {
			var long struct {
				Target string `yaml:"target"`
			}
			_ = p.Decode(&long)
			target = long.Target
		}
		if n, err := strconv.Atoi(target); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// mounted reports whether dir is a volume's mount point in s, or under one.
func (s *composeService) mounted(dir string) bool {
	for _, v := range s.Volumes {
		target := ""
		if v.Kind == yaml.ScalarNode {
			if parts := strings.Split(v.Value, ":"); len(parts) >= 2 {
				target = parts[1]
			}
		} else {
			var long struct {
				Target string `yaml:"target"`
			}
			_ = v.Decode(&long)
			target = long.Target
		}
		if target != "" && (path.Clean(dir) == path.Clean(target) || strings.HasPrefix(path.Clean(dir), path.Clean(target)+"/")) {
			return true
		}
	}
	return false
}

// servicesRunning returns the services built from this repository whose
// entrypoint is bin (an image's default entrypoint counts as loadgen,
// the Dockerfile's), with the arguments bin gets, by service name.
func (f *composeFile) servicesRunning(bin string) map[string][]string {
	out := map[string][]string{}
	for name, s := range f.Services {
		if s.Build == nil {
			continue
		}
		entry := "loadgen"
		var args []string
		if len(s.Entrypoint) > 0 {
			entry, args = path.Base(s.Entrypoint[0]), s.Entrypoint[1:]
		}
		if entry == bin {
			out[name] = append(slices.Clone(args), s.Command...)
		}
	}
	return out
}

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
func checkListen(s *composeService, flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %v", flag, addr, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		return fmt.Errorf("%s %s: other containers cannot reach %s; listen on :%s or 0.0.0.0:%s", flag, addr, host, port, port)
	}
	n, err := strconv.Atoi(port)
	if err != nil || !slices.Contains(s.containerPorts(), n) {
		return fmt.Errorf("%s %s: the service publishes no container port %s", flag, addr, port)
	}
	return nil
}

// checkURL checks that rawURL is an http(s) URL whose host is a service
// (or alias) of the stack that publishes its port.
func checkURL(f *composeFile, s *composeService, what, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("%s %q is not an http(s) URL with a host", what, rawURL)
	}
	target, ok := f.reachable(s)[u.Hostname()]
	if !ok {
		return fmt.Errorf("%s %s: host %s is no service or alias in this service's stack", what, rawURL, u.Hostname())
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, _ := strconv.Atoi(port); !slices.Contains(target.containerPorts(), n) {
		return fmt.Errorf("%s %s: that service publishes no container port %s", what, rawURL, port)
	}
	return nil
}

func TestComposeLoadgenCommands(t *testing.T) {
	clearEnv(t, "TOKENWATT_", "OPENAI_API_KEY")
	f := loadComposeFile(t)
	services := f.servicesRunning("loadgen")
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
func checkRunCommand(t *testing.T, f *composeFile, s *composeService, c *runCmd) {
	t.Helper()
	sc, _, err := c.resolveScenario(&env{ctx: t.Context(), stdout: io.Discard, stderr: io.Discard,
		interrupted: func() bool { return false }})
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	if _, err := newBackend(sc, ""); err != nil {
		t.Errorf("backend: %v", err)
	}
	if !c.Sim {
		if err := checkURL(f, s, "--endpoint", sc.Endpoint); err != nil {
			t.Error(err)
		}
	}
	switch spec := c.Energy; {
	case strings.HasPrefix(spec, exporter.SourceScrape+":"):
		if err := checkURL(f, s, "--energy", strings.TrimPrefix(spec, exporter.SourceScrape+":")); err != nil {
			t.Error(err)
		}
	case spec == exporter.SourceSim && !c.Sim:
		t.Errorf("--energy sim needs --sim; read a separate simulator with scrape:http://HOST:PORT/metrics")
	case !slices.Contains([]string{exporter.SourceAuto, exporter.SourceDCGM, exporter.SourceNVML, exporter.SourceNone, exporter.SourceSim}, spec):
		t.Errorf("--energy %q: want auto, dcgm, nvml, none or scrape:URL", spec)
	}
	if c.MetricsAddr == "" {
		t.Error("--metrics-addr is empty: Prometheus scrapes the loadgen")
	} else if err := checkListen(s, "--metrics-addr", c.MetricsAddr); err != nil {
		t.Error(err)
	}
	if !path.IsAbs(c.Out) || !s.mounted(c.Out) {
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
