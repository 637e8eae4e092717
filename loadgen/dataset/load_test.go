package dataset

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fixture(name string) string { return filepath.Join("testdata", name) }

// loadTexts loads source and returns its prompts' texts.
func loadTexts(ctx context.Context, source string, opts Options) ([]string, error) {
	set, err := Load(ctx, source, opts)
	if err != nil {
		return nil, err
	}
	texts := make([]string, len(set.Prompts))
	for i, p := range set.Prompts {
		texts[i] = p.Text
	}
	return texts, nil
}

func TestLoadFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		source string
		opts   Options
		want   []string
	}{
		{
			name:   "jsonl skips metadata, blank lines and empty prompts; prompt before text",
			source: fixture("prompts.jsonl"),
			want: []string{
				"Explain why the sky is blue.",
				`Write a haiku about "energy".`,
				"Summarise the French revolution.",
				"Translate 'bonjour' to English.",
			},
		},
		{
			name:   "jsonl limit",
			source: fixture("prompts.jsonl"),
			opts:   Options{Limit: 2},
			want:   []string{"Explain why the sky is blue.", `Write a haiku about "energy".`},
		},
		{
			name:   "jsonl chosen field",
			source: fixture("fields.jsonl"),
			opts:   Options{Field: "question"},
			want:   []string{"What is a joule?", "What is a watt?", "How many joules are in a watt-hour?"},
		},
		{
			name:   "csv default column, quoted fields, empty cell skipped",
			source: fixture("prompts.csv"),
			want:   []string{"Explain TTFT, ITL and TPOT.", "A prompt\nover two lines", `She said "hello".`},
		},
		{
			name:   "csv chosen column",
			source: fixture("prompts.csv"),
			opts:   Options{Field: "notes", Limit: 2},
			want:   []string{"plain", "multi"},
		},
		{
			name:   "text one prompt per non-empty line",
			source: fixture("prompts.txt"),
			want:   []string{"First prompt", "Second prompt", "Third prompt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadTexts(context.Background(), tt.source, tt.opts)
			if err != nil {
				t.Fatalf("Load(%q) error: %v", tt.source, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Load(%q) = %q, want %q", tt.source, got, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		source string
		opts   Options
		want   []string // substrings of the error
	}{
		{"no source", "", Options{}, []string{"--dataset FILE"}},
		{"missing file", fixture("nope.jsonl"), Options{}, []string{"nope.jsonl", "not found", "--dataset FILE"}},
		{"bad json line", fixture("bad_line.jsonl"), Options{}, []string{"bad_line.jsonl:3:", "not a JSON object"}},
		{"missing default field", fixture("missing_field.jsonl"), Options{}, []string{
			"missing_field.jsonl:2:", `no field "prompt" or "text"`, "fields: id, question",
		}},
		{"missing chosen field", fixture("prompts.jsonl"), Options{Field: "question"}, []string{
			"prompts.jsonl:2:", `no field "question"`, "fields: prompt",
		}},
		{"field not a string", fixture("not_string.jsonl"), Options{}, []string{
			"not_string.jsonl:1:", `field "prompt" is a number`,
		}},
		{"metadata only", fixture("metadata_only.jsonl"), Options{}, []string{"has no prompts"}},
		{"csv without the column", fixture("no_prompt_column.csv"), Options{}, []string{
			"no_prompt_column.csv", `no column "prompt" or "text"`, "id, question",
		}},
		{"csv chosen column missing", fixture("prompts.csv"), Options{Field: "body"}, []string{
			`no column "body"`, "id, prompt, notes",
		}},
		{"negative limit", fixture("prompts.txt"), Options{Limit: -1}, []string{"negative limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadTexts(context.Background(), tt.source, tt.opts)
			if err == nil {
				t.Fatalf("Load(%q) = %q, want an error", tt.source, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadEmptyFiles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"empty.jsonl", "empty.csv", "empty.txt"} {
		_, err := loadTexts(context.Background(), writeFile(t, name, ""), Options{})
		if err == nil || !strings.Contains(err.Error(), "empty") && !strings.Contains(err.Error(), "no prompts") {
			t.Errorf("%s: error %v, want one saying the dataset is empty", name, err)
		}
	}
	_, err := loadTexts(context.Background(), writeFile(t, "header.csv", "id,prompt\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "no prompts") {
		t.Errorf("header-only CSV: error %v, want \"no prompts\"", err)
	}
}

func TestLoadByteOrderMark(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "bom.csv", "\ufeffprompt\nhello\n")
	got, err := loadTexts(context.Background(), path, Options{})
	if err != nil || !slices.Equal(got, []string{"hello"}) {
		t.Errorf("Load(BOM CSV) = %q, %v; want [hello]", got, err)
	}
}

// TestDatasetLongLines checks that prompts far longer than bufio.Scanner's
// default 64 KiB line limit load intact: real prompts reach 85 KB.
func TestDatasetLongLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("tokens and watts ", 6000) // ~100 KB
	jsonl := writeFile(t, "long.jsonl", `{"prompt": "`+long+`"}`+"\n"+`{"prompt": "short"}`+"\n")
	got, err := loadTexts(context.Background(), jsonl, Options{})
	if err != nil || len(got) != 2 || got[0] != long {
		t.Fatalf("long JSONL line: got %d prompts, err %v", len(got), err)
	}

	huge := strings.Repeat("x", 17<<20) // beyond the 16 MB a line must allow
	txt := writeFile(t, "huge.txt", huge+"\nshort\n")
	got, err = loadTexts(context.Background(), txt, Options{})
	if err != nil || len(got) != 2 || len(got[0]) != len(huge) {
		t.Fatalf("17 MiB text line: got %d prompts, err %v", len(got), err)
	}
}

func TestSyntheticDeterministic(t *testing.T) {
	t.Parallel()
	a := Synthetic(50, 100, 7)
	b := Synthetic(50, 100, 7)
	if !slices.Equal(a, b) {
		t.Fatal("Synthetic with the same seed differ")
	}
	if c := Synthetic(50, 100, 8); slices.Equal(a, c) {
		t.Error("Synthetic with different seeds are equal")
	}
	if got := Synthetic(0, 100, 7); len(got) != 0 {
		t.Errorf("Synthetic(0, ...) returned %d prompts", len(got))
	}
}

// syntheticTokens is the token measure Synthetic documents.
func syntheticTokens(s string) float64 {
	return float64(len(strings.Fields(s))) * SyntheticTokensPerWord
}

func TestSyntheticLengths(t *testing.T) {
	t.Parallel()
	for _, mean := range []int{20, 369, 2000} {
		prompts := Synthetic(500, mean, 1)
		sum, lo, hi := 0.0, syntheticTokens(prompts[0]), 0.0
		distinct := map[string]bool{}
		for _, p := range prompts {
			n := syntheticTokens(p)
			sum += n
			lo, hi = min(lo, n), max(hi, n)
			distinct[p] = true
			if n < minSyntheticTokens-SyntheticTokensPerWord {
				t.Fatalf("mean %d: prompt of %.1f tokens, below the minimum", mean, n)
			}
		}
		got := sum / float64(len(prompts))
		if rel := (got - float64(mean)) / float64(mean); rel < -0.03 || rel > 0.03 {
			t.Errorf("mean %d: measured mean %.1f tokens, off by %.1f%%", mean, got, rel*100)
		}
		if lo > 0.7*float64(mean) || hi < 1.5*float64(mean) {
			t.Errorf("mean %d: lengths span only %.0f..%.0f tokens, want a spread", mean, lo, hi)
		}
		if len(distinct) != len(prompts) {
			t.Errorf("mean %d: %d distinct prompts of %d", mean, len(distinct), len(prompts))
		}
	}
}

func TestSyntheticVariedWords(t *testing.T) {
	t.Parallel()
	words := map[string]bool{}
	for _, w := range strings.Fields(Synthetic(1, 400, 3)[0]) {
		words[strings.ToLower(strings.Trim(w, "."))] = true
	}
	if len(words) < 100 {
		t.Errorf("a 400-token prompt uses only %d distinct words", len(words))
	}
}

func TestLoadSynthetic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		source string
		opts   Options
		n      int
	}{
		{"synthetic", Options{}, DefaultSyntheticCount},
		{"synthetic", Options{Limit: 12}, 12},
		{"synthetic:n=30", Options{}, 30},
		{"synthetic:mean=50,n=30", Options{Limit: 10}, 10},
		{"synthetic: n = 5 , mean = 40", Options{}, 5},
	}
	for _, tt := range tests {
		got, err := loadTexts(ctx, tt.source, tt.opts)
		if err != nil {
			t.Fatalf("Load(%q): %v", tt.source, err)
		}
		if len(got) != tt.n {
			t.Errorf("Load(%q, limit %d) gave %d prompts, want %d", tt.source, tt.opts.Limit, len(got), tt.n)
		}
	}
	got, _ := loadTexts(ctx, "synthetic:mean=50,n=4", Options{Seed: 9})
	if want := Synthetic(4, 50, 9); !slices.Equal(got, want) {
		t.Error("synthetic source does not match Synthetic with the same seed")
	}
	for _, bad := range []string{"synthetic:mean=0", "synthetic:n=x", "synthetic:size=3"} {
		if _, err := loadTexts(ctx, bad, Options{}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Load(%q) error %v, want one naming the source", bad, err)
		}
	}
}

func TestUnavailableErrorUnwraps(t *testing.T) {
	t.Parallel()
	cause := errors.New("connection refused")
	var err error = &UnavailableError{Source: "hf://a/b", Err: cause}
	if !errors.Is(err, cause) {
		t.Error("UnavailableError does not unwrap to its cause")
	}
	for _, w := range []string{"hf://a/b", "connection refused", "--dataset FILE"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
