//go:build linux && cgo

package energy

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/gpustub/dcgmstub"
	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

// These tests run the dcgm source through go-dcgm's real cgo path,
// against the stand-in libdcgm.so.4 of internal/gpustub/dcgmstub. The
// stand-in is loaded only by a child process (this test binary run
// again for one test, with LD_LIBRARY_PATH): this process never loads
// it, so the tests that expect no DCGM here still hold.

// dcgmChildEnv names the test a child process runs inside the stand-in.
const dcgmChildEnv = "TOKENWATT_DCGMSTUB_CHILD"

// inDCGMStandIn runs child in a child process that loads the stand-in
// built as version and configured as node, and, when nvml is not nil,
// the stand-in NVML (nvmlstub) configured as *nvml; the parent fails
// with the child's output if the child fails or dies (exit 127 is a
// missing symbol).
func inDCGMStandIn(t *testing.T, version string, node dcgmstub.Node, nvml *nvmlstub.Node, child func(t *testing.T, c dcgmstub.Controls)) {
	t.Helper()
	if os.Getenv(dcgmChildEnv) == t.Name() {
		child(t, dcgmstub.FromEnv(t))
		return
	}
	libs := dcgmstub.Build(t, version)
	env := append(os.Environ(), "CUDA_VISIBLE_DEVICES=", dcgmChildEnv+"="+t.Name())
	env = append(env, node.Write(t, t.TempDir()).Env(libs)...)
	if nvml != nil {
		stub, err := nvml.Write(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		libs += ":" + nvmlstub.Build(t)
		env = append(env, stub.Env(libs)...) // its LD_LIBRARY_PATH, both libraries', wins
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1", "-test.v", "-test.timeout=100s")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("child in the DCGM %s stand-in (%v):\n%s", version, err, out)
	}
	if testing.Verbose() {
		t.Logf("child in the DCGM %s stand-in:\n%s", version, out)
	}
}

// h100s are n stand-in GPUs with different power draws.
func h100s(n int) []dcgmstub.GPU {
	gpus := make([]dcgmstub.GPU, n)
	for i := range gpus {
		gpus[i] = dcgmstub.GPU{
			UUID: fmt.Sprintf("GPU-%08d-aaaa-bbbb-cccc-%012d", i, i), Name: "NVIDIA H100 80GB HBM3",
			PowerW: 100 + 50*float64(i), PowerLimitW: 700,
		}
	}
	return gpus
}

// openStandIn opens the dcgm source in the child.
func openStandIn(t *testing.T, opts SourceOptions) Source {
	t.Helper()
	if opts.Interval == 0 {
		opts.Interval = 100 * time.Millisecond
	}
	src, _, err := OpenSource(t.Context(), SourceDCGM, opts)
	if err != nil {
		t.Fatalf("OpenSource(dcgm): %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// Eight GPUs, each with its own power: every one is found with its UUID,
// model, power limit and MIG mode, and its power and the rate of its
// energy counter (over the readings' own timestamps) are its draw,
// within 2 %. On DCGM 4.0 go-dcgm's GetDeviceInfo would kill the process
// (dcgmGetGpuStatus is new in 4.5).
func TestDCGMStandInEightGPUs(t *testing.T) {
	gpus := h100s(8)
	gpus[3].MIG = true
	gpus[5].NoInstantPower = true // power from field 155 instead
	for _, version := range []string{dcgmstub.V40, dcgmstub.V46} {
		t.Run(version, func(t *testing.T) {
			inDCGMStandIn(t, version, dcgmstub.Node{GPUs: gpus}, nil, func(t *testing.T, _ dcgmstub.Controls) {
				src := openStandIn(t, SourceOptions{GPUs: GPUsAll, Hostname: "node-7"})
				if src.Method() != MethodCounter {
					t.Errorf("Method = %s, want counter", src.Method())
				}
				devs := src.Devices()
				if len(devs) != len(gpus) {
					t.Fatalf("%d devices, want %d: %+v", len(devs), len(gpus), devs)
				}
				for i, d := range devs {
					want := Device{Index: i, UUID: gpus[i].UUID, Model: gpus[i].Name, Hostname: "node-7", MIG: gpus[i].MIG, PowerLimitW: 700}
					if d != want {
						t.Errorf("device %d = %+v, want %+v", i, d, want)
					}
				}
				first := mustRead(t, src)
				time.Sleep(500 * time.Millisecond)
				second := mustRead(t, src)
				for i := range gpus {
					a, b := first[i], second[i]
					if a.Err != nil || b.Err != nil {
						t.Errorf("gpu %d: %v, %v", i, a.Err, b.Err)
						continue
					}
					if !within(b.PowerW, gpus[i].PowerW) {
						t.Errorf("gpu %d: power %v W, want %v", i, b.PowerW, gpus[i].PowerW)
					}
					rate := (b.EnergyJ - a.EnergyJ) / b.Time.Sub(a.Time).Seconds()
					if !within(rate, gpus[i].PowerW) {
						t.Errorf("gpu %d: energy %v J then %v J over %v: %v W, want %v W", i, a.EnergyJ, b.EnergyJ, b.Time.Sub(a.Time), rate, gpus[i].PowerW)
					}
				}
			})
		})
	}
}

// A GPU without an energy counter (DCGM's explicit NOT_SUPPORTED) gives
// power only and is the only one integrated; the source is mixed.
func TestDCGMStandInGPUWithoutEnergyCounter(t *testing.T) {
	gpus := h100s(3)
	gpus[1].Name, gpus[1].NoEnergyCounter = "Tesla P100-PCIE-16GB", true
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: gpus}, nil, func(t *testing.T, _ dcgmstub.Controls) {
		src := openStandIn(t, SourceOptions{GPUs: GPUsAll})
		for i, d := range src.Devices() {
			if d.Integrated != (i == 1) {
				t.Errorf("device %d Integrated = %v", i, d.Integrated)
			}
		}
		if src.Method() != MethodMixed {
			t.Errorf("Method = %s, want mixed", src.Method())
		}
		rs := mustRead(t, src)
		if rs[1].Err != nil || !math.IsNaN(rs[1].EnergyJ) || rs[1].PowerW != gpus[1].PowerW {
			t.Errorf("gpu 1: %+v, want power only", rs[1])
		}
		for _, i := range []int{0, 2} {
			if rs[i].Err != nil || math.IsNaN(rs[i].EnergyJ) {
				t.Errorf("gpu %d: %+v, want energy", i, rs[i])
			}
		}
	})
}

// Energy and power not sampled yet when the source opens are not "no
// energy counter": the GPU keeps its counter, and its readings come once
// DCGM has them.
func TestDCGMStandInValuesBlankAtStart(t *testing.T) {
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(2)}, nil, func(t *testing.T, c dcgmstub.Controls) {
		c.SetBlank(0, true)
		src := openStandIn(t, SourceOptions{GPUs: GPUsAll})
		if src.Method() != MethodCounter || src.Devices()[0].Integrated {
			t.Fatalf("method %s, devices %+v: a blank value is not a missing counter", src.Method(), src.Devices())
		}
		if rs := mustRead(t, src); rs[0].Err == nil || rs[1].Err != nil {
			t.Errorf("blank gpu 0: %+v; gpu 1: %+v", rs[0], rs[1])
		}
		c.SetBlank(0, false)
		if rs := mustRead(t, src); rs[0].Err != nil || math.IsNaN(rs[0].EnergyJ) || rs[0].PowerW != 100 {
			t.Errorf("gpu 0 once sampled: %+v, want energy and 100 W", rs[0])
		}
	})
}

