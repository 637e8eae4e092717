package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Synthetic prompt defaults and shape.
const (
	syntheticName = "synthetic"

	// DefaultSyntheticMeanTokens is the mean prompt length, in tokens, of
	// synthetic prompts when none is given.
	DefaultSyntheticMeanTokens = 369
	// DefaultSyntheticCount is how many synthetic prompts are made when
	// neither n= nor a limit is given.
	DefaultSyntheticCount = 1000

	// SyntheticTokensPerWord is the token measure of synthetic prompts:
	// a prompt of W words counts as W × 1.3 tokens, about what BPE
	// tokenizers of Llama-class models give for plain English words.
	SyntheticTokensPerWord = 1.3

	minSyntheticTokens = 4
	// syntheticSpread is the standard deviation of ln(length): 95 % of
	// lengths fall between about a third and two and a half times the
	// mean, a spread like that of real chat and completion prompts.
	syntheticSpread = 0.5
	// syntheticStream separates this generator's random stream from other
	// users of the same seed (arrival schedules).
	syntheticStream = 0x70726f6d707473
)

// Synthetic returns n varied English-like prompts whose lengths, in
// the SyntheticTokensPerWord measure, follow a log-normal spread around
// meanTokens (never fewer than 4 tokens). The lengths are rescaled so the
// set's mean is meanTokens, up to rounding to whole words. The same
// arguments always give the same prompts. A meanTokens below 4 is raised
// to 4; n ≤ 0 gives none.
func Synthetic(n, meanTokens int, seed int64) []string {
	if n <= 0 {
		return nil
	}
	meanTokens = max(meanTokens, minSyntheticTokens)
	rng := rand.New(rand.NewPCG(uint64(seed), syntheticStream))

	lengths := make([]float64, n)
	sum := 0.0
	for i := range lengths {
		lengths[i] = math.Exp(syntheticSpread * rng.NormFloat64())
		sum += lengths[i]
	}
	scale := float64(meanTokens) * float64(n) / sum

	prompts := make([]string, n)
	var b strings.Builder
	for i, l := range lengths {
		tokens := max(l*scale, minSyntheticTokens)
		words := max(1, int(math.Round(tokens/SyntheticTokensPerWord)))
		prompts[i] = syntheticText(rng, words, &b)
	}
	return prompts
}

// syntheticText writes words random words as sentences of 6 to 18 words.
func syntheticText(rng *rand.Rand, words int, b *strings.Builder) string {
	b.Reset()
	sentence := 0
	for w := range words {
		word := syntheticWords[rng.IntN(len(syntheticWords))]
		if w > 0 {
			b.WriteByte(' ')
		}
		if sentence == 0 {
			b.WriteString(strings.ToUpper(word[:1]))
			b.WriteString(word[1:])
			sentence = 6 + rng.IntN(13)
		} else {
			b.WriteString(word)
		}
		sentence--
		if sentence == 0 || w == words-1 {
			b.WriteByte('.')
			sentence = 0
		}
	}
	return b.String()
}

// loadSynthetic parses "synthetic" or "synthetic:mean=TOKENS,n=COUNT".
// n defaults to the limit, else DefaultSyntheticCount, and never exceeds
// the limit.
func loadSynthetic(source string, opts Options) ([]string, error) {
	mean := DefaultSyntheticMeanTokens
	n := 0
	params, _ := strings.CutPrefix(source, syntheticName)
	params, _ = strings.CutPrefix(params, ":")
	for kv := range strings.SplitSeq(params, ",") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		key, value, _ := strings.Cut(kv, "=")
		key = strings.TrimSpace(key)
		var dst *int
		switch key {
		case "mean":
			dst = &mean
		case "n":
			dst = &n
		default:
			return nil, fmt.Errorf("dataset %s: unknown parameter %q (known: mean, n)", source, key)
		}
		v, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("dataset %s: %s=%q is not a positive whole number", source, key, value)
		}
		*dst = v
	}
	switch {
	case n == 0 && opts.Limit > 0:
		n = opts.Limit
	case n == 0:
		n = DefaultSyntheticCount
	case opts.Limit > 0:
		n = min(n, opts.Limit)
	}
	return Synthetic(n, mean, opts.Seed), nil
}

// syntheticWords is the vocabulary of synthetic prompts: common English
// words, so that tokenizers split them much as they split real text.
var syntheticWords = strings.Fields(`
the of and to in is was for that on as with by he at from his an were are
which this be or has had not but first one their its new after who they two
her she been other when there all during into school time may years more
most only over city some world would where later up such used many can state
about national out known university united then made also between under team
game season series year before three river water history people music film
album song station book church building energy power system number part
government work family life war group area house north south west east
language public company country small large early long second
described around major several until following called including common
local since light paper model question answer explain describe summary
write story reason change result market science study research data
report level open field view point design plan place form line
road court club island county period center village
computer network server request memory process signal record table
garden forest mountain valley ocean coast weather winter summer
spring autumn morning evening night travel journey letter message
friend teacher student doctor writer artist worker farmer leader
carefully quickly slowly clearly simply really often always never
important different possible available general special recent
strong simple similar modern private human natural social political
`)
