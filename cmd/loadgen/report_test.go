package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tokenwatt/tokenwatt/internal/chromium"
)

// TestReportDrawsInABrowser runs three simulated runs at rising rates,
// writes `loadgen report`'s three pages (a run, the runs compared, the
// directory of runs as a sweep) and opens each in headless Chromium:
// every chart must have drawn its data (coloured pixels in its box: the
// axes and text are black and grey) and the page must have asked the
// network for nothing.
func TestReportDrawsInABrowser(t *testing.T) {
	bin := chromium.Binary(t)
	offlineHF(t)
	out := t.TempDir()
	var dirs []string
	for _, rate := range []string{"10", "20", "40"} {
		res := runCLI(t, "--scenario", "energy_star", "--sim", "--num-samples", "24", "--rate", rate,
			"--sim-slowdown", "0.1", "--out", out, "--run-id", "rate-"+rate)
		if res.code != 0 {
			t.Fatalf("run at %s/s: exit %d\n%s", rate, res.code, res.stderr)
		}
		dirs = append(dirs, filepath.Join(out, "rate-"+rate))
	}
	cases := []struct {
		name   string
		args   []string
		file   string
		kind   string
		charts []string
	}{
		{"run", []string{dirs[0]}, filepath.Join(dirs[0], "report.html"), "run",
			[]string{"ttft-cdf", "itl-cdf", "e2e-cdf", "ttft-hist", "itl-hist", "e2e-hist", "inflight", "power", "jpt"}},
		{"compare", append(slices.Clone(dirs), "-o", filepath.Join(out, "compare.html")), filepath.Join(out, "compare.html"), "compare",
			[]string{"ttft-cdf", "itl-cdf", "e2e-cdf", "jpt-cdf"}},
		{"sweep", []string{out}, filepath.Join(out, "report.html"), "sweep",
			[]string{"sweep-throughput", "sweep-energy"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runCLI(t, append([]string{"report"}, c.args...)...)
			if res.code != 0 {
				t.Fatalf("report: exit %d\n%s", res.code, res.stderr)
			}
			if want := "wrote " + c.file + " (" + c.kind + " report)"; !strings.Contains(res.stdout, want) {
				t.Errorf("stdout %q, want %q", res.stdout, want)
			}
			html, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(html), "SIMULATED") {
				t.Error("the page does not say the runs were simulated")
			}
			checkInBrowser(t, bin, c.file, c.charts)
		})
	}
}

// checkInBrowser opens a report in Chromium, tall enough for the whole
// page, and checks that it shows exactly the charts named (ids without
// "chart-"), each with data drawn, and that it made no network request.
func checkInBrowser(t *testing.T, bin, file string, charts []string) {
	t.Helper()
	const width = 1400
	height := 1200
	var p *chromium.Page
	for try := 0; try < 2; try++ {
		var err error
		if p, err = chromium.Open(t, bin, file, "figure.chart svg", width, height); err != nil {
			t.Fatal(err)
		}
		if p.ScrollHeight <= float64(height) {
			break
		}
		height = int(math.Ceil(p.ScrollHeight)) // once more, with room for all of it
	}
	if len(p.Requests) > 0 {
		t.Errorf("the page asked the network for %q; it must be self-contained", p.Requests)
	}
	var ids []string
	for _, b := range p.Boxes {
		ids = append(ids, strings.TrimPrefix(b.ID, "chart-"))
		if b.Y+b.Height > float64(p.Screenshot.Bounds().Dy()) || b.Width < 300 || b.Height < 150 {
			t.Errorf("chart %s: box %+v, not a whole chart in the %v screenshot", b.ID, b, p.Screenshot.Bounds().Size())
			continue
		}
		// Axes, grid and text are black or grey; 24 requests draw hundreds
		// of coloured pixels in any chart (a line across it, a scatter).
		if n := chromium.Colored(p.Screenshot, b); n < 100 {
			t.Errorf("chart %s: %d coloured pixels in its %.0f×%.0f box: it drew no data", b.ID, n, b.Width, b.Height)
		}
	}
	if !slices.Equal(ids, charts) {
		t.Errorf("charts %q, want %q", ids, charts)
	}
}

func TestReportBadInput(t *testing.T) {
	empty := t.TempDir()
	for _, args := range [][]string{
		{"report"},
		{"report", filepath.Join(empty, "missing")},
		{"report", empty},
		{"report", empty, empty},
	} {
		res := runCLI(t, args...)
		if res.code != exitUsage || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want %d and one line", args, res.code, res.stderr, exitUsage)
		}
	}
	if _, err := os.Stat(filepath.Join(empty, "report.html")); err == nil {
		t.Error("bad input left a report.html")
	}
}
