// Package tokenwatt_test checks the deployment files at the repository
// root against each other and against the repository, without Docker:
// docker-compose.yml, Dockerfile, .dockerignore and
// alertmanager/alertmanager.yml, with prometheus/prometheus.yml and
// grafana/provisioning as they are mounted. cmd/loadgen and
// cmd/energy-exporter parse the compose commands with their real flag
// grammars.
package tokenwatt_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// profiles are the compose profiles; each, with the profile-less
// services, is a complete stack.
var profiles = []string{"gpu", "sim"}

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]*service `yaml:"services"`
	Volumes  map[string]any      `yaml:"volumes"`
}

type service struct {
	Image       string        `yaml:"image"`
	Build       *build        `yaml:"build"`
	Entrypoint  []string      `yaml:"entrypoint"`
	Command     []string      `yaml:"command"`
	Profiles    []string      `yaml:"profiles"`
	DependsOn   names         `yaml:"depends_on"`
	Volumes     []volumeMount `yaml:"volumes"`
	Ports       []portMapping `yaml:"ports"`
	Expose      []string      `yaml:"expose"`
	Networks    networks      `yaml:"networks"`
	Environment keyValues     `yaml:"environment"`
}

// build is `build: DIR` or `build: {context: DIR, dockerfile: FILE}`.
type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain build
	return n.Decode((*plain)(b))
}

// names is a list of service names (depends_on: [a, b]) or the keys of
// a map (depends_on: {a: {condition: ...}}).
type names []string

func (s *names) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode((*[]string)(s))
	case yaml.MappingNode:
		for i := 0; i < len(n.Content); i += 2 {
			*s = append(*s, n.Content[i].Value)
		}
		return nil
	}
	return fmt.Errorf("line %d: want a list or a map", n.Line)
}

// networks maps each network a service joins to its aliases there.
type networks map[string][]string

func (m *networks) UnmarshalYAML(n *yaml.Node) error {
	*m = networks{}
	switch n.Kind {
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, name := range list {
			(*m)[name] = nil
		}
		return nil
	case yaml.MappingNode:
		var full map[string]*struct {
			Aliases []string `yaml:"aliases"`
		}
		if err := n.Decode(&full); err != nil {
			return err
		}
		for name, cfg := range full {
			(*m)[name] = nil
			if cfg != nil {
				(*m)[name] = cfg.Aliases
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: want a list or a map", n.Line)
}

// keyValues is environment: as a map or as a list of KEY=VALUE.
type keyValues map[string]string

func (m *keyValues) UnmarshalYAML(n *yaml.Node) error {
	*m = keyValues{}
	if n.Kind == yaml.SequenceNode {
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			(*m)[k] = v
		}
		return nil
	}
	return n.Decode((*map[string]string)(m))
}

// volumeMount is a service volume, short (SRC:DST[:MODE]) or long syntax.
type volumeMount struct {
	Type   string `yaml:"type"`
	Source string `yaml:"source"`
	Target string `yaml:"target"`
}

func (v *volumeMount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		type plain volumeMount
		return n.Decode((*plain)(v))
	}
	parts := strings.Split(n.Value, ":")
	switch len(parts) {
	case 1: // an anonymous volume
		v.Type, v.Target = "volume", parts[0]
		return nil
	case 2, 3:
		v.Source, v.Target = parts[0], parts[1]
	default:
		return fmt.Errorf("line %d: volume %q: want SOURCE:TARGET[:MODE]", n.Line, n.Value)
	}
	v.Type = "volume"
	if strings.HasPrefix(v.Source, ".") || strings.HasPrefix(v.Source, "/") || strings.HasPrefix(v.Source, "~") {
		v.Type = "bind"
	}
	return nil
}

// portMapping is a published port, short or long syntax.
type portMapping struct {
	raw       string
	HostIP    string `yaml:"host_ip"`
	Published string `yaml:"published"`
	Target    int    `yaml:"target"`
	Protocol  string `yaml:"protocol"`
}

func (p *portMapping) UnmarshalYAML(n *yaml.Node) error {
	p.raw = n.Value
	if n.Kind != yaml.ScalarNode {
		type plain portMapping
		if err := n.Decode((*plain)(p)); err != nil {
			return err
		}
		p.raw = fmt.Sprintf("%s:%s:%d", p.HostIP, p.Published, p.Target)
	} else {
		spec, proto, _ := strings.Cut(n.Value, "/")
		p.Protocol = proto
		parts := strings.Split(spec, ":")
		var target string
		switch len(parts) {
		case 2:
			p.Published, target = parts[0], parts[1]
		case 3:
			p.HostIP, p.Published, target = parts[0], parts[1], parts[2]
		default:
			return fmt.Errorf("line %d: port %q: want HOST:CONTAINER or IP:HOST:CONTAINER", n.Line, n.Value)
		}
		t, err := strconv.Atoi(target)
		if err != nil {
			return fmt.Errorf("line %d: port %q: container port %q is not a number (ranges are not used here)", n.Line, n.Value, target)
		}
		p.Target = t
	}
	if p.Protocol == "" {
		p.Protocol = "tcp"
	}
	if p.Target < 1 || p.Target > 65535 {
		return fmt.Errorf("line %d: port %q: container port out of range", n.Line, p.raw)
	}
	if p.Published == "" {
		return fmt.Errorf("line %d: port %q: no host port: publish a fixed one so that it is documented and cannot collide", n.Line, p.raw)
	}
	if h, err := strconv.Atoi(p.Published); err != nil || h < 1 || h > 65535 {
		return fmt.Errorf("line %d: port %q: host port %q is not a port number", n.Line, p.raw, p.Published)
	}
	if p.HostIP != "" && net.ParseIP(p.HostIP) == nil {
		return fmt.Errorf("line %d: port %q: host IP %q is not an IP address", n.Line, p.raw, p.HostIP)
	}
	return nil
}

// interpolation matches compose's $$, ${VAR}, ${VAR:-default} and
// friends, and $VAR.
var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate resolves every variable as if it were unset: to its
// default, or to "". A required variable (${VAR:?msg}) is an error: the
// stack must come up with no environment at all.
func interpolate(s string) (string, error) {
	var err error
	out := interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := interpolation.FindStringSubmatch(m)
		switch sub[2] {
		case ":-", "-":
			return sub[3]
		case ":?", "?":
			err = fmt.Errorf("%q requires the variable %s", s, sub[1])
		}
		return ""
	})
	if err == nil && strings.Contains(out, "${") {
		err = fmt.Errorf("%q: nested or malformed ${...}", s)
	}
	return out, err
}

