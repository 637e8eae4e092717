package dump

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A quantile inside the native zero bucket is 0, not 2.9e-39; anything
// outside it, however small, is kept.
func TestInZeroBucket(t *testing.T) {
	if nativeZeroThreshold != prometheus.DefNativeHistogramZeroThreshold {
		t.Fatalf("nativeZeroThreshold %g, client_golang's %g", nativeZeroThreshold, prometheus.DefNativeHistogramZeroThreshold)
	}
	for _, tc := range []struct{ in, want float64 }{
		{2.8797e-39, 0}, {-2.8797e-39, 0}, {0, 0}, {1e-30, 1e-30}, {0.0005, 0.0005},
	} {
		if got := inZeroBucket(tc.in); got != tc.want {
			t.Errorf("inZeroBucket(%g) = %g, want %g", tc.in, got, tc.want)
		}
	}
	if got := inZeroBucket(math.NaN()); !math.IsNaN(got) {
		t.Errorf("NaN became %g", got)
	}
}
