package promtest

import (
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
)

// Version is a Prometheus (or promtool) release, as --version says it.
type Version struct {
	Major, Minor int
	Known        bool // --version named a release; a build without one is taken as current
}

// AtLeast reports whether v is major.minor or later; an unknown version
// is taken as current (a build from source without version ldflags).
func (v Version) AtLeast(major, minor int) bool {
	if !v.Known {
		return true
	}
	return v.Major > major || v.Major == major && v.Minor >= minor
}

var (
	versionRE    = regexp.MustCompile(`version (\d+)\.(\d+)\.`)
	versionMu    sync.Mutex
	versionCache = map[string]Version{}
)

// BinaryVersion runs bin --version (once per binary) and parses it.
func BinaryVersion(t testing.TB, bin string) Version {
	t.Helper()
	versionMu.Lock()
	defer versionMu.Unlock()
	if v, ok := versionCache[bin]; ok {
		return v
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	v := parseVersion(string(out))
	versionCache[bin] = v
	return v
}

// parseVersion reads --version's "version X.Y.Z"; none is unknown.
func parseVersion(out string) Version {
	var v Version
	if m := versionRE.FindStringSubmatch(out); m != nil {
		v.Major, _ = strconv.Atoi(m[1])
		v.Minor, _ = strconv.Atoi(m[2])
		v.Known = true
	}
	return v
}

// PrometheusVersion is the version of the prometheus on PATH (the test
// skips without one, as StartPrometheus does).
func PrometheusVersion(t testing.TB) Version {
	t.Helper()
	return BinaryVersion(t, binary(t, "prometheus", "prometheus"))
}

// NativeHistogramsByConfig: Prometheus 3.9 and later ingest native
// histograms when the configuration says scrape_native_histograms: true
// (--enable-feature=native-histograms is a no-op there); earlier releases
// need the flag and reject the field.
func (v Version) NativeHistogramsByConfig() bool { return v.AtLeast(3, 9) }