// interpolateNode interpolates every scalar value (not map keys) under n,
// as compose does before it reads the file.
func interpolateNode(n *yaml.Node, isKey bool) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if isKey {
			return nil
		}
		v, err := interpolate(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		n.Value = v
	case yaml.MappingNode:
		for i, c := range n.Content {
			if err := interpolateNode(c, i%2 == 0); err != nil {
				return err
			}
		}
	default:
		for _, c := range n.Content {
			if err := interpolateNode(c, false); err != nil {
				return err
			}
		}
	}
	return nil
}

func loadCompose(t *testing.T) *composeFile {
	t.Helper()
	data, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if err := interpolateNode(&root, false); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var top map[string]yaml.Node
	if err := root.Decode(&top); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if _, ok := top["version"]; ok {
		t.Error("docker-compose.yml: the Compose specification has no top-level version key; remove it")
	}
	var f composeFile
	if err := root.Decode(&f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("docker-compose.yml: no services")
	}
	return &f
}

// stack returns the services that `docker compose --profile p up` starts:
// those without a profile and those in p.
func (f *composeFile) stack(p string) map[string]*service {
	out := map[string]*service{}
	for name, s := range f.Services {
		if len(s.Profiles) == 0 || slices.Contains(s.Profiles, p) {
			out[name] = s
		}
	}
	return out
}

// resolve returns the service a host name reaches on the default network
// of stack: by service name or network alias.
func resolve(stack map[string]*service, host string) (string, bool) {
	if _, ok := stack[host]; ok {
		return host, true
	}
	for name, s := range stack {
		for _, aliases := range s.Networks {
			if slices.Contains(aliases, host) {
				return name, true
			}
		}
	}
	return "", false
}

