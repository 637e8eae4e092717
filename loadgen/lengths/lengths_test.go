package lengths

import (
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Dist
	}{
		{"", Dist{}},
		{"500", Dist{Dist: Fixed, Value: 500}},
		{"fixed:64", Dist{Dist: Fixed, Value: 64}},
		{"fixed:value=64", Dist{Dist: Fixed, Value: 64}},
		{"uniform:min=100,max=900", Dist{Dist: Uniform, Min: 100, Max: 900}},
		{"normal:mean=500,std=100", Dist{Dist: Normal, Mean: 500, Std: 100}},
		{" LogNormal: mean=500, std=100, min=16, max=4096 ", Dist{Dist: LogNormal, Mean: 500, Std: 100, Min: 16, Max: 4096}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if !tt.want.IsZero() {
			if again, err := Parse(got.String()); err != nil || again != got {
				t.Errorf("Parse(%q.String() = %q) = %+v, %v", tt.in, got.String(), again, err)
			}
		}
	}
	for in, msg := range map[string]string{
		"0":                              "from 1 to",
		"zipf:mean=3":                    "unknown distribution",
		"uniform:min=10":                 "max must be",
		"uniform:min=10,max=5":           "more than max",
		"uniform:mean=10,min=1,max=5":    "uniform takes no mean",
		"normal:std=10":                  "mean must be",
		"normal:mean=10,std=-1":          "std must be",
		"normal:mean=10,value=3":         "takes no value",
		"lognormal:mean=10,sd=3":         `unknown parameter "sd"`,
		"lognormal:mean=x":               "not a number",
		"lognormal:mean=10,min=1.5":      "not a whole number",
		"lognormal:mean=10,max=2000000":  "from 1 to 1000000",
		"lognormal:mean=10,std=2,min=20": "", // valid: truncated from below
		"fixed:value=5,min=3":            "fixed takes no min",
		"normal:mean=10 std=3":           "not a number",
	} {
		_, err := Parse(in)
		if msg == "" {
			if err != nil {
				t.Errorf("Parse(%q): %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Parse(%q) error %v, want one containing %q", in, err, msg)
		}
	}
}

func TestYAML(t *testing.T) {
	t.Parallel()
	var v struct {
		In  Dist `yaml:"in"`
		Out Dist `yaml:"out"`
		Fix Dist `yaml:"fix"`
	}
	doc := "in: {dist: lognormal, mean: 500, std: 100, min: 16, max: 4096}\nout: uniform:min=10,max=20\nfix: 128\n"
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	if v.In != (Dist{Dist: LogNormal, Mean: 500, Std: 100, Min: 16, Max: 4096}) || v.Out != (Dist{Dist: Uniform, Min: 10, Max: 20}) ||
		v.Fix != (Dist{Dist: Fixed, Value: 128}) {
		t.Errorf("decoded %+v", v)
	}
	for doc, msg := range map[string]string{
		"in: {dist: normal, mean: 5, stdev: 1}": `line 1: unknown parameter "stdev"`,
		"in: {mean: 5}":                         "line 1: dist must be one of",
		"in:\n  dist: normal\n  mean: -3\n":     "line 2: normal mean must be",
		"in: [1, 2]":                            "line 1: want a distribution",
		"in: {dist: normal, mean: [1]}":         "mean must be a number",
	} {
		err := yaml.Unmarshal([]byte(doc), &v)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one containing %q", doc, err, msg)
		}
	}
}

// moments draws n lengths and returns their mean, standard deviation and
// range.
func moments(s *Sampler, n int) (mean, std float64, lo, hi int) {
	sum, sq := 0.0, 0.0
	lo, hi = math.MaxInt, 0
	for range n {
		v := s.Next()
		sum += float64(v)
		sq += float64(v) * float64(v)
		lo, hi = min(lo, v), max(hi, v)
	}
	mean = sum / float64(n)
	return mean, math.Sqrt(sq/float64(n) - mean*mean), lo, hi
}

