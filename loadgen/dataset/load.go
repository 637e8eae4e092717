package dataset

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options tunes Load. The zero value loads every prompt of a file with
// the default field names.
type Options struct {
	// Field is the JSONL field, CSV column or Hugging Face column that
	// holds the prompt. Empty means "prompt", then "text".
	Field string
	// Limit stops loading after this many prompts; 0 loads all. For hf://
	// sources it also bounds how many rows are fetched.
	Limit int
	// Seed makes synthetic prompts reproducible.
	Seed int64
	// CacheDir holds hf:// datasets fetched earlier. Empty means
	// os.UserCacheDir()/tokenwatt/datasets.
	CacheDir string
	// HFEndpoint is the Hugging Face datasets-server base URL. Empty means
	// the TOKENWATT_HF_ENDPOINT environment variable, else
	// https://datasets-server.huggingface.co.
	HFEndpoint string
	// HFToken is sent as a bearer token to the datasets-server (gated and
	// private datasets). Empty means the HF_TOKEN environment variable.
	HFToken string
	// HTTPClient fetches hf:// datasets; nil means a client with a
	// one-minute timeout per request.
	HTTPClient *http.Client
	// Logger, if set, gets as warnings what a user should see but that
	// does not stop loading: a cache that could not be read or written, or
	// an offline run that falls back to the prompts cached.
	Logger *slog.Logger
}

func (o *Options) warnf(format string, args ...any) {
	if o.Logger != nil {
		o.Logger.Warn(fmt.Sprintf(format, args...))
	}
}

// UnavailableError reports that a source needs the network, the
// network did not answer (or answered with a transient server error), and
// no cached copy exists. Callers may fall back to synthetic prompts, as
// --sim does.
type UnavailableError struct {
	Source string // the source as given, e.g. hf://AIEnergyScore/text_generation
	Err    error  // why the fetch failed
}

// Error says what failed and how to run without the network.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("dataset %s is unavailable and not cached (%v): "+
		"pass --dataset FILE with a local copy, e.g. a JSONL export with one {\"prompt\": \"...\"} object per line",
		e.Source, e.Err)
}

// Unwrap returns the underlying fetch error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// maxLineBytes bounds one line of a dataset file. Real prompts reach
// 85 KB; the bound only stops a file without newlines from being read as
// one unbounded line.
const maxLineBytes = 64 << 20

// Load returns the prompts of source, in order:
//
//   - a file path: .jsonl, .ndjson and .json are JSON lines (one object per
//     line; objects whose keys all start with "_" are metadata and
//     skipped); .csv has a header row naming its columns; anything else
//     holds one prompt per non-empty line;
//   - hf://ORG/NAME[?config=C&split=S&column=COL]: rows fetched from the
//     Hugging Face datasets-server and cached on disk (see
//     Options.CacheDir), so later runs work offline;
//   - synthetic or synthetic:mean=TOKENS,n=COUNT: generated prompts (see
//     Synthetic).
//
// Blank lines and prompts that are empty or whitespace are skipped in every
// format. A source without prompts is an error. An hf:// source that
// cannot be fetched and is not cached yields an *UnavailableError.
func Load(ctx context.Context, source string, opts Options) ([]string, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("dataset %s: negative limit %d", source, opts.Limit)
	}
	var (
		prompts []string
		err     error
	)
	switch {
	case source == "":
		return nil, errors.New("no dataset given: pass --dataset FILE, hf://ORG/NAME or synthetic")
	case strings.HasPrefix(source, hfScheme):
		prompts, err = loadHF(ctx, source, &opts)
	case source == syntheticName || strings.HasPrefix(source, syntheticName+":"):
		prompts, err = loadSynthetic(source, opts)
	default:
		prompts, err = loadFile(source, opts)
	}
	if err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		return nil, fmt.Errorf("dataset %s has no prompts", source)
	}
	return prompts, nil
}

// loadFile reads a local dataset file, choosing the format by extension.
func loadFile(path string, opts Options) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dataset file %q not found: pass --dataset FILE with a JSONL, CSV or text file of prompts, "+
			"or use hf://ORG/NAME or synthetic", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	defer f.Close()

	// Editors on Windows and spreadsheet exports start files with a UTF-8
	// byte order mark, which would otherwise end up in the first prompt or
	// CSV column name.
	br := bufio.NewReaderSize(f, 64<<10)
	if bom, err := br.Peek(3); err == nil && bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		if _, err := br.Discard(3); err != nil {
			return nil, fmt.Errorf("read dataset %s: %w", path, err)
		}
	}

	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return readJSONLines(br, path, opts.Field, opts.Limit)
	case ".csv":
		return readCSV(br, path, opts.Field, opts.Limit)
	default:
		return readTextLines(br, path, opts.Limit)
	}
}

// newLineScanner returns a scanner that accepts lines up to maxLineBytes.
func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	return sc
}

