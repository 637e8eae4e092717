// Package lengths holds token-length distributions: how long, in tokens,
// the prompts and answers of a run are asked to be (input_len and
// output_len in a scenario, --input-len and --output-len). A Dist is
// fixed, uniform, normal or log-normal, with optional bounds; it is
// written compactly ("lognormal:mean=500,std=100,min=16,max=4096") or as
// a YAML mapping ({dist: lognormal, mean: 500, std: 100, ...}), and
// sampled with a seeded generator so that a seed always gives the same
// lengths.
//
// This package depends on nothing else of the module.
package lengths

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The distributions a Dist can be.
const (
	Fixed     = "fixed"     // always Value
	Uniform   = "uniform"   // whole numbers from Min to Max, each equally likely
	Normal    = "normal"    // Mean and Std, rounded, within the bounds
	LogNormal = "lognormal" // a log-normal with this Mean and Std (of the lengths, not of their logarithm), rounded, within the bounds
)

// Names lists the distributions, for errors and help.
var Names = []string{Fixed, Uniform, Normal, LogNormal}

// MaxTokens bounds every length: a million tokens is beyond the context
// window of the models served today, and a prompt of that length is
// already megabytes of text.
const MaxTokens = 1_000_000

// redraws is how many times a draw outside [Min, Max] is drawn again
// before it is clamped: the bounds truncate the distribution rather than
// pile its tails up on the bounds, unless they cut off nearly all of it.
const redraws = 100

// Dist is a distribution of token lengths. The zero value is "not set".
//
// Min and Max bound normal and log-normal draws (a draw outside them is
// drawn again, up to 100 times, then clamped); 0 means no bound (Min is
// then 1). For uniform they are the range, both required.
type Dist struct {
	Dist  string  `yaml:"dist"`  // Fixed, Uniform, Normal or LogNormal
	Value int     `yaml:"value"` // Fixed's length
	Mean  float64 `yaml:"mean"`  // Normal and LogNormal
	Std   float64 `yaml:"std"`   // Normal and LogNormal; 0: always Mean
	Min   int     `yaml:"min"`
	Max   int     `yaml:"max"`
}

// IsZero reports whether d is not set.
func (d Dist) IsZero() bool { return d == Dist{} }

// String writes d in the compact form Parse reads.
func (d Dist) String() string {
	if d.IsZero() {
		return ""
	}
	var parts []string
	switch d.Dist {
	case Fixed:
		return fmt.Sprintf("%s:%d", Fixed, d.Value)
	case Uniform:
	default:
		parts = append(parts, "mean="+strconv.FormatFloat(d.Mean, 'g', -1, 64), "std="+strconv.FormatFloat(d.Std, 'g', -1, 64))
	}
	if d.Min > 0 {
		parts = append(parts, "min="+strconv.Itoa(d.Min))
	}
	if d.Max > 0 {
		parts = append(parts, "max="+strconv.Itoa(d.Max))
	}
	return d.Dist + ":" + strings.Join(parts, ",")
}

// Parse reads the compact form of a distribution:
//
//	500                                        fixed
//	fixed:500  fixed:value=500                 fixed
//	uniform:min=100,max=900                    uniform
//	normal:mean=500,std=100[,min=N][,max=N]    normal
//	lognormal:mean=500,std=100[,min=N][,max=N] log-normal
//
// The result is validated.
func Parse(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Dist{}, nil
	}
	if v, err := strconv.Atoi(s); err == nil {
		d := Dist{Dist: Fixed, Value: v}
		return d, d.Validate()
	}
	name, params, _ := strings.Cut(s, ":")
	d := Dist{Dist: strings.ToLower(strings.TrimSpace(name))}
	if !slices.Contains(Names, d.Dist) {
		return Dist{}, fmt.Errorf("%q: unknown distribution %q (want %s, e.g. lognormal:mean=500,std=100,min=16,max=4096, or a number for a fixed length)",
			s, name, strings.Join(Names, ", "))
	}
	if d.Dist == Fixed {
		if v, err := strconv.Atoi(strings.TrimSpace(params)); err == nil {
			d.Value = v
			return d, d.Validate()
		}
	}
	for kv := range strings.SplitSeq(params, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		key, value, ok := strings.Cut(kv, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return Dist{}, fmt.Errorf("%q: %q is not key=value", s, kv)
		}
		if err := d.set(key, value); err != nil {
			return Dist{}, fmt.Errorf("%q: %w", s, err)
		}
	}
	if err := d.Validate(); err != nil {
		return Dist{}, fmt.Errorf("%q: %w", s, err)
	}
	return d, nil
}

// set sets one parameter from its text.
func (d *Dist) set(key, value string) error {
	var ip *int
	var fp *float64
	switch key {
	case "value":
		ip = &d.Value
	case "min":
		ip = &d.Min
	case "max":
		ip = &d.Max
	case "mean":
		fp = &d.Mean
	case "std":
		fp = &d.Std
	default:
		return fmt.Errorf("unknown parameter %q (%s takes %s)", key, d.Dist, strings.Join(d.params(), ", "))
	}
	if !slices.Contains(d.params(), key) {
		return fmt.Errorf("%s takes no %s (it takes %s)", d.Dist, key, strings.Join(d.params(), ", "))
	}
	if ip != nil {
		v, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("%s=%q is not a whole number", key, value)
		}
		*ip = v
		return nil
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%s=%q is not a number", key, value)
	}
	*fp = v
	return nil
}

// params lists the parameters d's distribution takes.
func (d *Dist) params() []string {
	switch d.Dist {
	case Fixed:
		return []string{"value"}
	case Uniform:
		return []string{"min", "max"}
	}
	return []string{"mean", "std", "min", "max"}
}

