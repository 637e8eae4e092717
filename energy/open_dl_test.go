//go:build linux && cgo

package energy

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-dcgm/pkg/dcgm"
)

// On a host without the GPU libraries (this project's CI) the real
// openers fail with one line each, and calling them again is safe: they
// never reach a library function after a failed load or Init, which
// would kill the process with "undefined symbol".
func TestOpenSourceWithoutGPULibraries(t *testing.T) {
	if loadLibrary(dcgmLibName) == nil || loadLibrary(nvmlLibName) == nil {
		t.Skip("a GPU library is installed here")
	}
	ctx := t.Context()
	for range 2 {
		src, why, err := OpenSource(ctx, SourceDCGM, SourceOptions{})
		wantOneLine(t, "dcgm", src, why, err, "dcgm: libdcgm.so.4 not found", "datacenter-gpu-manager-4", "--dcgm-addr")
		src, why, err = OpenSource(ctx, SourceDCGM, SourceOptions{DCGMAddr: "127.0.0.1:5555"})
		wantOneLine(t, "dcgm remote", src, why, err, "dcgm: libdcgm.so.4 not found", "datacenter-gpu-manager-4")
		src, why, err = OpenSource(ctx, SourceNVML, SourceOptions{})
		wantOneLine(t, "nvml", src, why, err, "nvml: libnvidia-ml.so.1 not found", "install the NVIDIA driver")
		src, why, err = OpenSource(ctx, SourceAuto, SourceOptions{})
		if src != nil || err != nil {
			t.Fatalf("auto = %v, %v; want none", src, err)
		}
		for _, w := range []string{"energy: auto chose none: dcgm: libdcgm.so.4 not found", "; nvml: libnvidia-ml.so.1 not found"} {
			if !strings.Contains(why, w) || strings.Contains(why, "\n") {
				t.Errorf("auto explains %q; want one line with %q", why, w)
			}
		}
	}
}

// go-dcgm's own Init, which openDCGMLib reaches once the library loads,
// also fails cleanly without it: the failure is an error, and the
// process lives on.
func TestDCGMInitWithoutTheLibraryFailsCleanly(t *testing.T) {
	if loadLibrary(dcgmLibName) == nil {
		t.Skip("libdcgm.so.4 is installed here")
	}
	for _, args := range [][]string{nil, {"127.0.0.1:5555", "0"}} {
		m := dcgm.Embedded
		if args != nil {
			m = dcgm.Standalone
		}
		if _, err := dcgm.Init(m, args...); err == nil || !strings.Contains(err.Error(), "libdcgm.so.4 not found") {
			t.Errorf("dcgm.Init(%v): %v", args, err)
		} else if e := dcgmLoadError(err); !strings.Contains(e.Error(), "dcgm: libdcgm.so.4 not found: install DCGM 4") {
			t.Errorf("dcgmLoadError = %v", e)
		}
	}
}

func wantOneLine(t *testing.T, what string, src Source, why string, err error, want ...string) {
	t.Helper()
	if src != nil || why != "" || err == nil {
		t.Fatalf("%s: OpenSource = %v, %q, %v; want an error", what, src, why, err)
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not say %q", what, msg, w)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("%s: error spans lines: %q", what, msg)
	}
	t.Logf("%s: %s", what, msg)
}