// A lost GPU fails alone and answers again when found; a glitch is
// passed through once (the sampler drops it).
func TestDCGMStandInLostGPUAndGlitch(t *testing.T) {
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(3)}, nil, func(t *testing.T, c dcgmstub.Controls) {
		src := openStandIn(t, SourceOptions{GPUs: GPUsAll})
		c.SetLost(1, true)
		rs := mustRead(t, src)
		if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "gpu 1") || !strings.Contains(rs[1].Err.Error(), "GPU is lost") {
			t.Errorf("lost gpu 1: %+v, want an error naming it and DCGM's reason", rs[1])
		}
		if rs[0].Err != nil || rs[2].Err != nil || math.IsNaN(rs[0].EnergyJ) || math.IsNaN(rs[2].EnergyJ) {
			t.Errorf("the others: %+v, %+v", rs[0], rs[2])
		}
		c.SetLost(1, false)
		before := mustRead(t, src)
		if before[1].Err != nil {
			t.Errorf("gpu 1 found again: %+v", before[1])
		}
		c.Glitch(2)
		glitch := mustRead(t, src)
		after := mustRead(t, src)
		if glitch[2].EnergyJ-before[2].EnergyJ < 1e8 || after[2].EnergyJ > before[2].EnergyJ+1e6 {
			t.Errorf("gpu 2 around a glitch: %v, %v, %v J", before[2].EnergyJ, glitch[2].EnergyJ, after[2].EnergyJ)
		}
	})
}

