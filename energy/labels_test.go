package energy

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// GPU names, UUIDs and hostnames reach every per-GPU series; a remote
// exporter (or a GPU library) that gives absurdly long ones must not make
// each scrape megabytes (issue 16, defect 14): label values are capped at
// maxLabelValueBytes, as exporter.LabelValue caps a run's.
func TestLongGPULabelsAreCapped(t *testing.T) {
	long := strings.Repeat("x", 200_000)
	uuid := "GPU-" + strings.Repeat("é", 300)
	body := "# TYPE tokenwatt_gpu_energy_joules_total counter\n" +
		fmt.Sprintf(`tokenwatt_gpu_energy_joules_total{gpu="0",gpu_model="%s",hostname="%s",uuid="%s"} 12.5`, long, long, uuid) + "\n" +
		"# TYPE tokenwatt_gpu_power_watts gauge\n" +
		fmt.Sprintf(`tokenwatt_gpu_power_watts{gpu="0",gpu_model="%s",hostname="%s",uuid="%s"} 80`, long, long, uuid) + "\n"
	src := mustOpenScrape(t, newEndpoint(t, body).URL+"/metrics")
	s := NewSampler(src, 0)
	s.Read(t.Context())
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewGPUCollector(s, GPUCollectorOptions{Info: true, Version: "test"}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); len(v) > maxLabelValueBytes || !utf8.ValidString(v) {
					t.Errorf("%s: label %s of %d bytes", mf.GetName(), l.GetName(), len(v))
				}
				if l.GetName() == "uuid" && l.GetValue() != validLabel(uuid) {
					t.Errorf("%s: uuid %q", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	if series < 4 {
		t.Errorf("%d series, want energy, power, up and info at least", series)
	}
	for _, tc := range []struct{ in, want string }{
		{"NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"},
		{strings.Repeat("a", maxLabelValueBytes), strings.Repeat("a", maxLabelValueBytes)},
		{strings.Repeat("a", maxLabelValueBytes+1), strings.Repeat("a", maxLabelValueBytes-3) + "…"},
		{"a" + strings.Repeat("é", 200), "a" + strings.Repeat("é", 126) + "…"},
		{"bad \xff", "bad \uFFFD"},
	} {
		if got := validLabel(tc.in); got != tc.want {
			t.Errorf("validLabel(%.30q…) = %.30q… (%d bytes), want %d bytes", tc.in, got, len(got), len(tc.want))
		}
	}
}
