package energy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fakeOpeners open fake libraries, or fail the way a host without them
// does; opened counts the calls.
type fakeOpeners struct {
	dcgmErr, nvmlErr error
	dcgmAddr         string
	opened           []string
}

func (f *fakeOpeners) openers() libraryOpeners {
	return libraryOpeners{
		dcgm: func(addr string) (dcgmLib, error) {
			f.opened, f.dcgmAddr = append(f.opened, SourceDCGM), addr
			if f.dcgmErr != nil {
				return nil, f.dcgmErr
			}
			lib := newFakeDCGMLib(0)
			lib.set(0, mJ(1000), watts(100))
			return lib, nil
		},
		nvml: func() (nvmlLib, error) {
			f.opened = append(f.opened, SourceNVML)
			if f.nvmlErr != nil {
				return nil, f.nvmlErr
			}
			return newFakeNVMLLib(2), nil
		},
	}
}

var (
	errNoDCGM = errors.New("dcgm: libdcgm.so.4 not found: install DCGM 4")
	errNoNVML = errors.New("nvml: libnvidia-ml.so.1 not found: install the NVIDIA driver")
)

func TestOpenSourceAuto(t *testing.T) {
	for _, tc := range []struct {
		name             string
		dcgmErr, nvmlErr error
		wantSource       string // "" for none
		wantWhy          string
		wantOpened       string
	}{
		{"dcgm first", nil, nil, SourceDCGM,
			"energy: auto chose dcgm: 1 GPU(s) (NVIDIA H100 80GB HBM3), method counter", "dcgm"},
		{"nvml without dcgm", errNoDCGM, nil, SourceNVML,
			"energy: auto chose nvml: 2 GPU(s) (NVIDIA A100-SXM4-40GB), method counter; not dcgm: libdcgm.so.4 not found: install DCGM 4", "dcgm nvml"},
		{"none", errNoDCGM, errNoNVML, "",
			"energy: auto chose none: dcgm: libdcgm.so.4 not found: install DCGM 4; nvml: libnvidia-ml.so.1 not found: install the NVIDIA driver", "dcgm nvml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeOpeners{dcgmErr: tc.dcgmErr, nvmlErr: tc.nvmlErr}
			src, why, err := openSource(t.Context(), SourceAuto, SourceOptions{DCGMAddr: "gpu-host:5555"}, f.openers())
			if err != nil {
				t.Fatal(err)
			}
			name := ""
			if src != nil {
				name = src.Name()
			}
			if name != tc.wantSource || why != tc.wantWhy || strings.Join(f.opened, " ") != tc.wantOpened {
				t.Errorf("auto = %q, %q after trying %v\nwant %q, %q after %s", name, why, f.opened, tc.wantSource, tc.wantWhy, tc.wantOpened)
			}
			if f.dcgmAddr != "gpu-host:5555" {
				t.Errorf("dcgm opened at %q, want --dcgm-addr", f.dcgmAddr)
			}
		})
	}
}

