//go:build linux && cgo

package nvmlstub_test

import (
	"math"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tokenwatt/tokenwatt/internal/gpustub/nvmlstub"
)

var node = nvmlstub.Node{GPUs: []nvmlstub.GPU{
	{PowerW: 500, Processes: 2, MIG: true, MIGDevices: []nvmlstub.MIGDevice{
		{UUID: "MIG-aaaaaaaa-0000-5000-8000-000000000000"},
		{UUID: "MIG-aaaaaaaa-0000-5000-8000-000000000001", Processes: 1},
	}},
	{PowerW: 90, PowerLimitW: 250, Name: "Tesla P100-PCIE-16GB", NoEnergyCounter: true, NoInstantPower: true},
	{PowerW: 300, UUID: "GPU-8f2c0000-1111-2222-3333-444455556666"},
}}

// The stand-in answers go-nvml's calls as the configuration says.
func TestStubThroughGoNVML(t *testing.T) {
	nvmlstub.InChild(t, node, nil, func(t *testing.T, s nvmlstub.Stub) {
		lib := nvml.New()
		if ret := lib.Init(); ret != nvml.SUCCESS {
			t.Fatalf("Init: %v", ret)
		}
		defer func() {
			if ret := lib.Shutdown(); ret != nvml.SUCCESS {
				t.Errorf("Shutdown: %v", ret)
			}
		}()
		n, ret := lib.DeviceGetCount()
		if ret != nvml.SUCCESS || n != 3 {
			t.Fatalf("DeviceGetCount = %d, %v", n, ret)
		}
		devs := make([]nvml.Device, n)
		for i := range devs {
			devs[i], ret = lib.DeviceGetHandleByIndex(i)
			if ret != nvml.SUCCESS {
				t.Fatalf("DeviceGetHandleByIndex(%d): %v", i, ret)
			}
		}
		identity(t, devs)
		processesAndMIG(t, lib, devs)
		power(t, devs)
		faults(t, s, devs)
	})
}

func identity(t *testing.T, devs []nvml.Device) {
	t.Helper()
	for i, want := range []struct {
		uuid, name string
		limit      uint32
	}{
		{nvmlstub.DefaultUUID(0), "NVIDIA H100 80GB HBM3", 700_000},
		{nvmlstub.DefaultUUID(1), "Tesla P100-PCIE-16GB", 250_000},
		{"GPU-8f2c0000-1111-2222-3333-444455556666", "NVIDIA H100 80GB HBM3", 700_000},
	} {
		uuid, r1 := devs[i].GetUUID()
		name, r2 := devs[i].GetName()
		limit, r3 := devs[i].GetEnforcedPowerLimit()
		if uuid != want.uuid || name != want.name || limit != want.limit || r1 != nvml.SUCCESS || r2 != nvml.SUCCESS || r3 != nvml.SUCCESS {
			t.Errorf("gpu %d: %q %q %d mW (%v %v %v), want %+v", i, uuid, name, limit, r1, r2, r3, want)
		}
	}
}

func processesAndMIG(t *testing.T, lib nvml.Interface, devs []nvml.Device) {
	t.Helper()
	procs, ret := devs[0].GetComputeRunningProcesses()
	if ret != nvml.SUCCESS || len(procs) != 2 || procs[0].Pid == 0 || procs[0].Pid == procs[1].Pid {
		t.Errorf("gpu 0 processes %+v, %v; want 2", procs, ret)
	}
	if procs, ret := devs[1].GetComputeRunningProcesses(); ret != nvml.SUCCESS || len(procs) != 0 {
		t.Errorf("gpu 1 processes %+v, %v; want none", procs, ret)
	}
	if cur, pending, ret := devs[0].GetMigMode(); cur != nvml.DEVICE_MIG_ENABLE || pending != nvml.DEVICE_MIG_ENABLE || ret != nvml.SUCCESS {
		t.Errorf("gpu 0 MIG mode %d/%d %v", cur, pending, ret)
	}
	if cur, _, ret := devs[1].GetMigMode(); cur != nvml.DEVICE_MIG_DISABLE || ret != nvml.SUCCESS {
		t.Errorf("gpu 1 MIG mode %d %v", cur, ret)
	}
	max, ret := devs[0].GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS || max != 7 {
		t.Fatalf("max MIG devices %d %v", max, ret)
	}
	var uuids []string
	for k := range max {
		mig, ret := devs[0].GetMigDeviceHandleByIndex(k)
		if ret == nvml.ERROR_NOT_FOUND {
			continue
		}
		uuid, _ := mig.GetUUID()
		uuids = append(uuids, uuid)
		procs, ret := mig.GetComputeRunningProcesses()
		if want := k; ret != nvml.SUCCESS || len(procs) != want {
			t.Errorf("MIG %d: %d processes (%v), want %d", k, len(procs), ret, want)
		}
	}
	if len(uuids) != 2 || uuids[1] != node.GPUs[0].MIGDevices[1].UUID {
		t.Errorf("MIG UUIDs %q", uuids)
	}
	mig, ret := lib.DeviceGetHandleByUUID(node.GPUs[0].MIGDevices[1].UUID)
	if ret != nvml.SUCCESS {
		t.Fatalf("DeviceGetHandleByUUID(MIG): %v", ret)
	}
	parent, ret := mig.GetDeviceHandleFromMigDeviceHandle()
	if uuid, _ := parent.GetUUID(); ret != nvml.SUCCESS || uuid != nvmlstub.DefaultUUID(0) {
		t.Errorf("MIG's parent %q, %v", uuid, ret)
	}
	if _, ret := lib.DeviceGetHandleByUUID("GPU-nope"); ret != nvml.ERROR_NOT_FOUND {
		t.Errorf("unknown UUID: %v", ret)
	}
}

