package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// llama3Split is the pre-tokenizer pattern of Llama 3's tokenizer.json
// (Qwen 2's differs only in digit grouping), lookahead included.
const llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// byteChar is GPT-2's bytes_to_unicode: the printable character a byte
// is written as in a byte-level vocabulary.
func byteChar(b int) string {
	switch {
	case b >= '!' && b <= '~', b >= 0xa1 && b <= 0xac, b >= 0xae && b <= 0xff:
		return string(rune(b))
	}
	n := 0
	for c := range b {
		if !(c >= '!' && c <= '~' || c >= 0xa1 && c <= 0xac || c >= 0xae && c <= 0xff) {
			n++
		}
	}
	return string(rune(256 + n))
}

// writeTokenizer writes a small byte-level BPE tokenizer.json shaped like
// Llama 3's: the 256 byte tokens, a few merges, a BOS added by a
// TemplateProcessing post-processor, and the Split pattern above.
func writeTokenizer(t *testing.T, dir, split string) (string, map[string]int) {
	t.Helper()
	vocab := map[string]int{}
	for b := range 256 {
		vocab[byteChar(b)] = b
	}
	merges := [][2]string{{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"t", "he"}, {"Ġthe", "m"}}
	for i, m := range merges {
		vocab[m[0]+m[1]] = 256 + i
	}
	const bos = "<|begin_of_text|>"
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": []any{map[string]any{"id": 1000, "content": bos, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}},
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": split}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []int{1000}, "tokens": []string{bos}}},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil,
			"fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges},
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, vocab
}

func TestLoadAndTokenize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, vocab := writeTokenizer(t, dir, llama3Split)
	f, err := Load(dir) // the directory finds its tokenizer.json
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || len(f.Notes) != 1 || !strings.Contains(f.Notes[0], "lookahead") {
		t.Errorf("path %s, notes %q", f.Path, f.Notes)
	}
	ids, err := f.Tokenize("the theme, the")
	if err != nil {
		t.Fatal(err)
	}
	// BOS; "the"; " them" "e"; ","; " the".
	want := []int{1000, vocab["the"], vocab["Ġthem"], vocab["e"], vocab[","], vocab["Ġthe"]}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	// Unicode goes through the byte-level alphabet: é is two bytes.
	if ids, err := f.Tokenize("é"); err != nil || len(ids) != 3 {
		t.Errorf("é: %v, %v", ids, err)
	}
	if ids, err := f.Tokenize(""); err != nil || !slices.Equal(ids, []int{1000}) {
		t.Errorf("empty text: %v, %v", ids, err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lookbehind := t.TempDir()
	writeTokenizer(t, lookbehind, `(?<=a)b|\s+`)
	for path, msg := range map[string]string{
		filepath.Join(dir, "missing.json"): "no such file",
		t.TempDir():                        "no such file",
		write("bad.json", "{"):             "not JSON",
		write("nomodel.json", `{"a": 1}`):  `no "model" object`,
		lookbehind:                         `pattern "(?<=a)b|\\s+" cannot be used in Go`,
		write("unknown.json", `{"model": {"type": "Mystery"}}`): "tokenizer",
	} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Load(%s): error %v, want one containing %q", filepath.Base(path), err, msg)
		}
	}
}

func TestFindCached(t *testing.T) {
	hub := t.TempDir()
	t.Setenv("HF_HUB_CACHE", hub)
	repo := filepath.Join(hub, "models--Org--Model-1B")
	for _, snap := range []string{"aaa", "bbb"} {
		if err := os.MkdirAll(filepath.Join(repo, "snapshots", snap), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, "snapshots", snap, FileName), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := FindCached("Org/Model-1B"); got != filepath.Join(repo, "snapshots", "bbb", FileName) {
		t.Errorf("without refs/main: %q", got)
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte("aaa\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := FindCached("Org/Model-1B"); got != filepath.Join(repo, "snapshots", "aaa", FileName) {
		t.Errorf("with refs/main: %q", got)
	}
	for _, model := range []string{"Org/Other", "tiny", "Org/../x", "/abs", "Org/a/b"} {
		if got := FindCached(model); got != "" {
			t.Errorf("FindCached(%q) = %q", model, got)
		}
	}
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", filepath.Dir(hub))
	if got := FindCached("Org/Model-1B"); got != "" && !strings.HasPrefix(got, filepath.Dir(hub)) {
		t.Errorf("HF_HOME: %q", got)
	}
}
