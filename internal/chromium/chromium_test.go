package chromium

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A page with one chart drawn, one blank, and two things fetched from
// the network: the helper must tell each.
const testPage = `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="https://fonts.example.invalid/css?family=Roboto">
<style>body { margin: 0 } figure { margin: 10px; width: 300px; height: 200px }</style>
</head><body>
<figure id="chart-drawn"><svg width="300" height="200" viewBox="0 0 300 200"><path d="M0 200 L300 0" stroke="#0072b2" stroke-width="3" fill="none"/><text x="10" y="20">axis</text></svg></figure>
<figure id="chart-blank"><svg width="300" height="200" viewBox="0 0 300 200"><text x="10" y="20">axis only</text><path d="M0 199 H300" stroke="#000"/></svg></figure>
<img src="http://images.example.invalid/pixel.png" alt="">
</body></html>
`

func TestOpenSeesChartsAndRequests(t *testing.T) {
	bin := Binary(t)
	file := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(file, []byte(testPage), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Open(t, bin, file, "figure svg", 400, 600)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Boxes) != 2 || p.Boxes[0].ID != "chart-drawn" || p.Boxes[1].ID != "chart-blank" {
		t.Fatalf("boxes %+v, want chart-drawn and chart-blank", p.Boxes)
	}
	if b := p.Boxes[0]; b.Width != 300 || b.Height != 200 {
		t.Errorf("chart-drawn's box %+v, want 300×200", b)
	}
	if got := p.Screenshot.Bounds().Size(); got.X != 400 || got.Y != 600 {
		t.Errorf("screenshot %v, want 400×600", got)
	}
	if n := Colored(p.Screenshot, p.Boxes[0]); n < 500 {
		t.Errorf("drawn chart: %d coloured pixels, want its diagonal's (≥ 500)", n)
	}
	if n := Colored(p.Screenshot, p.Boxes[1]); n != 0 {
		t.Errorf("blank chart: %d coloured pixels, want 0 (black text and axis are not data)", n)
	}
	for _, u := range []string{"https://fonts.example.invalid/css?family=Roboto", "http://images.example.invalid/pixel.png"} {
		if !slices.Contains(p.Requests, u) {
			t.Errorf("requests %q: %s missing", p.Requests, u)
		}
	}
	if len(p.Requests) != 2 {
		t.Errorf("requests %q, want the page's two (the browser's own are not the page's)", p.Requests)
	}
}
