// Package dcgmstub builds a stand-in libdcgm.so.4 from C, for tests of
// the dcgm energy source's real cgo path (go-dcgm, dlopen, the symbols a
// DCGM release exports), and writes the configuration and the controls
// that the stand-in reads.
//
// The stand-in answers from a configuration file: GPUs with a UUID, a
// name, a constant power draw and power limit, an energy counter or not,
// MIG mode. Files beside the configuration change a running process: a
// GPU lost, a GPU hung, the host engine down, a one-off glitch.
//
// A test process must never load the stand-in itself (go-dcgm keeps
// process-wide state, and other tests expect no DCGM): run the program
// under test as a child with Controls.Env in its environment.
//
// Building needs a C compiler (go env CC) and go-dcgm's headers, found
// with `go list -m` from the module the test runs in. It must not depend
// on any package of this module.
package dcgmstub

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub"
)

// LibName is the library the stand-in replaces.
const LibName = "libdcgm.so.4"

// ConfigEnv names the environment variable that holds the configuration
// file's path.
const ConfigEnv = "DCGMSTUB_CONFIG"

// DCGM releases the stand-in can be built as. Each exports the symbols
// that tokenwatt's go-dcgm calls need and that the release has, and no
// symbol the release lacks.
const (
	// V40 is DCGM 4.0: no dcgmGetGpuStatus (so no go-dcgm
	// GetDeviceInfo), no field 1611.
	V40 = "4.0"
	// V45 is DCGM 4.5: adds dcgmGetGpuStatus, and the
	// dcgmGetDeviceTopology that GetDeviceInfo calls after it.
	V45 = "4.5"
	// V46 is DCGM 4.6: adds field 1611 (DCGM_FI_DEV_GPU_ENERGY_JOULES_TOTAL).
	V46 = "4.6"
)

// releases maps each version to its minor number and the version
// dcgmVersionInfo reports.
var releases = map[string]struct {
	minor  int
	report string
}{
	V40: {0, "4.0.0"},
	V45: {5, "4.5.0"},
	V46: {6, "4.6.0"},
}

//go:embed csrc/dcgmstub.c
var source []byte

var (
	buildMu sync.Mutex
	built   = map[string]string{} // version -> directory of its libdcgm.so.4
)

// Build compiles the stand-in as DCGM version (V40, V45 or V46) and
// returns the directory that holds its libdcgm.so.4, for LD_LIBRARY_PATH.
// Builds are cached by content across test processes, and per process.
func Build(t testing.TB, version string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if dir, ok := built[version]; ok {
		return dir
	}
	dir, err := build(version)
	if err != nil {
		t.Fatalf("dcgmstub: build %s: %v", version, err)
	}
	built[version] = dir
	return dir
}

func build(version string) (string, error) {
	rel, ok := releases[version]
	if !ok {
		return "", fmt.Errorf("unknown version %q (known: %s, %s, %s)", version, V40, V45, V46)
	}
	mod, err := gpustub.ModuleDir("github.com/NVIDIA/go-dcgm")
	if err != nil {
		return "", fmt.Errorf("find go-dcgm's headers: %w", err)
	}
	include := filepath.Join(mod, "pkg", "dcgm")
	if _, err := os.Stat(filepath.Join(include, "dcgm_agent.h")); err != nil {
		return "", fmt.Errorf("go-dcgm's headers: %w", err)
	}
	return gpustub.Library("dcgmstub-"+version, LibName, source,
		"-fvisibility=hidden", "-DDCGM_API_EXPORT",
		"-DSTUB_MINOR="+strconv.Itoa(rel.minor),
		`-DSTUB_VERSION="`+rel.report+`"`,
		"-I", include, "-lpthread")
}

// GPU is one stand-in GPU.
type GPU struct {
	UUID string // DCGM_FI_DEV_UUID, e.g. GPU-8f2c...
	Name string // DCGM_FI_DEV_NAME, e.g. NVIDIA H100 80GB HBM3
	// PowerW is its constant power draw, watts (fields 155 and 157). Its
	// energy counter (field 156, mJ; 1611, J, on V46) is PowerW times
	// the time since the node's T0.
	PowerW float64
	// PowerLimitW is its enforced power limit (fields 160 and 164); 0
	// answers DCGM's "not supported".
	PowerLimitW float64
	// NoEnergyCounter: fields 156 and 1611 answer DCGM's "not supported"
	// sentinel, as on GPUs older than Volta.
	NoEnergyCounter bool
	// NoInstantPower: field 157 answers "not supported"; 155 still
	// gives power.
	NoInstantPower bool
	// MIG: MIG mode is on (field 67).
	MIG bool
}

