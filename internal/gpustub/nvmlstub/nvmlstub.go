// Package nvmlstub is a stand-in libnvidia-ml.so.1 for tests: a small C
// library (c/nvml_stub.c), compiled with gcc against go-nvml's nvml.h,
// that answers the NVML calls the energy package makes as a node of
// configured GPUs would: constant power, an energy counter that advances
// with wall time, compute processes, MIG devices, and faults switched on
// while a process runs (a lost or hung GPU, a glitch, a failing counter,
// a new power draw).
//
// The library is loaded by a child process (a built binary, or the test
// binary run again) with the environment Stub.Env gives it; the test
// process that configures it must never load it itself, since NVML
// cannot be unloaded cleanly and every other test would then see GPUs.
//
// The package has no cgo and depends only on the standard library.
package nvmlstub

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub"
)

//go:embed c/nvml_stub.c
var source []byte

// LibName is the file Build makes: the name go-nvml dlopens.
const LibName = "libnvidia-ml.so.1"

// ConfigEnv names the configuration file for the library.
const ConfigEnv = "NVMLSTUB_CONFIG"

// NVML return codes (nvml.h) for FailEnergy.
const (
	NotSupported = 3
	Timeout      = 10
	GPUIsLost    = 15
	Unknown      = 999
)

// GPU is one stand-in GPU. Its zero value is a modern GPU with an energy
// counter and the instantaneous power field, idle at 0 W.
type GPU struct {
	UUID        string  // default GPU-0000…-<index>
	Name        string  // default "NVIDIA H100 80GB HBM3"
	PowerW      float64 // constant draw until SetPower
	PowerLimitW float64 // enforced power limit; default 700
	// NoEnergyCounter: nvmlDeviceGetTotalEnergyConsumption says
	// NOT_SUPPORTED (GPUs before Volta).
	NoEnergyCounter bool
	// NoInstantPower: the driver lacks NVML_FI_DEV_POWER_INSTANT.
	NoInstantPower bool
	// Processes is how many compute processes the GPU itself lists.
	Processes int
	// MIG: MIG mode is on; MIGDevices are its instances (at most 7).
	MIG        bool
	MIGDevices []MIGDevice
}

// MIGDevice is a MIG instance of a GPU.
type MIGDevice struct {
	UUID      string // MIG-…
	Processes int    // compute processes listed on the instance's handle
}

// Node is the GPUs of one host, in NVML index order.
type Node struct {
	GPUs []GPU
	// T0 is when every energy counter read 0; zero means when Write ran.
	T0 time.Time
}

// Stub is a written configuration: the library's answers and the
// controls that change them at run time.
type Stub struct {
	Config string // the configuration file; controls lie beside it
}

// DefaultUUID is the UUID of GPU i when its UUID is not set.
func DefaultUUID(i int) string { return fmt.Sprintf("GPU-00000000-0000-4000-8000-%012d", i) }

// Write writes the configuration into dir (which should hold nothing
// else: controls are files beside it).
func (n Node) Write(dir string) (Stub, error) {
	t0 := n.T0
	if t0.IsZero() {
		t0 = time.Now()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "t0 %.9f\n", unixSeconds(t0))
	for i, g := range n.GPUs {
		if g.UUID == "" {
			g.UUID = DefaultUUID(i)
		}
		if g.Name == "" {
			g.Name = "NVIDIA H100 80GB HBM3"
		}
		if g.PowerLimitW == 0 {
			g.PowerLimitW = 700
		}
		if strings.ContainsAny(g.UUID, " \t\n") || strings.Contains(g.Name, "\n") || len(g.MIGDevices) > 7 {
			return Stub{}, fmt.Errorf("nvmlstub: gpu %d: UUID %q or name %q not on one line, or more than 7 MIG devices", i, g.UUID, g.Name)
		}
		fmt.Fprintf(&b, "gpu %s %g %g %d %d %d %d %s\n", g.UUID, g.PowerW, g.PowerLimitW,
			flag(!g.NoEnergyCounter), flag(!g.NoInstantPower), g.Processes, flag(g.MIG), g.Name)
		for _, m := range g.MIGDevices {
			fmt.Fprintf(&b, "mig %s %d\n", m.UUID, m.Processes)
		}
	}
	s := Stub{Config: filepath.Join(dir, "nvml.conf")}
	return s, writeFile(s.Config, b.String())
}

// FromEnv is the Stub that ConfigEnv names, for a child process that
// changes the GPUs it reads.
func FromEnv() (Stub, error) {
	c := os.Getenv(ConfigEnv)
	if c == "" {
		return Stub{}, errors.New("nvmlstub: " + ConfigEnv + " is not set")
	}
	return Stub{Config: c}, nil
}

// Env is the environment that makes a process load the stand-in in libDir
// (from Build) with this configuration.
func (s Stub) Env(libDir string) []string {
	return []string{"LD_LIBRARY_PATH=" + libDir, ConfigEnv + "=" + s.Config}
}

