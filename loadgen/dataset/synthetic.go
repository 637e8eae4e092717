package dataset

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
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

	// SyntheticTokensPerWord is the token measure used without a
	// tokenizer: a text of W words counts as W × 1.3 tokens, about what
	// BPE tokenizers of Llama-class models give for plain English words.
	SyntheticTokensPerWord = 1.3

	minSyntheticTokens = 4
	// syntheticSpread is the coefficient of variation of mean= lengths
	// (a log-normal whose logarithm has standard deviation 0.5): 95 % of
	// lengths fall between about a third and two and a half times the
	// mean, a spread like that of real chat and completion prompts.
	syntheticSpread = 0.5329
	// The random streams of one seed: the lengths, each prompt's words,
	// each group's prefix words. They are apart from each other and from
	// other users of the seed (arrival schedules, output lengths).
	streamLengths = 0x70726f6d707473
	streamWords   = 0x776f726473
	streamPrefix  = 0x707265666978

	// tokenizeWorkers is how many prompts are fitted at once: a server's
	// /tokenize answers in about a millisecond, so a few calls in flight
	// make a thousand prompts a matter of seconds.
	tokenizeWorkers = 8
	// maxFitCalls bounds the tokenizer calls spent on one text.
	maxFitCalls = 64
)

// Tokenizer counts tokens as the server does, for synthetic prompts of
// exact lengths: the server's own POST /tokenize, or the model's
// tokenizer.json. It must be safe for concurrent use.
type Tokenizer interface {
	// Tokenize returns the token ids of text sent as a prompt or, with
	// chat, as the one user message of a chat request (the chat
	// template included): the ids whose count the server reports as
	// prompt_tokens.
	Tokenize(ctx context.Context, text string, chat bool) ([]int, error)
}

// SyntheticSpec is what a synthetic source asks for: "synthetic",
// "synthetic:mean=TOKENS,n=COUNT", "synthetic:prefix=TOKENS,groups=G".
type SyntheticSpec struct {
	// N is how many prompts are made.
	N int
	// Input is the length, in tokens, of each prompt, or with Prefix of
	// the unique part after the prefix.
	Input lengths.Dist
	// Prefix, if above 0, starts every prompt with one of Groups shared
	// texts of Prefix tokens (prompt i has prefix i mod Groups), so
	// that a server's prefix cache can reuse them.
	Prefix, Groups int
}

// SyntheticStats says how exact a synthetic set came out.
type SyntheticStats struct {
	// Estimated is true when no tokenizer was at hand: lengths are
	// SyntheticTokensPerWord tokens per word.
	Estimated bool
	// Exact counts the prompts the tokenizer counts at their target;
	// Off those it could not (a target below the shortest text the
	// server counts, e.g. under a chat template), MaxOff the largest
	// miss in tokens.
	Exact, Off, MaxOff int
	// PrefixBroken counts the prompts whose first Prefix tokens are not
	// their group's prefix (the tokenizer merged the prefix's last token
	// with the text after it).
	PrefixBroken int
	// Calls counts the tokenizer's calls.
	Calls int
}

// Synthetic returns n varied English-like prompts of about meanTokens
// tokens each, estimated at SyntheticTokensPerWord tokens per word,
// with lengths drawn from a log-normal spread around meanTokens (never
// fewer than 4 tokens). The same arguments always give the same prompts.
// A meanTokens below 4 is raised to 4; n ≤ 0 gives none.
func Synthetic(n, meanTokens int, seed int64) []string {
	if n <= 0 {
		return nil
	}
	spec := SyntheticSpec{N: n, Input: MeanLength(meanTokens)}
	prompts, _, _ := MakeSynthetic(context.Background(), spec, nil, false, seed)
	texts := make([]string, len(prompts))
	for i := range prompts {
		texts[i] = prompts[i].Text
	}
	return texts
}

// MeanLength is the input length "mean=TOKENS" stands for: a log-normal
// of that mean and a coefficient of variation of 0.53, at least 4
// tokens.
func MeanLength(meanTokens int) lengths.Dist {
	m := float64(max(meanTokens, minSyntheticTokens))
	return lengths.Dist{Dist: lengths.LogNormal, Mean: m, Std: math.Round(m*syntheticSpread*100) / 100, Min: minSyntheticTokens}
}