// A hung GPU read costs the others nothing: Read returns within its
// bound, the hung GPU is reported failed, and it is read again once its
// call returns.
func TestDCGMStandInHungGPU(t *testing.T) {
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(3)}, nil, func(t *testing.T, c dcgmstub.Controls) {
		src := openStandIn(t, SourceOptions{GPUs: GPUsAll})
		c.SetHung(1, 20*time.Second)
		start := time.Now()
		rs := mustRead(t, src)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Read took %v with gpu 1 hung 20 s; want about the read bound", took)
		}
		if rs[1].Err == nil || rs[0].Err != nil || rs[2].Err != nil {
			t.Errorf("gpu 1 hung: %v, %v, %v", rs[0].Err, rs[1].Err, rs[2].Err)
		}
		c.SetHung(1, 0)
		deadline := time.Now().Add(10 * time.Second)
		for rs[1].Err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("gpu 1 still failing 10 s after it answered: %v", rs[1].Err)
			}
			time.Sleep(50 * time.Millisecond)
			rs = mustRead(t, src)
		}
		if rs[0].Err != nil || rs[2].Err != nil {
			t.Errorf("the others: %v, %v", rs[0].Err, rs[2].Err)
		}
	})
}

// connectedReporter is the dcgm source's connection state.
type connectedReporter interface{ Connected() bool }

// A remote nv-hostengine that goes down makes Read fail as a whole (the
// sampler marks the source down) and the source reconnects once it is
// up, re-creating its watches: the GPUs read again.
func TestDCGMStandInRemoteHostEngineDownThenUp(t *testing.T) {
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(2)}, nil, func(t *testing.T, c dcgmstub.Controls) {
		logs := &logRecorder{}
		src := openStandIn(t, SourceOptions{DCGMAddr: "127.0.0.1:5555", Logger: logs.logger()})
		conn, ok := src.(connectedReporter)
		if !ok {
			t.Fatalf("%T has no Connected method", src)
		}
		if len(src.Devices()) != 2 || !conn.Connected() {
			t.Fatalf("devices %+v, connected %v", src.Devices(), conn.Connected())
		}
		mustRead(t, src)
		c.SetDown(true)
		if _, err := src.Read(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "127.0.0.1:5555") {
			t.Fatalf("Read with the host engine down: %v, want an error naming it", err)
		}
		if conn.Connected() {
			t.Error("Connected with the host engine down")
		}
		failed := func() int { return countLines(logs, "failed (attempt") }
		for deadline := time.Now().Add(15 * time.Second); failed() == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no failed reconnection logged 15 s after the host engine went down: %q", logs.all())
			}
		}
		if _, err := src.Read(t.Context(), nil); err == nil {
			t.Fatal("Read succeeded with the host engine down")
		}
		c.SetDown(false)
		deadline := time.Now().Add(15 * time.Second)
		for {
			rs, err := src.Read(t.Context(), nil)
			if err == nil && len(rs) == 2 && rs[0].Err == nil && rs[1].Err == nil && !math.IsNaN(rs[1].EnergyJ) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("not reading 15 s after the host engine came back: %v, %+v\nlogs: %q", err, rs, logs.all())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !conn.Connected() {
			t.Error("not Connected after reconnecting")
		}
		// One line per failed attempt, numbered 1, 2, ...; one for the
		// reconnection.
		for i := 1; i <= failed(); i++ {
			if n := countLines(logs, fmt.Sprintf("failed (attempt %d;", i)); n != 1 {
				t.Errorf("attempt %d logged %d times: %q", i, n, logs.all())
			}
		}
		if n := countLines(logs, "reconnected to nv-hostengine at 127.0.0.1:5555"); n != 1 {
			t.Errorf("reconnection logged %d times: %q", n, logs.all())
		}
	})
}

