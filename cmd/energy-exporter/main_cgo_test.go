//go:build linux && cgo

// Builds without cgo have no GPU libraries to miss; their errors say so
// instead.

package main

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/energy"
)

// skipOnGPUHost skips tests that need the GPU libraries to be absent.
func skipOnGPUHost(t *testing.T) {
	t.Helper()
	src, _, _ := energy.OpenSource(t.Context(), energy.SourceAuto, energy.SourceOptions{})
	if src != nil {
		src.Close()
		t.Skip("this host has a GPU source")
	}
}

func TestBinaryWithoutGPULibrariesExits2WithOneLine(t *testing.T) {
	skipOnGPUHost(t)
	bin := buildExporter(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--source", "dcgm"}, []string{"dcgm: libdcgm.so.4 not found", "datacenter-gpu-manager-4"}},
		{[]string{"--source", "dcgm", "--dcgm-addr", "127.0.0.1:5555"}, []string{"dcgm: libdcgm.so.4 not found", "datacenter-gpu-manager-4"}},
		{[]string{"--source", "nvml"}, []string{"nvml: libnvidia-ml.so.1 not found", "install the NVIDIA driver"}},
		{[]string{"--source", "auto"}, []string{"energy: auto chose none: dcgm: libdcgm.so.4 not found", "; nvml: libnvidia-ml.so.1 not found", "nothing to export"}},
		{nil, []string{"energy: auto chose none"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := exec.Command(bin, append(tc.args, "--listen", "127.0.0.1:0")...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
				t.Fatalf("exit: %v, want status 2 (127 would be a missing symbol)\n%s", err, stderr.String())
			}
			wantOneErrorLine(t, stderr.String(), tc.want...)
		})
	}
}