// Shutdowns lists, for each time the library was shut down for good
// (nvmlShutdown balancing the last nvmlInit), how many calls a Hang held
// at that moment: 0 means the shutdown waited for them.
func (s Stub) Shutdowns() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(s.Config), "shutdowns"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var n []int
	for _, f := range strings.Fields(string(b)) {
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("nvmlstub: shutdowns: %w", err)
		}
		n = append(n, v)
	}
	return n, nil
}

// Lose makes every call on GPU gpu fail with NVML_ERROR_GPU_IS_LOST.
func (s Stub) Lose(gpu int) error { return s.set(gpu, "lost", "") }

// Hang makes every call on GPU gpu sleep d first.
func (s Stub) Hang(gpu int, d time.Duration) error {
	return s.set(gpu, "hang", strconv.FormatInt(d.Milliseconds(), 10))
}

// Glitch makes the next energy read of GPU gpu return an absurd value (a
// billion joules more than the counter).
func (s Stub) Glitch(gpu int) error { return s.set(gpu, "glitch", "") }

// FailEnergy makes GPU gpu's energy reads fail with the NVML return code
// ret until Heal.
func (s Stub) FailEnergy(gpu, ret int) error {
	return s.set(gpu, "energy_error", strconv.Itoa(ret))
}

// Heal undoes Lose, Hang and FailEnergy (a call already asleep in a hang
// sleeps on).
func (s Stub) Heal(gpu int) error {
	for _, c := range []string{"lost", "hang", "energy_error"} {
		if err := os.Remove(s.control(gpu, c)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// SetPower makes GPU gpu draw w watts from now on; its energy counter
// goes on from where it is.
func (s Stub) SetPower(gpu int, w float64) error {
	now := unixSeconds(time.Now())
	mJ, cur, err := s.energyAt(gpu, now)
	if err != nil {
		return err
	}
	return s.set(gpu, "power", fmt.Sprintf("%.9f %.6f %g %g", now, mJ, w, cur))
}

// energyAt is GPU gpu's counter (mJ) at t and its power then, as the C
// library computes them.
func (s Stub) energyAt(gpu int, t float64) (mJ, w float64, err error) {
	if b, err := os.ReadFile(s.control(gpu, "power")); err == nil {
		var ts, e, after, before float64
		if _, err := fmt.Sscan(string(b), &ts, &e, &after, &before); err != nil {
			return 0, 0, fmt.Errorf("nvmlstub: %s: %w", s.control(gpu, "power"), err)
		}
		return e + after*(t-ts)*1000, after, nil
	}
	t0, w, err := s.configured(gpu)
	return w * (t - t0) * 1000, w, err
}

// configured is the configuration's t0 and GPU gpu's power.
func (s Stub) configured(gpu int) (t0, w float64, err error) {
	f, err := os.Open(s.Config)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 2 && fields[0] == "t0":
			t0, err = strconv.ParseFloat(fields[1], 64)
		case len(fields) > 2 && fields[0] == "gpu":
			if n == gpu {
				w, err = strconv.ParseFloat(fields[2], 64)
				return t0, w, err
			}
			n++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return 0, 0, fmt.Errorf("nvmlstub: %s has no gpu %d", s.Config, gpu)
}

func (s Stub) control(gpu int, name string) string {
	return filepath.Join(filepath.Dir(s.Config), fmt.Sprintf("gpu%d.%s", gpu, name))
}

func (s Stub) set(gpu int, name, content string) error {
	return writeFile(s.control(gpu, name), content+"\n")
}

// writeFile replaces path whole, so that the library never reads half a
// file.
func writeFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// Build compiles the stand-in once per process and returns the directory
// that holds it (and nothing else), for LD_LIBRARY_PATH. It needs gcc and
// go-nvml's nvml.h from the module cache; t fails without them.
func Build(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.dir, built.err = build() })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// build compiles the library against go-nvml's nvml.h from the module
// cache, once per content (gpustub.Library).
func build() (string, error) {
	mod, err := gpustub.ModuleDir("github.com/NVIDIA/go-nvml")
	if err != nil {
		return "", fmt.Errorf("nvmlstub: find go-nvml's nvml.h: %w", err)
	}
	include := filepath.Join(mod, "pkg", "nvml")
	if _, err := os.Stat(filepath.Join(include, "nvml.h")); err != nil {
		return "", fmt.Errorf("nvmlstub: %w", err)
	}
	dir, err := gpustub.Library("nvmlstub", LibName, source,
		"-std=gnu11", "-DNVML_NO_UNVERSIONED_FUNC_DEFS=1", "-I", include, "-Wl,-soname,"+LibName)
	if err != nil {
		return "", fmt.Errorf("nvmlstub: %w", err)
	}
	return dir, nil
}