// containerPorts are the ports a service listens on that compose
// documents: published targets and expose.
func (s *service) containerPorts() []int {
	var out []int
	for _, p := range s.Ports {
		out = append(out, p.Target)
	}
	for _, e := range s.Expose {
		if n, err := strconv.Atoi(strings.Split(e, "/")[0]); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// hostPath maps a path inside s's container to the repository file that
// a bind mount puts there, or "" when no bind mount covers it.
func (s *service) hostPath(containerPath string) string {
	best, bestLen := "", -1
	for _, v := range s.Volumes {
		if v.Type != "bind" {
			continue
		}
		target := path.Clean(v.Target)
		rel, ok := strings.CutPrefix(path.Clean(containerPath), target)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) || len(target) <= bestLen {
			continue
		}
		best, bestLen = filepath.Join(filepath.FromSlash(v.Source), filepath.FromSlash(rel)), len(target)
	}
	return best
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestComposeServicesHaveImageOrBuild(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		switch {
		case s.Image == "" && s.Build == nil:
			t.Errorf("service %s: neither image nor build", name)
		case s.Build != nil:
			dir := s.Build.Context
			if dir == "" {
				dir = "."
			}
			dockerfile := s.Build.Dockerfile
			if dockerfile == "" {
				dockerfile = "Dockerfile"
			}
			// The image holds two commands; loadgen is its entrypoint.
			if len(s.Entrypoint) > 0 && !slices.Contains([]string{"loadgen", "energy-exporter"}, path.Base(s.Entrypoint[0])) {
				t.Errorf("service %s: entrypoint %q is neither loadgen nor energy-exporter", name, s.Entrypoint[0])
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				t.Errorf("service %s: build context %q is not a directory of the repository", name, dir)
			} else if !exists(filepath.Join(dir, dockerfile)) {
				t.Errorf("service %s: build context %q has no %s", name, dir, dockerfile)
			}
		}
		if s.Image != "" {
			// Pinned: a tag (or digest) that is not latest.
			ref := s.Image[strings.LastIndex(s.Image, "/")+1:]
			_, tag, hasTag := strings.Cut(ref, ":")
			if !strings.Contains(ref, "@") && (!hasTag || tag == "" || tag == "latest") {
				t.Errorf("service %s: image %q is not pinned to a version tag", name, s.Image)
			}
		}
		for _, p := range s.Profiles {
			if !slices.Contains(profiles, p) {
				t.Errorf("service %s: profile %q is none of %v", name, p, profiles)
			}
		}
	}
}

func TestComposeDependsOn(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for _, dep := range s.DependsOn {
			if _, ok := f.Services[dep]; !ok {
				t.Errorf("service %s depends on %q, which is not a service", name, dep)
			}
		}
	}
	// A dependency must come up in every stack its dependent is in.
	for _, p := range profiles {
		stack := f.stack(p)
		for name, s := range stack {
			for _, dep := range s.DependsOn {
				if _, ok := stack[dep]; !ok && f.Services[dep] != nil {
					t.Errorf("profile %s: %s depends on %s, which is not in that profile", p, name, dep)
				}
			}
		}
	}
}

func TestComposeVolumes(t *testing.T) {
	f := loadCompose(t)
	used := map[string]bool{}
	for name, s := range f.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case "volume":
				if v.Source == "" {
					t.Errorf("service %s: anonymous volume at %s: name it, so that it survives `docker compose down`", name, v.Target)
					continue
				}
				used[v.Source] = true
				if _, ok := f.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %q is not declared under the top-level volumes", name, v.Source)
				}
			case "bind":
				if !strings.HasPrefix(v.Source, "./") {
					t.Errorf("service %s: bind mount %q: use a path relative to the repository (./...)", name, v.Source)
					continue
				}
				if !exists(v.Source) {
					t.Errorf("service %s: bind mount source %s does not exist in the repository", name, v.Source)
				}
			default:
				t.Errorf("service %s: volume type %q at %s", name, v.Type, v.Target)
			}
		}
	}
	for v := range f.Volumes {
		if !used[v] {
			t.Errorf("top-level volume %q is used by no service", v)
		}
	}
}

