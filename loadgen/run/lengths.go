package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/dataset"
	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
	"github.com/tokenwatt/tokenwatt/loadgen/tokenizer"
)

// How synthetic prompts' tokens were counted (report.json's
// settings.prompt_tokenizer).
const (
	tokenizerServer   = "server"
	tokenizerFile     = "tokenizer.json"
	tokenizerEstimate = "estimate"
)

// tokenizeTimeout bounds one call to the server's POST /tokenize.
const tokenizeTimeout = 30 * time.Second

// outputLenStream separates output lengths from the seed's other random
// streams (prompts, input lengths, arrivals).
const outputLenStream = 0x6f75747075746c

// serverTokenizer counts with the server's POST /tokenize.
type serverTokenizer struct {
	b     backends.Tokenizer
	model string
}

func (s serverTokenizer) Tokenize(ctx context.Context, text string, chat bool) ([]int, error) {
	ctx, cancel := context.WithTimeout(ctx, tokenizeTimeout)
	defer cancel()
	return s.b.Tokenize(ctx, s.model, text, chat)
}

// fileTokenizer counts with a tokenizer.json; it knows no chat template.
type fileTokenizer struct{ f *tokenizer.File }

func (f fileTokenizer) Tokenize(_ context.Context, text string, _ bool) ([]int, error) {
	return f.f.Tokenize(text)
}

// isSynthetic reports whether a dataset source is generated prompts.
func isSynthetic(source string) bool {
	return source == "synthetic" || strings.HasPrefix(source, "synthetic:")
}

// sendsChat reports whether the run sends prompts through the chat API.
func (r *Run) sendsChat() bool {
	return r.backend.Name() != "pytorch" && (r.sc.API == "" || r.sc.API == string(backends.APIChat))
}

// pickTokenizer chooses what counts synthetic prompts' tokens, in this
// order: the server's POST /tokenize, which counts as its usage does;
// the model's tokenizer.json (Config.Tokenizer, else the Hugging Face
// cache's); else none, and the lengths are estimated, with a warning
// that says how far off they may be. It logs the choice.
func (r *Run) pickTokenizer(ctx context.Context) (dataset.Tokenizer, error) {
	chat := r.sendsChat()
	endpoint := backends.WithoutUserinfo(r.backend.Endpoint())
	var serverErr error
	if b, ok := r.backend.(backends.Tokenizer); ok {
		st := serverTokenizer{b: b, model: r.model}
		_, serverErr = st.Tokenize(ctx, "Hello world.", chat)
		if serverErr == nil {
			r.promptTokenizer = tokenizerServer
			how := "as a prompt"
			if chat {
				how = "as a chat message, the chat template included"
			}
			msg := fmt.Sprintf("synthetic prompts: lengths made exact with the server's POST /tokenize (%s)", how)
			if r.cfg.Tokenizer != "" {
				msg += "; --tokenizer " + r.cfg.Tokenizer + " is not needed"
			}
			r.log.Info(msg)
			return st, nil
		}
		if !errors.Is(serverErr, backends.ErrNoTokenize) {
			r.log.Warn(fmt.Sprintf("synthetic prompts: the server's POST /tokenize failed (%v); trying a local tokenizer.json", serverErr))
		}
	}
	path, from := r.cfg.Tokenizer, "--tokenizer"
	if path == "" {
		path, from = tokenizer.FindCached(r.model), "the Hugging Face cache"
	}
	if path != "" {
		f, err := tokenizer.Load(path)
		if err != nil {
			if from == "--tokenizer" {
				return nil, inputErr(err)
			}
			r.log.Warn(fmt.Sprintf("synthetic prompts: %v; lengths are estimated", err))
		} else {
			r.promptTokenizer = tokenizerFile
			msg := fmt.Sprintf("synthetic prompts: lengths made exact with %s (from %s), as the server at %s has no POST /tokenize",
				f.Path, from, endpoint)
			for _, n := range f.Notes {
				msg += "; " + n
			}
			if chat {
				msg += "; the chat API's template is not counted locally: prompt_tokens will exceed prompt_tokens_target by " +
					"the template's tokens (a few to a few dozen per request, the same for each), or use --api completions"
			}
			r.log.Info(msg)
			return fileTokenizer{f}, nil
		}
	}
	r.promptTokenizer = tokenizerEstimate
	r.log.Warn(fmt.Sprintf("synthetic prompts: no tokenizer (the server at %s has no POST /tokenize, and no --tokenizer was given): "+
		"lengths are estimated at %g tokens per word, which BPE tokenizers of English text count 15 %% under to 25 %% over, "+
		"and byte- or character-level ones several times over; records keep prompt_tokens_target beside prompt_tokens. "+
		"Pass --tokenizer PATH (the model's tokenizer.json) for exact lengths", endpoint, dataset.SyntheticTokensPerWord))
	return nil, nil
}

// logSynthetic says how exact synthetic prompts came out.
func (r *Run) logSynthetic(stats *dataset.SyntheticStats, prefix int) {
	if stats == nil || stats.Estimated {
		return
	}
	n := stats.Exact + stats.Off
	msg := fmt.Sprintf("synthetic prompts: %d of %d exactly their target length (%d tokenizer calls)", stats.Exact, n, stats.Calls)
	if stats.Off > 0 {
		msg += fmt.Sprintf("; %d off by up to %d tokens (targets below the shortest prompt the server counts, e.g. under its chat template)",
			stats.Off, stats.MaxOff)
		r.log.Warn(msg)
	} else {
		r.log.Info(msg)
	}
	if stats.PrefixBroken > 0 {
		r.log.Warn(fmt.Sprintf("synthetic prompts: %d prompts do not start with exactly their group's %d prefix tokens "+
			"(the tokenizer merged the prefix's last token with the text after it); their prefix is shared one token short",
			stats.PrefixBroken, prefix))
	}
}

// applyOutputLen draws each prompt's output length from the scenario's
// output_len, as its max_tokens and min_tokens: every answer is then
// exactly that long where the server honours min_tokens.
func (r *Run) applyOutputLen(prompts []loadgen.Prompt, seed int64) {
	d := r.sc.OutputLen
	if d.IsZero() {
		return
	}
	s := lengths.NewSampler(d, seed, outputLenStream)
	for i := range prompts {
		n := s.Next()
		prompts[i].MaxTokens, prompts[i].MinTokens = n, n
	}
	what := "exact: sent as max_tokens and min_tokens"
	switch r.backend.Name() {
	case "pytorch":
		what = "exact: sent as max_new_tokens and min_new_tokens"
	case "openai":
		what = "caps only: --backend openai sends max_tokens without vLLM's min_tokens, so answers may end sooner (use --backend vllm)"
		r.log.Warn(fmt.Sprintf("output_len %s: %s", d, what))
		return
	}
	r.log.Info(fmt.Sprintf("output_len %s: each prompt's output length drawn from it (%s), in place of max_tokens, min_tokens and the dataset's own", d, what))
}

func ptr[T any](v T) *T { return &v }
