//go:build linux && cgo

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub/dcgmstub"
	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

// The built binary against the stand-in libdcgm.so.4 of
// internal/gpustub/dcgmstub: go-dcgm's real cgo path, with the symbols
// of each DCGM 4.x release. Only the binary loads the stand-in.

// standInGPUs are three GPUs of two models with different power draws.
var standInGPUs = []dcgmstub.GPU{
	{UUID: "GPU-5a1e0000-0000-0000-0000-000000000000", Name: "NVIDIA H100 80GB HBM3", PowerW: 312.5, PowerLimitW: 700},
	{UUID: "GPU-5a1e0000-0000-0000-0000-000000000001", Name: "NVIDIA H100 80GB HBM3", PowerW: 95, PowerLimitW: 700},
	{UUID: "GPU-5a1e0000-0000-0000-0000-000000000002", Name: "NVIDIA L4", PowerW: 41.25, PowerLimitW: 72},
}

// exporterRun is the binary running against the stand-in.
type exporterRun struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// startOnStandIn starts the binary with args against the stand-in built
// as version and configured as node, and, when nvml is not nil, the
// stand-in NVML (nvmlstub) configured as *nvml.
func startOnStandIn(t *testing.T, version string, node dcgmstub.Node, nvml *nvmlstub.Node, args ...string) (*exporterRun, dcgmstub.Controls) {
	t.Helper()
	bin := buildExporter(t)
	libs := dcgmstub.Build(t, version)
	ctl := node.Write(t, t.TempDir())
	env := append(childEnv(), ctl.Env(libs)...)
	if nvml != nil {
		stub, err := nvml.Write(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		libs += ":" + nvmlstub.Build(t)
		env = append(env, stub.Env(libs)...) // its LD_LIBRARY_PATH, both libraries', wins
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &exporterRun{url: "http://" + addr + "/metrics", stderr: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, append(args, "--listen", addr, "--interval", "100ms")...)
	r.cmd.Env = env
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		<-r.exited
	})
	return r, ctl
}

// childEnv is this process's environment without what would change
// which GPUs the binary picks or how it labels them.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUDA_VISIBLE_DEVICES=") && !strings.HasPrefix(kv, "NODE_NAME=") {
			out = append(out, kv)
		}
	}
	return out
}

