package dataset

import (
	"context"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"unicode"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
)

// simTokenizer tokenizes through a real simulator's POST /tokenize.
type simTokenizer struct {
	c     *backends.OpenAI
	calls atomic.Int64
}

func (s *simTokenizer) Tokenize(ctx context.Context, text string, chat bool) ([]int, error) {
	s.calls.Add(1)
	return s.c.Tokenize(ctx, "tokenwatt-sim", text, chat)
}

func startSimTokenizer(t *testing.T) *simTokenizer {
	t.Helper()
	srv, err := sim.Start(t.Context(), "127.0.0.1:0", sim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := backends.NewOpenAI(backends.OpenAIConfig{Endpoint: srv.URL, VLLM: true})
	if err != nil {
		t.Fatal(err)
	}
	return &simTokenizer{c: c}
}

// wordTokenizer is a tokenizer shaped like BPE ones for plain English:
// a BOS, then one token per word (with its leading space) and one per
// punctuation mark; chat wraps the text in a 7-token template. Its ids
// are hashes of the pieces.
type wordTokenizer struct{}

func (wordTokenizer) Tokenize(_ context.Context, text string, chat bool) ([]int, error) {
	ids := []int{0}
	if chat {
		ids = append(ids, 1, 2, 3, 4, 5) // <|start|>user<|sep|>\n\n ... then <|end|> below
	}
	piece := ""
	flush := func() {
		if piece != "" {
			h := fnv.New32a()
			_, _ = h.Write([]byte(piece))
			ids = append(ids, 10+int(h.Sum32()%50000))
			piece = ""
		}
	}
	for _, r := range text {
		switch {
		case r == ' ':
			flush()
			piece = " "
		case unicode.IsPunct(r):
			flush()
			piece = string(r)
			flush()
		default:
			piece += string(r)
		}
	}
	flush()
	if chat {
		ids = append(ids, 6)
	}
	return ids, nil
}

func TestMakeSyntheticExact(t *testing.T) {
	tok := startSimTokenizer(t)
	words := wordTokenizer{}
	spec := SyntheticSpec{N: 60, Input: lengths.Dist{Dist: lengths.LogNormal, Mean: 120, Std: 60, Min: 8, Max: 400}}
	for _, tc := range []struct {
		name string
		tok  Tokenizer
		chat bool
	}{{"sim prompt", tok, false}, {"sim chat", tok, true}, {"words prompt", words, false}, {"words chat", words, true}} {
		prompts, stats, err := MakeSynthetic(t.Context(), spec, tc.tok, tc.chat, 3)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if stats.Estimated || stats.Exact != spec.N || stats.Off != 0 || stats.Calls == 0 {
			t.Errorf("%s: stats %+v", tc.name, stats)
		}
		for i, p := range prompts {
			ids, err := tc.tok.Tokenize(t.Context(), p.Text, tc.chat)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != p.InputTokens || p.InputTokens < 8 || p.InputTokens > 400 {
				t.Errorf("%s: prompt %d counts %d tokens, target %d", tc.name, i, len(ids), p.InputTokens)
			}
		}
		again, _, _ := MakeSynthetic(t.Context(), spec, tc.tok, tc.chat, 3)
		if !slices.EqualFunc(prompts, again, func(a, b Prompt) bool { return a.Text == b.Text && a.InputTokens == b.InputTokens }) {
			t.Errorf("%s: the same seed made other prompts", tc.name)
		}
	}
	if per := float64(tok.calls.Load()) / float64(4*spec.N); per > 8 {
		t.Errorf("%.1f tokenizer calls per prompt", per)
	}
}

func TestMakeSyntheticPrefix(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  Tokenizer
	}{{"sim", startSimTokenizer(t)}, {"words", wordTokenizer{}}} {
		spec := SyntheticSpec{N: 12, Input: lengths.Dist{Dist: lengths.Uniform, Min: 20, Max: 60}, Prefix: 50, Groups: 3}
		prompts, stats, err := MakeSynthetic(t.Context(), spec, tc.tok, false, 1)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Exact != spec.N || stats.PrefixBroken != 0 {
			t.Errorf("%s: stats %+v", tc.name, stats)
		}
		heads := make([][]int, spec.Groups)
		for i, p := range prompts {
			ids, _ := tc.tok.Tokenize(t.Context(), p.Text, false)
			if len(ids) != p.InputTokens || p.InputTokens < 70 || p.InputTokens > 110 {
				t.Errorf("%s: prompt %d counts %d tokens, target %d", tc.name, i, len(ids), p.InputTokens)
			}
			g := i % spec.Groups
			if heads[g] == nil {
				heads[g] = ids[:spec.Prefix]
			} else if !slices.Equal(heads[g], ids[:spec.Prefix]) {
				t.Errorf("%s: prompt %d does not share its group's first %d tokens", tc.name, i, spec.Prefix)
			}
			if slices.Equal(ids[:spec.Prefix+1], heads[g][:min(len(heads[g]), spec.Prefix+1)]) && i >= spec.Groups {
				t.Errorf("%s: prompt %d shares more than the prefix", tc.name, i)
			}
		}
		if slices.Equal(heads[0][1:], heads[1][1:]) {
			t.Errorf("%s: groups 0 and 1 have the same prefix", tc.name)
		}
	}
}

