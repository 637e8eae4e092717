// Package tokenizer counts tokens with a model's own tokenizer.json (the
// Hugging Face tokenizers format that models ship), in pure Go, for
// servers that do not tokenize for their clients (no POST /tokenize).
//
// The work is done by github.com/sugarme/tokenizer, a pure-Go port of
// Hugging Face's tokenizers (BPE, WordPiece, WordLevel and Unigram
// models; the usual normalizers, pre-tokenizers, post-processors and
// decoders), so loadgen stays one static binary without cgo or a Rust
// library. Go's regexp has no lookaround, which the pre-tokenizer
// patterns of GPT-2-style byte-level tokenizers (Llama 3, Qwen, GPT-4o
// and their kin) use in one alternative, `\s+(?!\S)` (a run of
// whitespace but its last character, which then starts the next word).
// Load drops that alternative and says so: the count stays exact for text
// without runs of whitespace, such as synthetic prompts, and may be off
// by one token per run of several spaces or newlines in other text.
// Patterns that still do not compile are an error, never a silent
// miscount.
//
// This package depends on nothing else of the module.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	hf "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
)

// FileName is the file a model directory holds its tokenizer in.
const FileName = "tokenizer.json"

// maxFileBytes bounds a tokenizer.json: the largest vocabularies (256k
// tokens and their merges) are about 35 MB.
const maxFileBytes = 256 << 20

// lookahead is the alternative Go's regexp cannot compile, as byte-level
// pre-tokenizers write it.
const lookahead = `\s+(?!\S)|`

// File is a loaded tokenizer.json. It is safe for concurrent use.
type File struct {
	// Path is the tokenizer.json read.
	Path string
	// Notes says what was changed to load it (the lookahead alternatives
	// dropped); empty when it loaded as it is.
	Notes []string

	mu sync.Mutex
	tk *hf.Tokenizer
}

// Load reads path: a tokenizer.json, or a directory holding one (a model
// directory, or a Hugging Face cache snapshot).
func Load(path string) (*File, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, FileName)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer %s: no such file (give a model's tokenizer.json, or the directory that holds it)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("tokenizer %s: %d bytes is not a tokenizer.json (at most %d)", path, len(data), maxFileBytes)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("tokenizer %s: not JSON: %v", path, err)
	}
	if _, ok := doc["model"].(map[string]any); !ok {
		return nil, fmt.Errorf("tokenizer %s: no \"model\" object: not a Hugging Face tokenizer.json", path)
	}
	f := &File{Path: path}
	if err := f.fixPatterns(doc); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	fixed, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	if f.tk, err = fromJSON(fixed); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	// A tokenizer that cannot encode plain text is of no use here: find
	// out now rather than at the first prompt.
	if _, err := f.Tokenize("Hello world."); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return f, nil
}

// fromJSON builds the tokenizer; the library panics on some inputs it
// does not support, which become errors.
func fromJSON(data []byte) (tk *hf.Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tk, err = nil, fmt.Errorf("not supported by the Go tokenizer library: %v", r)
		}
	}()
	return pretrained.FromReader(strings.NewReader(string(data)))
}

// fixPatterns finds every regular expression of the normalizer and the
// pre-tokenizer ({"Regex": "..."}) and makes it one Go can compile, or
// fails naming it.
func (f *File) fixPatterns(doc map[string]any) error {
	var walk func(v any) error
	walk = func(v any) error {
		switch v := v.(type) {
		case map[string]any:
			if re, ok := v["Regex"].(string); ok {
				fixed := re
				if _, err := regexp.Compile(fixed); err != nil && strings.Contains(fixed, lookahead) {
					fixed = strings.ReplaceAll(fixed, lookahead, "")
				}
				if _, err := regexp.Compile(fixed); err != nil {
					return fmt.Errorf("pattern %q cannot be used in Go (%v): no local count; use a server that answers POST /tokenize", re, err)
				}
				if fixed != re {
					v["Regex"] = fixed
					f.Notes = append(f.Notes, `its pre-tokenizer's "\s+(?!\S)" (lookahead, which Go's regexp lacks) is dropped: `+
						"exact for text without runs of whitespace, such as synthetic prompts")
				}
			}
			for _, k := range sortedKeys(v) {
				if err := walk(v[k]); err != nil {
					return err
				}
			}
		case []any:
			for _, item := range v {
				if err := walk(item); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, key := range []string{"normalizer", "pre_tokenizer"} {
		if err := walk(doc[key]); err != nil {
			return err
		}
	}
	f.Notes = slices.Compact(f.Notes)
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Tokenize returns text's token ids with the special tokens the
// tokenizer's post-processor adds (a BOS, for models that have one), as
// a server counts a prompt's tokens.
func (f *File) Tokenize(text string) (ids []int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			ids, err = nil, fmt.Errorf("the Go tokenizer library failed on this text: %v", r)
		}
	}()
	enc, err := f.tk.EncodeSingle(text, true)
	if err != nil {
		return nil, err
	}
	return slices.Clone(enc.Ids), nil
}

// FindCached returns the tokenizer.json of model in the local Hugging
// Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub), as a model served by vLLM from the Hugging
// Face hub leaves it; "" when there is none. model is an ORG/NAME id.
func FindCached(model string) string {
	org, name, ok := strings.Cut(model, "/")
	if !ok || org == "" || name == "" || strings.ContainsAny(name, `/\`) || strings.Contains(model, "..") {
		return ""
	}
	hub := os.Getenv("HF_HUB_CACHE")
	if hub == "" {
		if home := os.Getenv("HF_HOME"); home != "" {
			hub = filepath.Join(home, "hub")
		} else if dir, err := os.UserHomeDir(); err == nil {
			hub = filepath.Join(dir, ".cache", "huggingface", "hub")
		}
	}
	if hub == "" {
		return ""
	}
	repo := filepath.Join(hub, "models--"+org+"--"+name)
	// refs/main names the snapshot the hub's main branch pointed at when
	// it was fetched; without it, any snapshot that has the file.
	if ref, err := os.ReadFile(filepath.Join(repo, "refs", "main")); err == nil {
		p := filepath.Join(repo, "snapshots", strings.TrimSpace(string(ref)), FileName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	matches, _ := filepath.Glob(filepath.Join(repo, "snapshots", "*", FileName))
	if len(matches) == 0 {
		return ""
	}
	slices.Sort(matches)
	return matches[len(matches)-1]
}