// MakeSynthetic makes spec's prompts. Each prompt's target length is
// drawn from spec.Input (plus spec.Prefix) and recorded as its
// InputTokens. With a tokenizer, each text is fitted until tok counts
// exactly that many tokens (as a chat message with chat), and each
// group's prefix until it is exactly spec.Prefix tokens as a prompt and
// the first spec.Prefix tokens of each of its prompts; without one, the
// lengths are estimated. The same spec, seed and tokenizer always give
// the same prompts.
func MakeSynthetic(ctx context.Context, spec SyntheticSpec, tok Tokenizer, chat bool, seed int64) ([]Prompt, *SyntheticStats, error) {
	if spec.N <= 0 {
		return nil, &SyntheticStats{Estimated: tok == nil}, nil
	}
	if spec.Input.IsZero() {
		spec.Input = MeanLength(DefaultSyntheticMeanTokens)
	}
	groups := 0
	if spec.Prefix > 0 {
		groups = max(spec.Groups, 1)
	}
	sampler := lengths.NewSampler(spec.Input, seed, streamLengths)
	prompts := make([]Prompt, spec.N)
	for i := range prompts {
		prompts[i].InputTokens = spec.Prefix + sampler.Next()
	}
	g := &generator{tok: tok, chat: chat, seed: seed, stats: &SyntheticStats{Estimated: tok == nil}}

	prefixes := make([]fitted, groups)
	if err := g.each(ctx, groups, func(ctx context.Context, i int) error {
		var err error
		prefixes[i], err = g.prefix(ctx, i, spec.Prefix)
		return err
	}); err != nil {
		return nil, nil, err
	}
	err := g.each(ctx, len(prompts), func(ctx context.Context, i int) error {
		var head *fitted
		if groups > 0 {
			head = &prefixes[i%groups]
		}
		text, err := g.prompt(ctx, i, head, prompts[i].InputTokens, spec.Prefix)
		prompts[i].Text = text
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return prompts, g.stats, nil
}

// generator fits texts to token counts.
type generator struct {
	tok   Tokenizer
	chat  bool
	seed  int64
	mu    sync.Mutex
	stats *SyntheticStats
}

// fitted is a text and its prompt-form token ids (nil without a
// tokenizer).
type fitted struct {
	text string
	ids  []int
}

// each runs f for 0..n-1, on several goroutines when a tokenizer is
// used, and returns the first error.
func (g *generator) each(ctx context.Context, n int, f func(context.Context, int) error) error {
	workers := 1
	if g.tok != nil {
		workers = min(tokenizeWorkers, n)
	}
	if workers <= 1 {
		for i := range n {
			if err := f(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// count tokenizes text (chat: as a chat message).
func (g *generator) count(ctx context.Context, text string, chat bool) ([]int, error) {
	ids, err := g.tok.Tokenize(ctx, text, chat)
	g.mu.Lock()
	g.stats.Calls++
	g.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("tokenize a synthetic prompt: %w", err)
	}
	return ids, nil
}

// prefix makes group i's shared prefix of n tokens.
func (g *generator) prefix(ctx context.Context, i, n int) (fitted, error) {
	ws := newWordStream(g.seed, streamPrefix, uint64(i))
	if g.tok == nil {
		return fitted{text: ws.text("", estimateWords(n))}, nil
	}
	text, _, err := g.fit(ctx, ws, "", n, false)
	if err != nil {
		return fitted{}, err
	}
	ids, err := g.count(ctx, text, false)
	if err != nil {
		return fitted{}, err
	}
	// A prefix is shared only if its last token ends where the text
	// after it begins. With a word-level (BPE) tokenizer it does, as
	// every suffix starts with a space; a tokenizer of fixed runs of
	// characters needs the prefix padded to a run's end, which a few
	// full stops do without adding a token.
	probe := text + " " + newWordStream(g.seed, streamWords, uint64(i)).text("", 3)
	for range 4 {
		ok, err := g.sharesPrefix(ctx, probe, ids)
		if err != nil || ok {
			return fitted{text: text, ids: ids}, err
		}
		padded, err := g.count(ctx, text+".", false)
		if err != nil {
			return fitted{}, err
		}
		if len(padded) != len(ids) {
			break
		}
		text, ids = text+".", padded
		probe = text + probe[len(text)-1:]
	}
	return fitted{text: text, ids: ids}, nil
}

// sharesPrefix reports whether text's first tokens (as a prompt) are
// prefix.
func (g *generator) sharesPrefix(ctx context.Context, text string, prefix []int) (bool, error) {
	ids, err := g.count(ctx, text, false)
	if err != nil {
		return false, err
	}
	return len(ids) >= len(prefix) && slices.Equal(ids[:len(prefix)], prefix), nil
}

// prompt makes prompt i: its group's prefix, if any, and words until the
// whole counts target tokens.
// prefixTokens is the prefix's length, for estimates.
func (g *generator) prompt(ctx context.Context, i int, head *fitted, target, prefixTokens int) (string, error) {
	ws := newWordStream(g.seed, streamWords, uint64(i))
	headText := ""
	if head != nil {
		headText = head.text
	}
	if g.tok == nil {
		return ws.text(headText, estimateWords(target-prefixTokens)), nil
	}
	text, got, err := g.fit(ctx, ws, headText, target, g.chat)
	if err != nil {
		return "", err
	}
	broken := false
	if head != nil {
		ok, err := g.sharesPrefix(ctx, text, head.ids)
		if err != nil {
			return "", err
		}
		broken = !ok
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if got == target {
		g.stats.Exact++
	} else {
		g.stats.Off++
		g.stats.MaxOff = max(g.stats.MaxOff, abs(got-target))
	}
	if broken {
		g.stats.PrefixBroken++
	}
	return text, nil
}

// fit returns head followed by words of ws, and maybe a few short words
// and punctuation at the end, such that the tokenizer counts target
// tokens (chat: as a chat message), and that count; when no text counts
// exactly target (a target below the shortest text, or after
// maxFitCalls calls), the closest below it, else the shortest text.
//
// A text's count grows with its words, so the search brackets the
// target between k words (below or at it) and k+1 (above), starting
// from an estimate and interpolating; then short fillers close the gap
// one token at a time.
func (g *generator) fit(ctx context.Context, ws *wordStream, head string, target int, chat bool) (string, int, error) {
	calls := 0
	eval := func(text string) (int, error) {
		calls++
		ids, err := g.count(ctx, text, chat)
		return len(ids), err
	}
	base := 0
	if head != "" {
		ids, err := g.count(ctx, head, chat)
		if err != nil {
			return "", 0, err
		}
		base = len(ids)
	}
	k := max(1, estimateWords(target-base))
	lo, cLo := 0, base // lo words count cLo ≤ target (0 words: the head alone)
	hi, cHi := -1, 0   // hi words count cHi > target; -1: none found yet
search:
	for calls < maxFitCalls/2 {
		text := ws.text(head, k)
		c, err := eval(text)
		if err != nil {
			return "", 0, err
		}
		if c == target {
			return text, c, nil
		}
		if c < target {
			lo, cLo = k, c
		} else {
			hi, cHi = k, c
		}
		switch {
		case hi >= 0 && hi-lo <= 1:
			break search
		case hi < 0:
			// Too short: extrapolate from the tokens per word so far.
			perWord := max(float64(cLo-base)/float64(lo), 0.5)
			k = lo + max(1, int(math.Ceil(float64(target-cLo)/perWord)))
		default:
			// Interpolate within the bracket.
			k = lo + int(math.Round(float64(target-cLo)*float64(hi-lo)/float64(cHi-cLo)))
			k = min(max(k, lo+1), hi-1)
		}
	}
	if lo == 0 {
		// Even one word is too many (a target below the head, or below
		// a chat template's own tokens): the shortest text.
		text := ws.text(head, 1)
		c, err := eval(text)
		return text, c, err
	}
	// One word more is too many: close the gap with fillers, each
	// adding at most a token. When none adds one, the first that leaves
	// the count as it is moves the text on (a tokenizer of fixed runs of
	// characters then reaches its next run).
	text, cur := ws.text(head, lo), cLo
	for tries := 0; cur < target && tries < 12 && calls < maxFitCalls; tries++ {
		neutral, progressed := "", false
		for _, f := range fillers {
			c, err := eval(text + f)
			if err != nil {
				return "", 0, err
			}
			if c == target {
				return text + f, c, nil
			}
			if c < target && c > cur {
				text, cur, progressed = text+f, c, true
				break
			}
			if c == cur && neutral == "" {
				neutral = text + f
			}
		}
		if !progressed {
			if neutral == "" {
				break
			}
			text = neutral
		}
	}
	return text, cur, nil
}

// fillers close the last gap to a target: each is one short token of
// most tokenizers, and they are 1 to 4 characters long.
var fillers = []string{".", " a", " of", " the", ",", " I", ";", " and"}

// estimateWords is how many words make tokens tokens at
// SyntheticTokensPerWord, at least 1.
func estimateWords(tokens int) int {
	return max(1, int(math.Round(float64(tokens)/SyntheticTokensPerWord)))
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// wordStream is one text's words, drawn as needed: sentences of 6 to 18
// words, each capitalised and ended by a full stop.
type wordStream struct {
	rng      *rand.Rand
	pieces   []string // the words so far, with their leading space and full stop
	sentence int      // words left in the current sentence
	b        strings.Builder
}

func newWordStream(seed int64, stream, index uint64) *wordStream {
	return &wordStream{rng: rand.New(rand.NewPCG(uint64(seed)^splitmix(stream), splitmix(index)))}
}

// text is head, then the first k words (after a space when head is not
// empty).
func (w *wordStream) text(head string, k int) string {
	for len(w.pieces) < k {
		word := syntheticWords[w.rng.IntN(len(syntheticWords))]
		if w.sentence == 0 {
			word = strings.ToUpper(word[:1]) + word[1:]
			w.sentence = 6 + w.rng.IntN(13)
		}
		w.sentence--
		if w.sentence == 0 {
			word += "."
		}
		if len(w.pieces) > 0 {
			word = " " + word
		}
		w.pieces = append(w.pieces, word)
	}
	w.b.Reset()
	w.b.WriteString(head)
	if head != "" && k > 0 {
		w.b.WriteByte(' ')
	}
	for _, p := range w.pieces[:k] {
		w.b.WriteString(p)
	}
	return w.b.String()
}

// splitmix is SplitMix64's finaliser: nearby seeds and indices seed
// unrelated generators.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// ParseSynthetic reads "synthetic[:mean=TOKENS,n=COUNT,prefix=TOKENS,groups=G]".
// n defaults to the limit, else DefaultSyntheticCount, and never exceeds
// the limit (0: none). mean= sets the input length (MeanLength); input,
// when set, sets it instead and may not be given with mean=.
func ParseSynthetic(source string, limit int, input lengths.Dist) (SyntheticSpec, error) {
	var spec SyntheticSpec
	mean, groups := 0, 0
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
			dst = &spec.N
		case "prefix":
			dst = &spec.Prefix
		case "groups":
			dst = &groups
		default:
			return spec, fmt.Errorf("dataset %s: unknown parameter %q (known: mean, n, prefix, groups)", source, key)
		}
		v, err := strconv.Atoi(strings.TrimSpace(value))
		if err != nil || v <= 0 {
			return spec, fmt.Errorf("dataset %s: %s=%q is not a positive whole number", source, key, value)
		}
		if (key == "mean" || key == "prefix") && v > lengths.MaxTokens {
			return spec, fmt.Errorf("dataset %s: %s=%d is more than %d tokens", source, key, v, lengths.MaxTokens)
		}
		*dst = v
	}
	switch {
	case mean > 0 && !input.IsZero():
		return spec, fmt.Errorf("dataset %s: mean= and input_len (--input-len %s) both set the prompts' length: give one", source, input)
	case groups > 0 && spec.Prefix == 0:
		return spec, fmt.Errorf("dataset %s: groups=%d needs prefix=TOKENS, the length of each group's shared prefix", source, groups)
	case groups > 0:
		spec.Groups = groups
	case spec.Prefix > 0:
		spec.Groups = 1
	}
	spec.Input = input
	if input.IsZero() {
		spec.Input = MeanLength(cmp.Or(mean, DefaultSyntheticMeanTokens))
	}
	switch {
	case spec.N == 0 && limit > 0:
		spec.N = limit
	case spec.N == 0:
		spec.N = DefaultSyntheticCount
	case limit > 0:
		spec.N = min(spec.N, limit)
	}
	return spec, nil
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