// poll GETs /metrics until ok accepts the body, failing at once if the
// process exits (127: a symbol its libdcgm.so.4 lacks).
func (r *exporterRun) poll(t *testing.T, what string, ok func(body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var body string
	for {
		select {
		case <-r.exited:
			t.Fatalf("exited (%v) before %s; stderr:\n%s", r.err, what, r.stderr)
		default:
		}
		if resp, err := http.Get(r.url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if ok(body) {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 20 s; body:\n%s\nstderr:\n%s", what, body, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and wants a clean exit.
func (r *exporterRun) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.exited:
		if r.err != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", r.err, r.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM\n%s", r.stderr)
	}
}

// gpuLine is a GPU's series of metric, as the exporter labels it.
func gpuLine(metric string, i int, g dcgmstub.GPU, hostname string) string {
	return fmt.Sprintf(`%s{gpu="%d",gpu_model="%s",hostname="%s",uuid="%s"}`, metric, i, g.Name, hostname, g.UUID)
}

// servesEveryGPU tells whether body has every GPU's energy and its
// power as configured.
func servesEveryGPU(body, hostname string) bool {
	for i, g := range standInGPUs {
		if !strings.Contains(body, gpuLine("tokenwatt_gpu_energy_joules_total", i, g, hostname)+" ") ||
			!strings.Contains(body, gpuLine("tokenwatt_gpu_power_watts", i, g, hostname)+fmt.Sprintf(" %g\n", g.PowerW)) {
			return false
		}
	}
	return true
}

// On every DCGM 4.x, dcgm and auto serve every GPU with its UUID, model
// and power; on 4.0 the process used to die of dcgmGetGpuStatus (exit
// 127) before auto could try anything else.
func TestBinaryOnEveryDCGM4(t *testing.T) {
	host, _ := os.Hostname()
	for _, version := range []string{dcgmstub.V40, dcgmstub.V45, dcgmstub.V46} {
		for _, source := range []string{"dcgm", "auto"} {
			t.Run(version+"/"+source, func(t *testing.T) {
				r, _ := startOnStandIn(t, version, dcgmstub.Node{GPUs: standInGPUs}, nil, "--source", source)
				r.poll(t, "serving every GPU", func(b string) bool { return servesEveryGPU(b, host) })
				r.poll(t, "counting energy", func(b string) bool {
					return !strings.Contains(b, gpuLine("tokenwatt_gpu_energy_joules_total", 0, standInGPUs[0], host)+" 0\n")
				})
				r.stop(t)
				for _, want := range []string{"DCGM " + version, "dcgm, 3 GPU(s) chosen by all (", "), method counter"} {
					if !strings.Contains(r.stderr.String(), want) {
						t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
					}
				}
			})
		}
	}
}

// A library too old, or DCGM that does not start, is refused with one
// line that says why; auto says so and goes on to nvml (absent here).
func TestBinaryRefusesDCGMItCannotUse(t *testing.T) {
	skipOnGPUHost(t)
	for _, tc := range []struct {
		name string
		node dcgmstub.Node
		args []string
		want []string
	}{
		{"too old", dcgmstub.Node{Version: "3.3.9"}, []string{"--source", "dcgm"},
			[]string{"dcgm: ", "3.3.9", "4.0.0 or newer"}},
		{"too old, auto", dcgmstub.Node{Version: "3.3.9"}, []string{"--source", "auto"},
			[]string{"energy: auto chose none: dcgm: ", "3.3.9", "4.0.0 or newer", "; nvml: libnvidia-ml.so.1 not found"}},
		{"does not start, auto", dcgmstub.Node{StartError: -7}, []string{"--source", "auto"},
			[]string{"energy: auto chose none: dcgm: cannot start DCGM embedded", "DCGM Initialization Error", "; nvml: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.GPUs = standInGPUs
			r, _ := startOnStandIn(t, dcgmstub.V40, tc.node, nil, tc.args...)
			select {
			case <-r.exited:
			case <-time.After(20 * time.Second):
				t.Fatalf("still running after 20 s:\n%s", r.stderr)
			}
			var ee *exec.ExitError
			if !errors.As(r.err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("exit: %v, want status 2 (127 is a missing symbol)\n%s", r.err, r.stderr)
			}
			wantOneErrorLine(t, r.stderr.String(), tc.want...)
		})
	}
}

// A remote nv-hostengine (--dcgm-addr) that goes down: the source is
// down (tokenwatt_energy_source_up 0), its GPUs leave /metrics (not
// frozen at their last value) and the loss is logged; once it is up
// again the exporter reconnects by itself and serves them.
func TestBinaryReconnectsToRemoteHostEngine(t *testing.T) {
	for _, version := range []string{dcgmstub.V40, dcgmstub.V45} {
		t.Run(version, func(t *testing.T) {
			r, ctl := startOnStandIn(t, version, dcgmstub.Node{GPUs: standInGPUs}, nil, "--source", "dcgm", "--dcgm-addr", "127.0.0.1:5555")
			host, _ := os.Hostname()
			r.poll(t, "serving every GPU", func(b string) bool { return servesEveryGPU(b, host) })
			ctl.SetDown(true)
			r.poll(t, "marking the source down while the host engine is down", func(b string) bool {
				return strings.Contains(b, `tokenwatt_energy_source_up{source="dcgm"} 0`+"\n") &&
					!strings.Contains(b, "tokenwatt_gpu_energy_joules_total{")
			})
			ctl.SetDown(false)
			r.poll(t, "serving every GPU after the host engine is back", func(b string) bool {
				return servesEveryGPU(b, host) && strings.Contains(b, `tokenwatt_energy_source_up{source="dcgm"} 1`+"\n")
			})
			r.stop(t)
			log := r.stderr.String()
			for _, want := range []string{"127.0.0.1:5555", "reconnected"} {
				if !strings.Contains(log, want) {
					t.Errorf("stderr does not say %q:\n%s", want, log)
				}
			}
		})
	}
}

// With a DCGM it cannot use and NVML present, auto says why not DCGM
// and serves NVML's GPUs (before, DCGM 4.0 killed the process first).
func TestBinaryAutoGoesOnToNVML(t *testing.T) {
	for _, tc := range []struct {
		name string
		node dcgmstub.Node
		why  string
	}{
		{"too old", dcgmstub.Node{Version: "3.3.9"}, "4.0.0 or newer"},
		{"does not start", dcgmstub.Node{StartError: -7}, "cannot start DCGM embedded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.node.GPUs = standInGPUs
			nvml := nvmlstub.Node{GPUs: []nvmlstub.GPU{{Name: "NVIDIA L4", PowerW: 33.5}, {Name: "NVIDIA L4", PowerW: 44}}}
			r, _ := startOnStandIn(t, dcgmstub.V40, tc.node, &nvml, "--source", "auto")
			host, _ := os.Hostname()
			r.poll(t, "serving NVML's GPUs", func(b string) bool {
				for i, g := range nvml.GPUs {
					series := fmt.Sprintf(`tokenwatt_gpu_power_watts{gpu="%d",gpu_model="NVIDIA L4",hostname="%s",uuid="%s"} %g`, i, host, nvmlstub.DefaultUUID(i), g.PowerW)
					if !strings.Contains(b, series+"\n") {
						return false
					}
				}
				return true
			})
			r.stop(t)
			for _, want := range []string{"energy: auto chose nvml: 2 GPU(s)", "; not dcgm: ", tc.why} {
				if !strings.Contains(r.stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}

// A GPU without an energy counter is served, its energy integrated from
// its power, beside the others' counters (method mixed).
func TestBinaryServesAGPUWithoutEnergyCounter(t *testing.T) {
	gpus := slices.Clone(standInGPUs)
	gpus[1].NoEnergyCounter = true
	r, _ := startOnStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: gpus}, nil, "--source", "dcgm")
	host, _ := os.Hostname()
	integrated := gpuLine("tokenwatt_gpu_energy_joules_total", 1, gpus[1], host) + " "
	body := r.poll(t, "serving every GPU", func(b string) bool { return servesEveryGPU(b, host) })
	r.poll(t, "integrating gpu 1's power", func(b string) bool {
		i := strings.Index(b, integrated)
		return i >= 0 && !strings.HasPrefix(b[i+len(integrated):], "0\n")
	})
	r.stop(t)
	if !strings.Contains(body, `tokenwatt_energy_exporter_info{method="mixed",source="dcgm",version="dev"} 1`) {
		t.Errorf("method is not mixed:\n%s", body)
	}
}