func TestOpenSourceByName(t *testing.T) {
	f := &fakeOpeners{}
	for _, name := range []string{SourceDCGM, SourceNVML} {
		src, why, err := openSource(t.Context(), name, SourceOptions{}, f.openers())
		if err != nil || src == nil || src.Name() != name || why != "" {
			t.Errorf("%s: %v, %q, %v", name, src, why, err)
		}
	}
	src, why, err := openSource(t.Context(), SourceNone, SourceOptions{}, f.openers())
	if src != nil || why != "" || err != nil {
		t.Errorf("none: %v, %q, %v; want a nil Source, no error", src, why, err)
	}
	f = &fakeOpeners{dcgmErr: errNoDCGM, nvmlErr: errNoNVML}
	if _, _, err := openSource(t.Context(), SourceDCGM, SourceOptions{}, f.openers()); !errors.Is(err, errNoDCGM) {
		t.Errorf("dcgm without its library: %v", err)
	}
	if _, _, err := openSource(t.Context(), SourceNVML, SourceOptions{}, f.openers()); !errors.Is(err, errNoNVML) {
		t.Errorf("nvml without its library: %v", err)
	}
	for spec, want := range map[string]string{
		"dcmg": `energy source "dcmg": unknown (use auto, dcgm, nvml, scrape:URL or none)`,
		"sim":  "scrape:http://HOST:PORT/metrics",
	} {
		if _, _, err := openSource(t.Context(), spec, SourceOptions{}, f.openers()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := openSource(ctx, SourceAuto, SourceOptions{}, f.openers()); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// scrape:URL of an energy-exporter's /metrics finds the GPUs the
// exporter serves, labels and all.
func TestOpenSourceScrapesAnEnergyExporter(t *testing.T) {
	src := &gpuTestSource{method: MethodCounter, devices: testDevices(2)}
	src.push(testReading(1000, 300), testReading(2000, 310))
	src.push(testReading(1500, 300), testReading(2000, 310))
	sampler := NewSampler(src, time.Second)
	sampler.Read(t.Context())
	sampler.Read(t.Context())
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewGPUCollector(sampler, GPUCollectorOptions{Info: true, Version: "test"}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	got, why, err := OpenSource(t.Context(), "scrape:"+srv.URL+"/metrics", SourceOptions{HTTPClient: http.DefaultClient})
	if err != nil || why != "" {
		t.Fatalf("OpenSource(scrape:) = %q, %v", why, err)
	}
	defer got.Close()
	if got.Method() != MethodCounter || len(got.Devices()) != 2 || got.Devices()[1] != src.devices[1] {
		t.Errorf("scraped %s %+v, want %+v", got.Method(), got.Devices(), src.devices)
	}
	rs := mustRead(t, got)
	if rs[0].EnergyJ != 500 || rs[1].PowerW != 310 {
		t.Errorf("scraped readings %+v", rs)
	}
}

// A GPU choice that names no GPU, or a label selector for a local
// source, is the user's mistake: auto says so and stops, rather than
// trying the next source (which sees the same GPUs) or running without
// energy. A library that is missing still falls through.
func TestOpenSourceAutoReportsABadChoice(t *testing.T) {
	empty := ""
	for _, tc := range []struct {
		name       string
		dcgmErr    error
		opts       SourceOptions
		want       string
		wantOpened string
	}{
		{"no such GPU (dcgm)", nil, SourceOptions{GPUs: "7"}, "dcgm: --gpus 7: no such GPU", "dcgm"},
		{"no such GPU (nvml)", errNoDCGM, SourceOptions{GPUs: "7"}, "nvml: --gpus 7: no such GPU", "dcgm nvml"},
		{"malformed --gpus", nil, SourceOptions{GPUs: "0,,1"}, "--gpus \"0,,1\": empty entry", ""},
		{"selector on dcgm", nil, SourceOptions{Selector: `pod="vllm-0"`}, "dcgm: --gpu-selector", ""},
		{"selector, dcgm missing", errNoDCGM, SourceOptions{Selector: `pod="vllm-0"`}, "dcgm: --gpu-selector", ""},
		{"CUDA_VISIBLE_DEVICES", errNoDCGM, SourceOptions{CUDAVisibleDevices: new("5")}, "CUDA_VISIBLE_DEVICES=5 names none", "dcgm nvml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.CUDAVisibleDevices == nil {
				tc.opts.CUDAVisibleDevices = &empty
			}
			f := &fakeOpeners{dcgmErr: tc.dcgmErr}
			src, why, err := openSource(t.Context(), SourceAuto, tc.opts, f.openers())
			var choice *ChoiceError
			if src != nil || err == nil || !errors.As(err, &choice) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("auto = %v, %q, %v; want a ChoiceError saying %q", src, why, err, tc.want)
			}
			if strings.Join(f.opened, " ") != tc.wantOpened {
				t.Errorf("opened %v, want %q", f.opened, tc.wantOpened)
			}
		})
	}
}