// scanError explains a scanner failure; line is the last line read.
func scanError(path string, line int, err error) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%s:%d: line longer than %d MiB", path, line+1, maxLineBytes>>20)
	}
	return fmt.Errorf("read dataset %s: %w", path, err)
}

// limitReached reports whether n prompts satisfy limit (0: no limit).
func limitReached(n, limit int) bool { return limit > 0 && n >= limit }

// readJSONLines reads one JSON object per line.
func readJSONLines(r io.Reader, path, field string, limit int) ([]string, error) {
	sc := newLineScanner(r)
	var prompts []string
	line := 0
	for !limitReached(len(prompts), limit) && sc.Scan() {
		line++
		prompt, ok, err := parsePromptLine(sc.Bytes(), field)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if ok {
			prompts = append(prompts, prompt)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanError(path, line, err)
	}
	return prompts, nil
}

// parsePromptLine extracts the prompt from one JSON line. ok is false for
// lines that hold no prompt but are not errors: blank lines, metadata
// objects (every key starts with "_") and empty prompts. field "" means
// "prompt", then "text".
func parsePromptLine(line []byte, field string) (prompt string, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return "", false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		if line[0] == '[' {
			return "", false, errors.New("a JSON array is not supported: write one JSON object per line (JSON lines)")
		}
		return "", false, fmt.Errorf("not a JSON object: %w", err)
	}
	if obj == nil {
		return "", false, errors.New("not a JSON object: null")
	}
	if isMetadata(obj) {
		return "", false, nil
	}
	name, raw, found := pickField(obj, field)
	if !found {
		return "", false, fmt.Errorf("%s (fields: %s); choose the field with dataset_field (--dataset-field)",
			missingFieldText(field), strings.Join(sortedKeys(obj), ", "))
	}
	return decodePromptValue(name, raw)
}

// decodePromptValue turns a JSON value into a prompt: strings are prompts,
// null or missing is an empty prompt (skipped), anything else is an error.
func decodePromptValue(name string, raw json.RawMessage) (string, bool, error) {
	raw = bytes.TrimSpace(raw)
	// A missing value (a row without the column) counts as null.
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, fmt.Errorf("field %q is %s, not a string", name, jsonKind(raw))
	}
	if strings.TrimSpace(s) == "" {
		return "", false, nil
	}
	return s, true, nil
}

// isMetadata reports whether obj is a metadata line: at least one key, and
// every key starts with "_".
func isMetadata(obj map[string]json.RawMessage) bool {
	if len(obj) == 0 {
		return false
	}
	for k := range obj {
		if !strings.HasPrefix(k, "_") {
			return false
		}
	}
	return true
}

// defaultFields are the prompt fields tried, in order, when none is given.
var defaultFields = []string{"prompt", "text"}

// pickField returns the value of field, or of the first default field
// present when field is "".
func pickField(obj map[string]json.RawMessage, field string) (string, json.RawMessage, bool) {
	if field != "" {
		raw, ok := obj[field]
		return field, raw, ok
	}
	for _, f := range defaultFields {
		if raw, ok := obj[f]; ok {
			return f, raw, true
		}
	}
	return "", nil, false
}

// missingFieldText says which field was looked for.
func missingFieldText(field string) string {
	if field != "" {
		return fmt.Sprintf("no field %q", field)
	}
	return `no field "prompt" or "text"`
}

func sortedKeys(obj map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonKind names the JSON type of a non-empty raw value that is not a
// string, for error messages.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// readCSV reads a CSV file with a header row.
func readCSV(r io.Reader, path, field string, limit int) ([]string, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("dataset %s is empty: a CSV dataset needs a header row naming its columns", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read dataset %s: %w", path, err)
	}
	col := csvColumn(header, field)
	if col < 0 {
		return nil, fmt.Errorf("%s: %s among the CSV columns (%s); choose the column with dataset_field (--dataset-field)",
			path, strings.Replace(missingFieldText(field), "field", "column", 1), strings.Join(header, ", "))
	}
	var prompts []string
	for !limitReached(len(prompts), limit) {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError carries the line and column itself.
			return nil, fmt.Errorf("read dataset %s: %w", path, err)
		}
		if strings.TrimSpace(rec[col]) != "" {
			prompts = append(prompts, rec[col])
		}
	}
	return prompts, nil
}

// csvColumn returns the index of field in header (default: prompt, then
// text), or -1.
func csvColumn(header []string, field string) int {
	if field != "" {
		return slices.Index(header, field)
	}
	for _, f := range defaultFields {
		if i := slices.Index(header, f); i >= 0 {
			return i
		}
	}
	return -1
}

// readTextLines reads one prompt per non-empty line.
func readTextLines(r io.Reader, path string, limit int) ([]string, error) {
	sc := newLineScanner(r)
	var prompts []string
	line := 0
	for !limitReached(len(prompts), limit) && sc.Scan() {
		line++
		if text := sc.Text(); strings.TrimSpace(text) != "" {
			prompts = append(prompts, text)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanError(path, line, err)
	}
	return prompts, nil
}