// A library older than DCGM 4.0, or one whose version cannot be read, is
// refused with one line that states the minimum; auto says so and goes
// on. The refused library is never called again.
func TestDCGMStandInVersionTooOld(t *testing.T) {
	for _, tc := range []struct{ name, version string }{{"3.3.9", "3.3.9"}, {"unparsable", "beta"}} {
		t.Run(tc.name, func(t *testing.T) {
			inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(1), Version: tc.version}, nil, func(t *testing.T, _ dcgmstub.Controls) {
				for range 2 {
					src, _, err := OpenSource(t.Context(), SourceDCGM, SourceOptions{})
					if src != nil || err == nil {
						t.Fatalf("OpenSource = %v, %v; want an error", src, err)
					}
					msg := err.Error()
					for _, want := range []string{"dcgm: ", tc.version, "4.0.0 or newer"} {
						if !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
							t.Errorf("error %q: want one line with %q", msg, want)
						}
					}
					src, why, err := OpenSource(t.Context(), SourceAuto, SourceOptions{})
					if src != nil {
						src.Close() // this host has NVML
					} else if !strings.Contains(why, "; nvml: ") {
						t.Errorf("auto did not go on to nvml: %q", why)
					}
					if err != nil || !strings.Contains(why, "dcgm: ") || !strings.Contains(why, "4.0.0 or newer") {
						t.Errorf("auto: %q, %v; want dcgm's reason", why, err)
					}
				}
			})
		})
	}
}

// DCGM that does not start is refused with DCGM's reason, and auto goes
// on to nvml.
func TestDCGMStandInStartFails(t *testing.T) {
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: h100s(1), StartError: -7}, nil, func(t *testing.T, _ dcgmstub.Controls) {
		_, why, err := OpenSource(t.Context(), SourceAuto, SourceOptions{})
		if err != nil || !strings.Contains(why, "dcgm: cannot start DCGM embedded") || !strings.Contains(why, "DCGM Initialization Error") {
			t.Errorf("auto: %q, %v", why, err)
		}
	})
}

// With local DCGM and --gpus auto, NVML (here its stand-in, with the same
// GPUs) tells which GPUs run a compute process and their MIG devices: the
// source reads only those, or the parent of a MIG UUID given.
func TestDCGMStandInChoosesGPUsThroughNVML(t *testing.T) {
	gpus := h100s(4)
	nvml := nvmlstub.Node{GPUs: make([]nvmlstub.GPU, 4)}
	for i := range gpus {
		gpus[i].UUID = nvmlstub.DefaultUUID(i)
	}
	const mig = "MIG-4a5b0000-0000-5000-8000-000000000003"
	nvml.GPUs[2].Processes = 1
	nvml.GPUs[3].MIG, nvml.GPUs[3].MIGDevices = true, []nvmlstub.MIGDevice{{UUID: mig}}
	gpus[3].MIG = true
	inDCGMStandIn(t, dcgmstub.V40, dcgmstub.Node{GPUs: gpus}, &nvml, func(t *testing.T, _ dcgmstub.Controls) {
		for _, tc := range []struct {
			gpus string
			want int
			how  string
		}{
			{GPUsAuto, 2, "compute processes"},
			{mig, 3, "--gpus"},
		} {
			src := openStandIn(t, SourceOptions{GPUs: tc.gpus})
			devs := src.Devices()
			if len(devs) != 1 || devs[0].Index != tc.want || SelectionOf(src).How != tc.how {
				t.Errorf("--gpus %s: devices %+v chosen by %q; want gpu %d by %q", tc.gpus, devs, SelectionOf(src).How, tc.want, tc.how)
			}
			if rs := mustRead(t, src); rs[0].Err != nil || rs[0].PowerW != gpus[tc.want].PowerW {
				t.Errorf("--gpus %s: reading %+v, want gpu %d's %v W", tc.gpus, rs[0], tc.want, gpus[tc.want].PowerW)
			}
			src.Close()
		}
	})
}