// energy reads GPU i's counter, stamped halfway through the call.
func energy(t *testing.T, d nvml.Device) (float64, time.Time) {
	t.Helper()
	before := time.Now()
	mJ, ret := d.GetTotalEnergyConsumption()
	after := time.Now()
	if ret != nvml.SUCCESS {
		t.Fatalf("energy: %v", ret)
	}
	return float64(mJ), before.Add(after.Sub(before) / 2)
}

func instant(t *testing.T, d nvml.Device) (uint32, nvml.Return) {
	t.Helper()
	v := []nvml.FieldValue{{FieldId: nvml.FI_DEV_POWER_INSTANT}}
	if ret := d.GetFieldValues(v); ret != nvml.SUCCESS {
		t.Fatalf("GetFieldValues: %v", ret)
	}
	if v[0].ValueType != uint32(nvml.VALUE_TYPE_UNSIGNED_INT) && v[0].NvmlReturn == uint32(nvml.SUCCESS) {
		t.Fatalf("instant power of type %d", v[0].ValueType)
	}
	return uint32(v[0].Value[0]) | uint32(v[0].Value[1])<<8 | uint32(v[0].Value[2])<<16 | uint32(v[0].Value[3])<<24, nvml.Return(v[0].NvmlReturn)
}

func power(t *testing.T, devs []nvml.Device) {
	t.Helper()
	e0, t0 := energy(t, devs[0])
	time.Sleep(300 * time.Millisecond)
	e1, t1 := energy(t, devs[0])
	if w := (e1 - e0) / 1000 / t1.Sub(t0).Seconds(); math.Abs(w-500) > 10 {
		t.Errorf("gpu 0 energy rate %.1f W, want 500", w)
	}
	if mW, ret := devs[0].GetPowerUsage(); mW != 500_000 || ret != nvml.SUCCESS {
		t.Errorf("gpu 0 power %d mW %v", mW, ret)
	}
	if mW, ret := instant(t, devs[0]); mW != 500_000 || ret != nvml.SUCCESS {
		t.Errorf("gpu 0 instant power %d mW %v", mW, ret)
	}
	if _, ret := devs[1].GetTotalEnergyConsumption(); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("gpu 1 energy: %v, want not supported", ret)
	}
	if _, ret := instant(t, devs[1]); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("gpu 1 instant power: %v, want not supported", ret)
	}
	if mW, ret := devs[1].GetPowerUsage(); mW != 90_000 || ret != nvml.SUCCESS {
		t.Errorf("gpu 1 power %d mW %v", mW, ret)
	}
}

func faults(t *testing.T, s nvmlstub.Stub, devs []nvml.Device) {
	t.Helper()
	// A new power draw: the counter goes on from where it was, the
	// instant field follows at once, GetPowerUsage over a second.
	e0, t0 := energy(t, devs[0])
	if err := s.SetPower(0, 100); err != nil {
		t.Fatal(err)
	}
	if mW, _ := instant(t, devs[0]); mW != 100_000 {
		t.Errorf("instant power after SetPower(100) = %d mW", mW)
	}
	if mW, _ := devs[0].GetPowerUsage(); mW <= 100_000 || mW > 500_000 {
		t.Errorf("1 s mean power just after SetPower(100) = %d mW, want between", mW)
	}
	e1, t1 := energy(t, devs[0])
	if dt := t1.Sub(t0).Seconds(); e1 < e0 || e1-e0 > 500*dt*1000+50 {
		t.Errorf("counter across SetPower: %.0f -> %.0f mJ in %.3f s", e0, e1, dt)
	}

	if err := s.Glitch(0); err != nil {
		t.Fatal(err)
	}
	if e, _ := energy(t, devs[0]); e < 1e12 {
		t.Errorf("glitch read %.0f mJ", e)
	}
	if e, _ := energy(t, devs[0]); e > 1e12 {
		t.Errorf("glitch not one-off: %.0f mJ", e)
	}

	if err := s.FailEnergy(2, nvmlstub.Timeout); err != nil {
		t.Fatal(err)
	}
	if _, ret := devs[2].GetTotalEnergyConsumption(); ret != nvml.ERROR_TIMEOUT {
		t.Errorf("FailEnergy: %v", ret)
	}
	if err := s.Lose(2); err != nil {
		t.Fatal(err)
	}
	if _, ret := devs[2].GetUUID(); ret != nvml.ERROR_GPU_IS_LOST || ret.Error() != "GPU is lost" {
		t.Errorf("lost GPU: %v", ret)
	}
	if _, ret := devs[0].GetUUID(); ret != nvml.SUCCESS {
		t.Errorf("another GPU than the lost one: %v", ret)
	}
	if err := s.Heal(2); err != nil {
		t.Fatal(err)
	}
	if _, ret := devs[2].GetTotalEnergyConsumption(); ret != nvml.SUCCESS {
		t.Errorf("healed GPU: %v", ret)
	}
	if err := s.Hang(2, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, ret := devs[2].GetPowerUsage(); ret != nvml.SUCCESS || time.Since(start) < 300*time.Millisecond {
		t.Errorf("hung GPU answered %v after %v", ret, time.Since(start))
	}
	if err := s.Heal(2); err != nil {
		t.Fatal(err)
	}
}

// Without its configuration the library reports no driver, as a host
// without one does.
func TestStubWithoutConfiguration(t *testing.T) {
	nvmlstub.InChild(t, node, []string{nvmlstub.ConfigEnv + "=/nonexistent/nvml.conf"}, func(t *testing.T, _ nvmlstub.Stub) {
		if ret := nvml.New().Init(); ret != nvml.ERROR_DRIVER_NOT_LOADED {
			t.Errorf("Init: %v", ret)
		}
	})
}