// Validate checks that d can be sampled: a known distribution with the
// parameters it needs, lengths from 1 to MaxTokens, and Min ≤ Max. The
// zero Dist is valid (not set).
func (d Dist) Validate() error {
	if d.IsZero() {
		return nil
	}
	if !slices.Contains(Names, d.Dist) {
		return fmt.Errorf("unknown distribution %q (want %s)", d.Dist, strings.Join(Names, ", "))
	}
	inRange := func(key string, v int, need bool) error {
		if (need || v != 0) && (v < 1 || v > MaxTokens) {
			return fmt.Errorf("%s %s must be a whole number of tokens from 1 to %d, got %d", d.Dist, key, MaxTokens, v)
		}
		return nil
	}
	unused := func(keys ...string) error {
		for _, k := range keys {
			var set bool
			switch k {
			case "value":
				set = d.Value != 0
			case "mean":
				set = d.Mean != 0
			case "std":
				set = d.Std != 0
			}
			if set {
				return fmt.Errorf("%s takes no %s (it takes %s)", d.Dist, k, strings.Join(d.params(), ", "))
			}
		}
		return nil
	}
	switch d.Dist {
	case Fixed:
		if err := unused("mean", "std"); err != nil {
			return err
		}
		if d.Min != 0 || d.Max != 0 {
			return fmt.Errorf("fixed takes no min or max (it takes value)")
		}
		return inRange("value", d.Value, true)
	case Uniform:
		if err := unused("value", "mean", "std"); err != nil {
			return err
		}
		if err := inRange("min", d.Min, true); err != nil {
			return err
		}
		if err := inRange("max", d.Max, true); err != nil {
			return err
		}
	default:
		if err := unused("value"); err != nil {
			return err
		}
		if !(d.Mean >= 1 && d.Mean <= MaxTokens) {
			return fmt.Errorf("%s mean must be from 1 to %d tokens, got %v", d.Dist, MaxTokens, d.Mean)
		}
		if !(d.Std >= 0 && d.Std <= MaxTokens) {
			return fmt.Errorf("%s std must be from 0 to %d tokens, got %v", d.Dist, MaxTokens, d.Std)
		}
		if err := inRange("min", d.Min, false); err != nil {
			return err
		}
		if err := inRange("max", d.Max, false); err != nil {
			return err
		}
	}
	if d.Max != 0 && d.Min > d.Max {
		return fmt.Errorf("%s min %d is more than max %d", d.Dist, d.Min, d.Max)
	}
	return nil
}

// UnmarshalYAML reads either form: a number (fixed), a compact string, or
// a mapping of dist, value, mean, std, min and max. Unknown keys and
// invalid values are errors naming the line.
func (d *Dist) UnmarshalYAML(n *yaml.Node) error {
	fail := func(format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*d = Dist{}
			return nil
		}
		v, err := Parse(n.Value)
		if err != nil {
			return fail("%v", err)
		}
		*d = v
		return nil
	case yaml.MappingNode:
		v := Dist{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "dist" {
				v.Dist = strings.ToLower(n.Content[i+1].Value)
			}
		}
		if !slices.Contains(Names, v.Dist) {
			return fail("dist must be one of %s, got %q", strings.Join(Names, ", "), v.Dist)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Value == "dist" {
				continue
			}
			if val.Kind != yaml.ScalarNode {
				return fail("%s must be a number", k.Value)
			}
			if err := v.set(k.Value, val.Value); err != nil {
				return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", k.Line, err)}}
			}
		}
		if err := v.Validate(); err != nil {
			return fail("%v", err)
		}
		*d = v
		return nil
	}
	return fail("want a distribution such as lognormal:mean=500,std=100 or a mapping {dist: ..., mean: ..., std: ...}")
}

// MarshalYAML writes d in the compact form.
func (d Dist) MarshalYAML() (any, error) { return d.String(), nil }

// Sampler draws lengths from a Dist with its own seeded generator.
type Sampler struct {
	d         Dist
	rng       *rand.Rand
	mu, sigma float64 // log-normal's parameters
}

// NewSampler returns a sampler of d seeded by seed and stream: the same
// three always give the same lengths, and different streams of one seed
// are independent. d must be valid and set.
func NewSampler(d Dist, seed int64, stream uint64) *Sampler {
	s := &Sampler{d: d, rng: rand.New(rand.NewPCG(uint64(seed), stream))}
	if d.Dist == LogNormal && d.Mean > 0 {
		// A log-normal of mean m and standard deviation s has
		// σ² = ln(1 + s²/m²) and μ = ln m − σ²/2.
		s.sigma = math.Sqrt(math.Log1p(d.Std * d.Std / (d.Mean * d.Mean)))
		s.mu = math.Log(d.Mean) - s.sigma*s.sigma/2
	}
	return s
}

// Next draws one length, in [max(Min, 1), Max] (Max 0: MaxTokens).
func (s *Sampler) Next() int {
	d := &s.d
	lo, hi := max(d.Min, 1), d.Max
	if hi == 0 {
		hi = MaxTokens
	}
	switch d.Dist {
	case Fixed:
		return d.Value
	case Uniform:
		return lo + s.rng.IntN(hi-lo+1)
	}
	var v float64
	for range redraws {
		if d.Dist == Normal {
			v = d.Mean + d.Std*s.rng.NormFloat64()
		} else {
			v = math.Exp(s.mu + s.sigma*s.rng.NormFloat64())
		}
		if r := math.Round(v); r >= float64(lo) && r <= float64(hi) {
			return int(r)
		}
	}
	return int(math.Round(min(max(v, float64(lo)), float64(hi))))
}