// TestComposeConfigFilesMounted checks that the configuration the
// services read is mounted from the repository where they read it.
func TestComposeConfigFilesMounted(t *testing.T) {
	f := loadCompose(t)
	for _, c := range []struct{ service, file string }{
		{"prometheus", "prometheus/prometheus.yml"},
		{"alertmanager", "alertmanager/alertmanager.yml"},
		{"grafana", "grafana/provisioning/datasources/tokenwatt.yml"},
		{"grafana", "grafana/provisioning/dashboards/tokenwatt.yml"},
	} {
		if !exists(c.file) {
			t.Errorf("%s does not exist", c.file)
		}
		s := f.Services[c.service]
		if s == nil {
			t.Errorf("no %s service", c.service)
			continue
		}
		mounted := false
		for _, v := range s.Volumes {
			if v.Type == "bind" {
				if rel, err := filepath.Rel(filepath.Clean(v.Source), c.file); err == nil && !strings.HasPrefix(rel, "..") {
					mounted = true
				}
			}
		}
		if !mounted {
			t.Errorf("service %s does not mount %s", c.service, c.file)
		}
	}

	// --config.file of Prometheus and Alertmanager is a mounted file.
	for _, name := range []string{"prometheus", "alertmanager"} {
		s := f.Services[name]
		if s == nil {
			continue
		}
		found := false
		for _, arg := range s.Command {
			if file, ok := strings.CutPrefix(arg, "--config.file="); ok {
				found = true
				if h := s.hostPath(file); h == "" || !exists(h) {
					t.Errorf("service %s: --config.file=%s is not a file mounted from the repository", name, file)
				}
			}
		}
		if !found {
			t.Errorf("service %s: no --config.file=FILE in its command", name)
		}
	}

	// Prometheus finds its rule files next to its config.
	if s := f.Services["prometheus"]; s != nil {
		var cfg struct {
			RuleFiles []string `yaml:"rule_files"`
		}
		readYAML(t, "prometheus/prometheus.yml", &cfg)
		for _, pattern := range cfg.RuleFiles {
			matches, err := filepath.Glob(filepath.Join("prometheus", pattern))
			if err != nil || len(matches) == 0 {
				t.Errorf("prometheus.yml rule_files %q matches no file under prometheus/", pattern)
			}
		}
	}

	// Grafana's dashboard providers read directories that are mounted.
	if s := f.Services["grafana"]; s != nil {
		files, _ := filepath.Glob("grafana/provisioning/dashboards/*.yml")
		for _, file := range files {
			var cfg struct {
				Providers []struct {
					Name    string `yaml:"name"`
					Options struct {
						Path string `yaml:"path"`
					} `yaml:"options"`
				} `yaml:"providers"`
			}
			readYAML(t, file, &cfg)
			for _, p := range cfg.Providers {
				if h := s.hostPath(p.Options.Path); h == "" || !exists(h) {
					t.Errorf("%s: provider %s reads %s, which no bind mount of the grafana service provides", file, p.Name, p.Options.Path)
				}
			}
		}
		if home := s.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
			h := s.hostPath(home)
			switch dashboards, _ := filepath.Glob("grafana/dashboards/*.json"); {
			case h == "":
				t.Errorf("grafana: home dashboard %s is not under a bind mount", home)
			case len(dashboards) == 0:
				t.Logf("grafana/dashboards holds no dashboard yet; not checking that %s exists", h)
			case !exists(h):
				t.Errorf("grafana: home dashboard %s (%s in the repository) does not exist", home, h)
			}
		}
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestComposePorts checks every mapping parses (while loading) and binds
// to an address, and that no host port is published twice in a stack.
func TestComposePorts(t *testing.T) {
	f := loadCompose(t)
	for name, s := range f.Services {
		for _, p := range s.Ports {
			if p.HostIP == "" {
				t.Errorf("service %s: port %s publishes on every interface; use ${BIND:-127.0.0.1}:HOST:CONTAINER", name, p.raw)
			}
		}
	}
	for _, p := range profiles {
		owner := map[string]string{}
		for name, s := range f.stack(p) {
			for _, port := range s.Ports {
				key := port.Published + "/" + port.Protocol
				if other, ok := owner[key]; ok {
					t.Errorf("profile %s: host port %s is published by both %s and %s", p, key, other, name)
				}
				owner[key] = name
			}
		}
	}
}

// TestComposeProfilesComplete checks each profile is a whole stack.
func TestComposeProfilesComplete(t *testing.T) {
	f := loadCompose(t)
	for _, p := range profiles {
		stack := f.stack(p)
		for _, want := range []string{"prometheus", "grafana", "alertmanager"} {
			if _, ok := stack[want]; !ok {
				t.Errorf("profile %s: no %s service", p, want)
			}
		}
		if _, ok := resolve(stack, "loadgen"); !ok {
			t.Errorf("profile %s: nothing is reachable as loadgen", p)
		}
		name, ok := resolve(stack, "vllm")
		switch {
		case !ok:
			t.Errorf("profile %s: nothing is reachable as vllm", p)
		case !slices.Contains(stack[name].containerPorts(), 8000):
			t.Errorf("profile %s: %s (vllm) does not serve container port 8000", p, name)
		}
	}
}

// TestComposePrometheusTargets checks every host Prometheus scrapes or
// alerts is a service of the stack, on a port it serves. In the sim
// profile energy comes from the simulator, so the GPU exporters may be
// missing there.
func TestComposePrometheusTargets(t *testing.T) {
	f := loadCompose(t)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
	}
	readYAML(t, "prometheus/prometheus.yml", &cfg)
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, st := range am.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	if len(targets) == 0 {
		t.Fatal("prometheus.yml has no static targets")
	}
	gpuOnly := []string{"dcgm-exporter", "energy-exporter"}
	for _, target := range targets {
		host, portStr, err := net.SplitHostPort(target)
		if err != nil {
			t.Errorf("prometheus.yml target %q: %v", target, err)
			continue
		}
		port, _ := strconv.Atoi(portStr)
		for _, p := range profiles {
			if p == "sim" && slices.Contains(gpuOnly, host) {
				continue
			}
			stack := f.stack(p)
			name, ok := resolve(stack, host)
			if !ok {
				t.Errorf("profile %s: prometheus.yml target %s: no service or alias %q", p, target, host)
				continue
			}
			if !slices.Contains(stack[name].containerPorts(), port) {
				t.Errorf("profile %s: prometheus.yml target %s: service %s publishes or exposes no container port %d", p, target, name, port)
			}
		}
	}
}

