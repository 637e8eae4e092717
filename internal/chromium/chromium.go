// Package chromium opens a local HTML file in a real browser for tests:
// headless Chromium (Debian's chromium package) takes a screenshot,
// dumps the DOM after load, and logs its network activity, from which
// the requests the page made are read.
//
// Without chromium on PATH a test is skipped, or fails when the
// environment variable CI is set, so that CI cannot pass by skipping
// (as internal/promtest does).
//
// It must not depend on any tokenwatt package: it tests them.
package chromium

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Timeout bounds one browser run: Chromium starts in about a second on an
// idle machine, much slower on a busy 2-core one.
const Timeout = 3 * time.Minute

// Binary returns the path of chromium (or chromium-browser), skipping the
// test without it, or failing it when CI is set.
func Binary(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH: install the Debian package chromium (.ci/run does)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Box is an element's place on the page, in CSS pixels (the screenshot's
// pixels: the device scale factor is 1).
type Box struct {
	ID                  string
	X, Y, Width, Height float64
}

// Page is what the browser saw of a file.
type Page struct {
	// Screenshot is the window's content, width × height pixels.
	Screenshot image.Image
	// Boxes are the elements the selector named, in document order.
	Boxes []Box
	// ScrollHeight is the page's full height.
	ScrollHeight float64
	// Requests are the URLs the page asked the network for; the
	// browser's own background requests are left out.
	Requests []string
}

// probe is the script added to a copy of the page: it writes where the
// selector's elements are, as JSON, into a hidden element of its own
// that the dumped DOM carries. It changes no layout.
const probe = `<script>
window.addEventListener("load", function () {
  var out = {boxes: [], scrollHeight: document.documentElement.scrollHeight};
  document.querySelectorAll(%q).forEach(function (el) {
    var r = el.getBoundingClientRect();
    out.boxes.push({ID: (el.closest("[id]") || {}).id || "", X: r.left + window.scrollX, Y: r.top + window.scrollY, Width: r.width, Height: r.height});
  });
  var pre = document.createElement("pre");
  pre.id = "chromium-probe";
  pre.style.display = "none";
  pre.textContent = "PROBE" + JSON.stringify(out) + "PROBE";
  document.body.appendChild(pre);
});
</script>`

// Open loads file (a local HTML file) in headless Chromium with a window
// of width × height CSS pixels, and returns its screenshot, the boxes of
// the elements selector names (each with the id of its nearest ancestor,
// or itself, that has one) and the page's network requests. The file is
// opened as a copy, in a directory of its own, with the probe script
// added before </body>; nothing else of it changes.
func Open(t testing.TB, bin, file, selector string, width, height int) (*Page, error) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	i := bytes.LastIndex(src, []byte("</body>"))
	if i < 0 {
		return nil, fmt.Errorf("%s: no </body>", file)
	}
	var page bytes.Buffer
	page.Write(src[:i])
	fmt.Fprintf(&page, probe, selector)
	page.Write(src[i:])
	copyPath := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(copyPath, page.Bytes(), 0o644); err != nil {
		return nil, err
	}
	shot, netlog := filepath.Join(dir, "screenshot.png"), filepath.Join(dir, "netlog.json")
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
		"--disable-extensions", "--mute-audio",
		// Whatever the page asks for is logged, and goes nowhere.
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--log-net-log="+netlog, "--net-log-capture-mode=Default",
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--virtual-time-budget=5000",
		"--screenshot="+shot, "--dump-dom",
		"file://"+copyPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chromium: %v\n%s", err, tail(stderr.String(), 4000))
	}
	p := &Page{}
	dom := stdout.String()
	a := strings.Index(dom, "PROBE{")
	b := strings.LastIndex(dom, "}PROBE")
	if a < 0 || b < a {
		return nil, fmt.Errorf("chromium: the probe did not run (no boxes in the DOM)\n%s", tail(stderr.String(), 4000))
	}
	var out struct {
		Boxes        []Box
		ScrollHeight float64
	}
	if err := json.Unmarshal([]byte(dom[a+len("PROBE"):b+1]), &out); err != nil {
		return nil, fmt.Errorf("chromium: probe output: %v", err)
	}
	p.Boxes, p.ScrollHeight = out.Boxes, out.ScrollHeight
	f, err := os.Open(shot)
	if err != nil {
		return nil, fmt.Errorf("chromium wrote no screenshot: %v\n%s", err, tail(stderr.String(), 4000))
	}
	defer f.Close()
	if p.Screenshot, err = png.Decode(f); err != nil {
		return nil, fmt.Errorf("screenshot: %v", err)
	}
	if p.Requests, err = pageRequests(netlog); err != nil {
		return nil, err
	}
	return p, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// pageRequests reads a NetLog (--log-net-log) for the URL requests a
// page made: URL_REQUEST_START_JOB events whose network isolation key or
// cookie site is the file:// page's (the browser's own background
// requests, which --disable-background-networking does not stop all of,
// have another or none).
func pageRequests(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("net log: %v", err)
	}
	var nl struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL                 string `json:"url"`
				Initiator           string `json:"initiator"`
				NetworkIsolationKey string `json:"network_isolation_key"`
				SiteForCookies      string `json:"site_for_cookies"`
			} `json:"params"`
		} `json:"events"`
	}
	// Chromium may be killed before it ends the file's JSON: close it.
	if err := json.Unmarshal(b, &nl); err != nil {
		fixed := strings.TrimRight(strings.TrimSpace(string(b)), ",") + "]}"
		if err2 := json.Unmarshal([]byte(fixed), &nl); err2 != nil {
			return nil, fmt.Errorf("net log %s: %v", path, err)
		}
	}
	start, ok := nl.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, errors.New("net log: no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range nl.Events {
		p := e.Params
		if e.Type != start || p.URL == "" {
			continue
		}
		if strings.HasPrefix(p.NetworkIsolationKey, "file://") || strings.Contains(p.SiteForCookies, "file://") ||
			p.Initiator == "null" || strings.HasPrefix(p.Initiator, "file://") {
			urls = append(urls, p.URL)
		}
	}
	return urls, nil
}

// Colored counts the pixels of box whose colour is saturated (the
// largest of R, G, B exceeds the smallest by more than 60 of 255): a
// chart's data, where axes, grid and text are black or grey.
func Colored(img image.Image, b Box) int {
	r := image.Rect(int(b.X), int(b.Y), int(b.X+b.Width), int(b.Y+b.Height)).Intersect(img.Bounds())
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			hi, lo := max(cr, cg, cb)>>8, min(cr, cg, cb)>>8
			if hi-lo > 60 {
				n++
			}
		}
	}
	return n
}