// Node is the stand-in's configuration: the GPUs of one host and how its
// DCGM starts.
type Node struct {
	GPUs []GPU
	// T0 is when every energy counter was zero; the zero Time means
	// when Write runs.
	T0 time.Time
	// Version, when set, is what dcgmVersionInfo reports instead of the
	// build's version (e.g. "3.3.9", or something unparsable).
	Version string
	// StartError, when not 0, is the DCGM status (e.g. -7,
	// DCGM_ST_INIT_ERROR) that dcgmStartEmbedded and dcgmConnect_v2
	// return.
	StartError int
}

// Write writes n's configuration into dir, which then holds the
// controls too, and returns them.
func (n Node) Write(t testing.TB, dir string) Controls {
	t.Helper()
	t0 := n.T0
	if t0.IsZero() {
		t0 = time.Now()
	}
	var b strings.Builder
	line := func(fields ...string) {
		for _, f := range fields {
			if strings.ContainsAny(f, "\t\n") {
				t.Fatalf("dcgmstub: %q: no tabs or newlines in the configuration", f)
			}
		}
		b.WriteString(strings.Join(fields, "\t") + "\n")
	}
	if n.Version != "" {
		line("version", n.Version)
	}
	line("t0_us", strconv.FormatInt(t0.UnixMicro(), 10))
	if n.StartError != 0 {
		line("start_error", strconv.Itoa(n.StartError))
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	for _, g := range n.GPUs {
		line("gpu", g.UUID, g.Name, formatFloat(g.PowerW), formatFloat(g.PowerLimitW),
			flag(!g.NoEnergyCounter), flag(!g.NoInstantPower), flag(g.MIG))
	}
	c := Controls{t: t, dir: dir}
	c.write("config", b.String())
	return c
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Controls change what a running stand-in answers. Each is a file beside
// the configuration, which the stand-in looks at on every call.
type Controls struct {
	t   testing.TB
	dir string
}

// FromEnv is, in the child process, the controls of the configuration
// that $DCGMSTUB_CONFIG names.
func FromEnv(t testing.TB) Controls {
	t.Helper()
	path := os.Getenv(ConfigEnv)
	if path == "" {
		t.Fatalf("dcgmstub: %s is not set", ConfigEnv)
	}
	return Controls{t: t, dir: filepath.Dir(path)}
}

// Env is the environment a child process needs to load the stand-in in
// libDir (from Build) with this configuration: append it to os.Environ().
func (c Controls) Env(libDir string) []string {
	return []string{"LD_LIBRARY_PATH=" + libDir, ConfigEnv + "=" + filepath.Join(c.dir, "config")}
}

// SetLost makes GPU gpu's reads fail with DCGM_ST_GPU_IS_LOST, or
// answer again.
func (c Controls) SetLost(gpu int, lost bool) { c.set(fmt.Sprintf("lost-%d", gpu), lost, "") }

// SetHung makes every read of GPU gpu take d before it answers; 0 ends
// that, and lets reads that hang now return.
func (c Controls) SetHung(gpu int, d time.Duration) {
	c.set(fmt.Sprintf("hung-%d", gpu), d > 0, strconv.FormatInt(d.Milliseconds(), 10))
}

// SetDown stops the host engine that dcgmConnect_v2 connects to: every
// call on the connection fails with DCGM_ST_CONNECTION_NOT_VALID and
// its groups and watches are gone; no connection can be made until it
// is up again. Embedded DCGM is not affected.
func (c Controls) SetDown(down bool) { c.set("down", down, "") }

// SetBlank makes GPU gpu's energy and power blank (DCGM has not sampled
// them yet), or real again.
func (c Controls) SetBlank(gpu int, blank bool) { c.set(fmt.Sprintf("blank-%d", gpu), blank, "") }

// Glitch makes the next read of GPU gpu's energy counter 1e9 J too high,
// once.
func (c Controls) Glitch(gpu int) { c.set(fmt.Sprintf("glitch-%d", gpu), true, "") }

// GlitchPending reports whether a Glitch of GPU gpu has not been read yet.
func (c Controls) GlitchPending(gpu int) bool {
	_, err := os.Stat(filepath.Join(c.dir, fmt.Sprintf("glitch-%d", gpu)))
	return err == nil
}

func (c Controls) set(name string, on bool, content string) {
	c.t.Helper()
	if on {
		c.write(name, content)
		return
	}
	if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		c.t.Fatalf("dcgmstub: %v", err)
	}
}

// write replaces a file at once, so that the stand-in never reads half.
func (c Controls) write(name, content string) {
	c.t.Helper()
	f, err := os.CreateTemp(c.dir, "."+name+"-")
	if err == nil {
		_, err = f.WriteString(content)
		err = errors.Join(err, f.Close())
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(c.dir, name))
		}
	}
	if err != nil {
		c.t.Fatalf("dcgmstub: write %s: %v", name, err)
	}
}
