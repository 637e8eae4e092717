// Package composetest reads docker-compose.yml for tests: the services'
// build, entrypoint, command, profiles, network aliases, ports and
// volumes, with ${VAR:-default} resolved as if no variable were set.
package composetest

import (
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// File is the part of a compose file the tests read.
type File struct {
	Services map[string]*Service `yaml:"services"`
}

// Service is the part of a compose service the tests read.
type Service struct {
	Build      *yaml.Node  `yaml:"build"`
	Entrypoint []string    `yaml:"entrypoint"`
	Command    []string    `yaml:"command"`
	Profiles   []string    `yaml:"profiles"`
	Networks   yaml.Node   `yaml:"networks"`
	Ports      []yaml.Node `yaml:"ports"`
	Volumes    []yaml.Node `yaml:"volumes"`
	// Healthcheck is the service's health check; Test is its command,
	// e.g. ["CMD", "energy-exporter", "health"].
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// variable matches compose's $$, ${VAR}, ${VAR:-default} (and the
// other operators) and $VAR.
var variable = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate resolves the variables in every scalar value under n
// as if none were set: to their defaults, or to "".
func interpolate(n *yaml.Node, isKey bool) {
	if n.Kind == yaml.ScalarNode && !isKey {
		n.Value = variable.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			if sub := variable.FindStringSubmatch(m); sub[2] == ":-" || sub[2] == "-" {
				return sub[3]
			}
			return ""
		})
	}
	for i, c := range n.Content {
		interpolate(c, n.Kind == yaml.MappingNode && i%2 == 0)
	}
}

// Load reads the compose file at path, resolving its variables to their
// defaults (see interpolate); a problem fails the test.
func Load(t testing.TB, path string) *File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	interpolate(&root, false)
	var f File
	if err := root.Decode(&f); err != nil {
		t.Fatalf("%s (entrypoint and command must be lists): %v", path, err)
	}
	return &f
}

// Reachable returns the host names s can reach: the service names and
// network aliases of every stack s runs in.
func (f *File) Reachable(s *Service) map[string]*Service {
	out := map[string]*Service{}
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

// ContainerPorts are the container ports s publishes.
func (s *Service) ContainerPorts() []int {
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

// Mounted reports whether dir is a volume's mount point in s, or under one.
func (s *Service) Mounted(dir string) bool {
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

// ServicesRunning returns the services built from this repository whose
// entrypoint is bin (an image's default entrypoint counts as loadgen,
// the Dockerfile's), with the arguments bin gets, by service name.
func (f *File) ServicesRunning(bin string) map[string][]string {
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