func TestSamplerMoments(t *testing.T) {
	t.Parallel()
	const n = 20000
	tests := []struct {
		d                Dist
		mean, std        float64 // wanted, within 3 %
		lo, hi           int     // wanted bounds of the draws
		spanLo, spanHi   int     // the draws must reach below spanLo and above spanHi
		meanTol, stdTolR float64
	}{
		{d: Dist{Dist: Fixed, Value: 77}, mean: 77, std: 0, lo: 77, hi: 77, spanLo: 78, spanHi: 76},
		{d: Dist{Dist: Uniform, Min: 100, Max: 900}, mean: 500, std: 800 / math.Sqrt(12), lo: 100, hi: 900, spanLo: 105, spanHi: 895},
		{d: Dist{Dist: Normal, Mean: 500, Std: 100}, mean: 500, std: 100, lo: 1, hi: MaxTokens, spanLo: 200, spanHi: 800},
		{d: Dist{Dist: LogNormal, Mean: 500, Std: 300}, mean: 500, std: 300, lo: 1, hi: MaxTokens, spanLo: 150, spanHi: 1500},
	}
	for _, tt := range tests {
		mean, std, lo, hi := moments(NewSampler(tt.d, 42, 1), n)
		if math.Abs(mean-tt.mean) > 0.03*tt.mean || math.Abs(std-tt.std) > 0.03*max(tt.std, 1) {
			t.Errorf("%v: mean %.1f std %.1f, want %.1f and %.1f", tt.d, mean, std, tt.mean, tt.std)
		}
		if lo < tt.lo || hi > tt.hi || lo > tt.spanLo || hi < tt.spanHi {
			t.Errorf("%v: draws span %d..%d, want within %d..%d and beyond %d..%d", tt.d, lo, hi, tt.lo, tt.hi, tt.spanLo, tt.spanHi)
		}
	}
}

func TestSamplerBounds(t *testing.T) {
	t.Parallel()
	// Truncation: the bounds are never crossed, the draws still spread
	// between them, and (unlike clamping) pile up on neither bound.
	for _, d := range []Dist{
		{Dist: LogNormal, Mean: 500, Std: 400, Min: 300, Max: 700},
		{Dist: Normal, Mean: 100, Std: 80, Min: 16, Max: 150},
	} {
		s := NewSampler(d, 7, 2)
		atBound := 0
		_, _, lo, hi := moments(s, 1) // warm the range
		for range 5000 {
			v := s.Next()
			lo, hi = min(lo, v), max(hi, v)
			if v == d.Min || v == d.Max {
				atBound++
			}
		}
		if lo < d.Min || hi > d.Max || lo > d.Min+10 || hi < d.Max-10 {
			t.Errorf("%v: draws span %d..%d", d, lo, hi)
		}
		if atBound > 5000/50 {
			t.Errorf("%v: %d of 5000 draws on a bound: clamped, not truncated", d, atBound)
		}
	}
	// Bounds that cut off (nearly) the whole distribution clamp.
	s := NewSampler(Dist{Dist: Normal, Mean: 10, Std: 1, Min: 1000, Max: 1000}, 1, 1)
	if v := s.Next(); v != 1000 {
		t.Errorf("draw %d outside a one-value range 1000..1000", v)
	}
}

func TestSamplerDeterministic(t *testing.T) {
	t.Parallel()
	d := Dist{Dist: LogNormal, Mean: 300, Std: 100}
	a, b, c := NewSampler(d, 5, 1), NewSampler(d, 5, 1), NewSampler(d, 5, 2)
	same, differ := true, false
	for range 100 {
		x, y, z := a.Next(), b.Next(), c.Next()
		same = same && x == y
		differ = differ || x != z
	}
	if !same || !differ {
		t.Errorf("same seed and stream equal: %v; another stream differs: %v", same, differ)
	}
}