// TestDockerfile checks, as text, that the image builds both commands
// with cgo and a Go at least as new as go.mod's.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"CGO_ENABLED=1",
		"go build -trimpath",
		"./cmd/loadgen",
		"./cmd/energy-exporter",
		"go mod download",
		"ARG RUNTIME_IMAGE=",
		`ENTRYPOINT ["loadgen"]`,
		"/usr/local/bin",
		"USER ",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(df, "CGO_ENABLED=0") {
		t.Error("Dockerfile sets CGO_ENABLED=0: go-dcgm and go-nvml need cgo")
	}
	// go.mod's go directive, e.g. "go 1.26.8", wants a golang:1.26 builder.
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]); !strings.Contains(df, want) {
		t.Errorf("Dockerfile does not build with %s (go.mod says go %s)", want, m[1])
	}

	// .dockerignore must keep what the build copies.
	ignore, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		pattern := strings.TrimSuffix(strings.TrimSpace(line), "/")
		if pattern == "" || strings.HasPrefix(pattern, "#") || strings.HasPrefix(pattern, "!") {
			continue
		}
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "cmd/loadgen", "cmd/energy-exporter", "configs", "exporter", "loadgen", "backends", "internal", "report"} {
			if ok, _ := filepath.Match(pattern, needed); ok {
				t.Errorf(".dockerignore %q excludes %s, which the build needs", line, needed)
			}
		}
	}
}

// amtool returns the path of amtool on PATH. A missing binary skips the
// test with a hint, or fails it when CI is set, so that CI cannot pass by
// skipping (the convention of internal/promtest).
func amtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("amtool")
	if err == nil {
		return p
	}
	msg := "amtool not found on PATH: install the Debian package prometheus-alertmanager"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func TestAlertmanagerConfig(t *testing.T) {
	// Alert names in the routing and inhibit rules must be alerts that
	// exist, or the rules silently match nothing.
	am, err := os.ReadFile("alertmanager/alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("prometheus/rules/tokenwatt.alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllSubmatch(rules, -1) {
		defined[string(m[1])] = true
	}
	name := regexp.MustCompile(`\bTokenwatt[A-Za-z0-9]+`)
	for i, line := range strings.Split(string(am), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, n := range name.FindAllString(line, -1) {
			if !defined[n] {
				t.Errorf("alertmanager/alertmanager.yml:%d: %s is not an alert in prometheus/rules/tokenwatt.alerts.yml", i+1, n)
			}
		}
	}

	bin := amtool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check-config", "alertmanager/alertmanager.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("amtool check-config alertmanager/alertmanager.yml: %v\n%s", err, out)
	}
}
