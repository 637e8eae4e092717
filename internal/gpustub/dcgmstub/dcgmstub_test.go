//go:build linux && cgo

package dcgmstub

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Each build exports exactly the symbols tokenwatt's go-dcgm calls need
// that its release has: the 4.0 stand-in lacks dcgmGetGpuStatus, which
// go-dcgm's GetDeviceInfo calls, as real DCGM 4.0 does.
func TestBuildExportsTheReleasesSymbols(t *testing.T) {
	if _, err := exec.LookPath("nm"); err != nil {
		t.Skip("nm (binutils) is not installed")
	}
	common := []string{
		"DcgmFieldGetById", "dcgmConnect_v2", "dcgmDisconnect", "dcgmEntityGetLatestValues",
		"dcgmFieldGroupCreate", "dcgmFieldGroupDestroy", "dcgmGetAllSupportedDevices", "dcgmGetDeviceAttributes",
		"dcgmGetLatestValuesForFields", "dcgmGroupAddDevice", "dcgmGroupCreate", "dcgmGroupDestroy",
		"dcgmInit", "dcgmShutdown", "dcgmStartEmbedded", "dcgmStopEmbedded", "dcgmUnwatchFields",
		"dcgmUpdateAllFields", "dcgmVersionInfo", "dcgmWatchFields", "errorString",
	}
	getDeviceInfo := []string{"dcgmGetDeviceTopology", "dcgmGetGpuStatus"}
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{V40, common},
		{V45, append(slices.Clone(common), getDeviceInfo...)},
		{V46, append(slices.Clone(common), getDeviceInfo...)},
	} {
		t.Run(tc.version, func(t *testing.T) {
			dir := Build(t, tc.version)
			out, err := exec.Command("nm", "-D", "--defined-only", filepath.Join(dir, LibName)).Output()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.Fields(l); len(f) == 3 && f[1] == "T" {
					got = append(got, f[2])
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("exports %v\nwant %v", got, want)
			}
			if again := Build(t, tc.version); again != dir {
				t.Errorf("second Build %s, want the cached %s", again, dir)
			}
		})
	}
}

func TestWriteAndControls(t *testing.T) {
	dir := t.TempDir()
	t0 := time.UnixMicro(1_700_000_000_123_456)
	c := Node{
		GPUs: []GPU{
			{UUID: "GPU-a", Name: "NVIDIA H100 80GB HBM3", PowerW: 312.5, PowerLimitW: 700},
			{UUID: "GPU-b", Name: "Tesla P100-PCIE-16GB", PowerW: 40, NoEnergyCounter: true, NoInstantPower: true, MIG: true},
		},
		T0: t0, Version: "3.3.9", StartError: -7,
	}.Write(t, dir)
	cfg, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		t.Fatal(err)
	}
	want := "version\t3.3.9\nt0_us\t1700000000123456\nstart_error\t-7\n" +
		"gpu\tGPU-a\tNVIDIA H100 80GB HBM3\t312.5\t700\t1\t1\t0\n" +
		"gpu\tGPU-b\tTesla P100-PCIE-16GB\t40\t0\t0\t0\t1\n"
	if string(cfg) != want {
		t.Errorf("config:\n%s\nwant:\n%s", cfg, want)
	}
	if env := c.Env("/lib/x"); !slices.Equal(env, []string{"LD_LIBRARY_PATH=/lib/x", ConfigEnv + "=" + filepath.Join(dir, "config")}) {
		t.Errorf("Env = %q", env)
	}

	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	c.SetLost(1, true)
	c.SetHung(0, 1500*time.Millisecond)
	c.SetDown(true)
	c.SetBlank(1, true)
	c.Glitch(0)
	if hung, _ := os.ReadFile(filepath.Join(dir, "hung-0")); string(hung) != "1500" {
		t.Errorf("hung-0 holds %q, want milliseconds", hung)
	}
	for _, f := range []string{"lost-1", "down", "blank-1", "glitch-0"} {
		if !exists(f) {
			t.Errorf("%s not written", f)
		}
	}
	if !c.GlitchPending(0) {
		t.Error("glitch not pending")
	}
	c.SetLost(1, false)
	c.SetHung(0, 0)
	c.SetDown(false)
	c.SetBlank(1, false)
	c.SetDown(false) // twice is fine
	for _, f := range []string{"lost-1", "hung-0", "down", "blank-1"} {
		if exists(f) {
			t.Errorf("%s not removed", f)
		}
	}
	t.Setenv(ConfigEnv, filepath.Join(dir, "config"))
	if FromEnv(t).dir != dir {
		t.Errorf("FromEnv dir %s, want %s", FromEnv(t).dir, dir)
	}
}