func TestMakeSyntheticUnreachable(t *testing.T) {
	t.Parallel()
	// Under a 7-token chat template, 4 tokens cannot be reached: the
	// shortest text is made, and counted as off.
	spec := SyntheticSpec{N: 3, Input: lengths.Dist{Dist: lengths.Fixed, Value: 4}}
	prompts, stats, err := MakeSynthetic(t.Context(), spec, wordTokenizer{}, true, 1)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Off != 3 || stats.MaxOff != 4 || len(strings.Fields(prompts[0].Text)) != 1 {
		t.Errorf("stats %+v, prompt %q", stats, prompts[0].Text)
	}
}

func TestMakeSyntheticEstimated(t *testing.T) {
	t.Parallel()
	spec := SyntheticSpec{N: 400, Input: lengths.Dist{Dist: lengths.Normal, Mean: 260, Std: 40}, Prefix: 130, Groups: 2}
	prompts, stats, err := MakeSynthetic(t.Context(), spec, nil, false, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !stats.Estimated || stats.Calls != 0 {
		t.Errorf("stats %+v", stats)
	}
	sum := 0.0
	for i, p := range prompts {
		words := len(strings.Fields(p.Text))
		sum += float64(words) * SyntheticTokensPerWord
		if !strings.HasPrefix(p.Text, strings.Join(strings.Fields(prompts[i%2].Text)[:100], " ")) {
			t.Fatalf("prompt %d does not start with its group's prefix", i)
		}
		if math.Abs(float64(words)*SyntheticTokensPerWord-float64(p.InputTokens)) > 2 {
			t.Errorf("prompt %d: %d words for a target of %d tokens", i, words, p.InputTokens)
		}
	}
	if mean := sum / float64(len(prompts)); math.Abs(mean-390) > 10 {
		t.Errorf("estimated mean %.1f tokens, want about 130 + 260", mean)
	}
}

func TestParseSynthetic(t *testing.T) {
	t.Parallel()
	in := lengths.Dist{Dist: lengths.Uniform, Min: 10, Max: 20}
	for _, tt := range []struct {
		source string
		limit  int
		input  lengths.Dist
		want   SyntheticSpec
	}{
		{"synthetic", 0, lengths.Dist{}, SyntheticSpec{N: DefaultSyntheticCount, Input: MeanLength(DefaultSyntheticMeanTokens)}},
		{"synthetic:n=30,mean=500", 10, lengths.Dist{}, SyntheticSpec{N: 10, Input: MeanLength(500)}},
		{"synthetic:prefix=100", 0, in, SyntheticSpec{N: DefaultSyntheticCount, Input: in, Prefix: 100, Groups: 1}},
		{"synthetic:prefix=100,groups=4,n=8", 0, in, SyntheticSpec{N: 8, Input: in, Prefix: 100, Groups: 4}},
	} {
		got, err := ParseSynthetic(tt.source, tt.limit, tt.input)
		if err != nil || got != tt.want {
			t.Errorf("ParseSynthetic(%q) = %+v, %v; want %+v", tt.source, got, err, tt.want)
		}
	}
	for source, msg := range map[string]string{
		"synthetic:groups=3":         "groups=3 needs prefix=TOKENS",
		"synthetic:mean=50":          "mean= and input_len",
		"synthetic:prefix=2000000":   "more than 1000000 tokens",
		"synthetic:prefix=-1":        "not a positive whole number",
		"synthetic:size=3":           `unknown parameter "size"`,
		"synthetic:n=2,prefix=x,n=3": `prefix="x"`,
	} {
		if _, err := ParseSynthetic(source, 0, in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseSynthetic(%q): error %v, want one containing %q", source, err, msg)
		}
	}
	if MeanLength(1) != (lengths.Dist{Dist: lengths.LogNormal, Mean: 4, Std: 2.13, Min: 4}) || MeanLength(500).Validate() != nil {
		t.Errorf("MeanLength: %+v", MeanLength(1))
	}
}

func TestLoadInputLen(t *testing.T) {
	t.Parallel()
	in := lengths.Dist{Dist: lengths.Fixed, Value: 40}
	set, err := Load(t.Context(), "synthetic:n=5", Options{InputLen: in, Tokenizer: wordTokenizer{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Prompts) != 5 || set.Synthetic == nil || set.Synthetic.Exact != 5 || set.Prompts[0].InputTokens != 40 || set.Format != FormatPrompt {
		t.Errorf("set %+v, stats %+v", set, set.Synthetic)
	}
	if _, err := Load(t.Context(), "testdata/prompts.jsonl", Options{InputLen: in}); err == nil || !strings.Contains(err.Error(), "use --dataset synthetic") {
		t.Errorf("input_len with a file: %v", err)
	}
}
