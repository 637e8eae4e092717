package dataset

import (
	"bufio"
	"bytes"
	"cmp"
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
	"strconv"
	"strings"

	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
)

// Options tunes Load. The zero value loads every prompt of a file with
// the default field names.
type Options struct {
	// Field is the JSONL field, CSV column or Hugging Face column that
	// holds the prompt or the conversation. Empty means the format's
	// defaults: "prompt", then "text" (prompt); "messages", "conversation",
	// "conversations" (chat); "conversations", "conversation" (sharegpt);
	// all of these, in that order, detecting the format.
	Field string
	// Format is the rows' shape; "" or FormatAuto detects it from the
	// first row.
	Format Format
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
	// InputLen is synthetic prompts' length distribution (the
	// scenario's input_len); zero: the source's mean=, else the default.
	// Other sources do not take one.
	InputLen lengths.Dist
	// Tokenizer, if set, makes synthetic prompts exactly their target
	// length, as it counts them; Chat counts them as the chat API sends
	// them. Without one, lengths are estimated (SyntheticStats.Estimated).
	Tokenizer Tokenizer
	Chat      bool
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
//   - a file path: .jsonl, .ndjson and .json hold JSON objects, one per
//     line, or one JSON array of them (objects whose keys all start with
//     "_" are metadata and skipped); .csv has a header row naming its
//     columns; anything else holds one prompt per non-empty line;
//   - hf://ORG/NAME[?config=C&split=S&column=COL]: rows fetched from the
//     Hugging Face datasets-server and cached on disk (see
//     Options.CacheDir), so later runs work offline;
//   - synthetic or synthetic:mean=TOKENS,n=COUNT,prefix=TOKENS,groups=G:
//     generated prompts (see ParseSynthetic and MakeSynthetic), of exact
//     lengths with Options.Tokenizer.
//
// JSON rows and Hugging Face rows are prompts, chat messages or ShareGPT
// conversations (see Format and Prompt), detected from the first row
// unless Options.Format forces one; an output_len, max_tokens or
// output_tokens field sets a row's output length. CSV and text files hold
// prompts (a CSV file may have an output_len, max_tokens or output_tokens
// column).
//
// Blank lines and prompts that are empty or whitespace are skipped in every
// format. A source without prompts is an error. An hf:// source that
// cannot be fetched and is not cached yields an *UnavailableError.
func Load(ctx context.Context, source string, opts Options) (*Set, error) {
	if opts.Limit < 0 {
		return nil, fmt.Errorf("dataset %s: negative limit %d", source, opts.Limit)
	}
	format, err := ParseFormat(string(opts.Format))
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", source, err)
	}
	opts.Format = format
	var prompts []Prompt
	p := newRowParser(opts.Field, format)
	switch {
	case source == "":
		return nil, errors.New("no dataset given: pass --dataset FILE, hf://ORG/NAME or synthetic")
	case !opts.InputLen.IsZero() && source != syntheticName && !strings.HasPrefix(source, syntheticName+":"):
		return nil, fmt.Errorf("dataset %s: input_len (--input-len %s) sets the length of synthetic prompts: use --dataset synthetic, "+
			"or leave it out for the dataset's own prompts", source, opts.InputLen)
	case strings.HasPrefix(source, hfScheme):
		prompts, err = loadHF(ctx, source, &opts, p)
	case source == syntheticName || strings.HasPrefix(source, syntheticName+":"):
		if format.conversational() {
			return nil, fmt.Errorf("dataset %s: synthetic prompts are plain text, not %s rows: drop --dataset-format %s", source, format, format)
		}
		var spec SyntheticSpec
		if spec, err = ParseSynthetic(source, opts.Limit, opts.InputLen); err != nil {
			return nil, err
		}
		var stats *SyntheticStats
		if prompts, stats, err = MakeSynthetic(ctx, spec, opts.Tokenizer, opts.Chat, opts.Seed); err != nil {
			return nil, fmt.Errorf("dataset %s: %w", source, err)
		}
		p.format = FormatPrompt
		set := &Set{Prompts: prompts, Format: FormatPrompt, Detected: format == FormatAuto, Synthetic: stats}
		return set, nil
	default:
		prompts, err = loadFile(source, opts, p)
	}
	if err != nil {
		return nil, err
	}
	if len(prompts) == 0 {
		if p.noUserTurn > 0 {
			return nil, fmt.Errorf("dataset %s has no prompts: none of its %d conversations has a user turn", source, p.noUserTurn)
		}
		return nil, fmt.Errorf("dataset %s has no prompts", source)
	}
	set := &Set{Prompts: prompts, Format: p.format, Detected: format == FormatAuto, NoUserTurn: p.noUserTurn}
	for i := range prompts {
		switch prompts[i].lengthFrom {
		case lengthRow:
			set.RowLengths++
		case lengthAnswer:
			set.AnswerLengths++
		}
	}
	return set, nil
}

// loadFile reads a local dataset file, choosing the format by extension
// and, for JSON, by the first character: '[' opens a JSON array. JSON
// rows are parsed with p; other files set its format to FormatPrompt.
func loadFile(path string, opts Options, p *rowParser) ([]Prompt, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dataset file %q not found: pass --dataset FILE with a JSONL, JSON, CSV or text file of prompts, "+
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

	ext := strings.ToLower(filepath.Ext(path))
	switch ext {
	case ".jsonl", ".ndjson", ".json":
		if startsWithArray(br) {
			return readJSONArray(br, path, p, opts.Limit)
		}
		return readJSONLines(br, path, p, opts.Limit)
	}
	if opts.Format.conversational() {
		return nil, fmt.Errorf("dataset %s: a %s file holds plain prompts, not %s rows: "+
			"write the conversations as JSON lines or a JSON array (.jsonl, .json), or drop --dataset-format %s",
			path, cmp.Or(strings.TrimPrefix(ext, "."), "text"), opts.Format, opts.Format)
	}
	p.format = FormatPrompt
	if ext == ".csv" {
		return readCSV(br, path, opts.Field, opts.Limit)
	}
	return readTextLines(br, path, opts.Limit)
}

// startsWithArray reports whether the first character after white space
// is '[', without consuming anything.
func startsWithArray(br *bufio.Reader) bool {
	for n := 1; n <= br.Size(); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false
		}
		switch b[n-1] {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return true
		}
		return false
	}
	return false
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
func readJSONLines(r io.Reader, path string, p *rowParser, limit int) ([]Prompt, error) {
	sc := newLineScanner(r)
	var prompts []Prompt
	line := 0
	for !limitReached(len(prompts), limit) && sc.Scan() {
		line++
		prompt, ok, err := parseLine(sc.Bytes(), p)
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

// parseLine reads one JSON line. ok is false for lines that hold no prompt
// but are not errors: blank lines, metadata objects (every key starts
// with "_") and empty prompts.
func parseLine(line []byte, p *rowParser) (prompt Prompt, ok bool, err error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return Prompt{}, false, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		if line[0] == '[' {
			return Prompt{}, false, errors.New("a JSON array inside JSON lines: write one JSON object per line, or the whole file as one JSON array")
		}
		return Prompt{}, false, fmt.Errorf("not a JSON object: %w", err)
	}
	if obj == nil {
		return Prompt{}, false, errors.New("not a JSON object: null")
	}
	return p.parse(obj)
}

// readJSONArray reads a file that is one JSON array of row objects, such
// as ShareGPT's .json files. Errors name the row (from 1) and the line it
// starts on.
func readJSONArray(r io.Reader, path string, p *rowParser, limit int) ([]Prompt, error) {
	lines := &lineCounter{r: r}
	dec := json.NewDecoder(lines)
	if _, err := dec.Token(); err != nil { // the '['
		return nil, fmt.Errorf("read dataset %s: %w", path, err)
	}
	var prompts []Prompt
	row := 0
	for !limitReached(len(prompts), limit) {
		if !dec.More() {
			if _, err := dec.Token(); err != nil { // the ']'
				return nil, fmt.Errorf("%s:%d: after row %d: %w", path, lines.next(dec), row, err)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s:%d: more after the JSON array's closing ]: a JSON dataset is one array, or one object per line",
					path, lines.next(dec))
			}
			break
		}
		row++
		line := lines.next(dec)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s:%d: row %d: the file ends inside the JSON array", path, line, row)
			}
			return nil, fmt.Errorf("%s:%d: row %d: %w", path, line, row, err)
		}
		prompt, ok, err := parseLine(raw, p)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: row %d: %w", path, line, row, err)
		}
		if ok {
			prompts = append(prompts, prompt)
		}
	}
	return prompts, nil
}

// lineCounter counts the newlines read through it, so that a JSON
// decoder's position can be told as a line number.
type lineCounter struct {
	r     io.Reader
	lines int
}

func (c *lineCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.lines += bytes.Count(b[:n], []byte{'\n'})
	return n, err
}

// next returns the line (from 1) on which dec's next value starts: the
// newlines read, less those still buffered, plus those in the separator
// (comma and white space) before the value.
func (c *lineCounter) next(dec *json.Decoder) int {
	var buffered bytes.Buffer
	_, _ = buffered.ReadFrom(dec.Buffered())
	b := buffered.Bytes()
	sep := len(b) - len(bytes.TrimLeft(b, ", \t\r\n"))
	return 1 + c.lines - bytes.Count(b[sep:], []byte{'\n'})
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

// readCSV reads a CSV file with a header row. An output_len, max_tokens
// or output_tokens column sets a row's output length (empty: none).
func readCSV(r io.Reader, path, field string, limit int) ([]Prompt, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("dataset %s is empty: a CSV dataset needs a header row naming its columns", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read dataset %s: %w", path, err)
	}
	header = slices.Clone(header) // the reader reuses its slice
	fields := promptFields
	if field != "" {
		fields = []string{field}
	}
	col := csvColumn(header, fields)
	if col < 0 {
		return nil, fmt.Errorf("%s: %s among the CSV columns (%s); choose the column with dataset_field (--dataset-field)",
			path, newRowParser(field, FormatPrompt).missingField("column"), strings.Join(header, ", "))
	}
	lenCol := csvColumn(header, outputLenFields)
	var prompts []Prompt
	for !limitReached(len(prompts), limit) {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// csv.ParseError carries the line and column itself.
			return nil, fmt.Errorf("read dataset %s: %w", path, err)
		}
		if strings.TrimSpace(rec[col]) == "" {
			continue
		}
		prompt := Prompt{Text: rec[col]}
		if lenCol >= 0 && strings.TrimSpace(rec[lenCol]) != "" {
			n, err := strconv.Atoi(strings.TrimSpace(rec[lenCol]))
			if err != nil || n < 1 || n > maxOutputLen {
				line, _ := cr.FieldPos(lenCol)
				return nil, fmt.Errorf("%s:%d: column %q is %q, not a positive whole number of tokens", path, line, header[lenCol], rec[lenCol])
			}
			prompt.MaxTokens, prompt.lengthFrom = n, lengthRow
		}
		prompts = append(prompts, prompt)
	}
	return prompts, nil
}

// csvColumn returns the index in header of the first of fields present,
// or -1.
func csvColumn(header, fields []string) int {
	for _, f := range fields {
		if i := slices.Index(header, f); i >= 0 {
			return i
		}
	}
	return -1
}

// readTextLines reads one prompt per non-empty line.
func readTextLines(r io.Reader, path string, limit int) ([]Prompt, error) {
	sc := newLineScanner(r)
	var prompts []Prompt
	line := 0
	for !limitReached(len(prompts), limit) && sc.Scan() {
		line++
		if text := sc.Text(); strings.TrimSpace(text) != "" {
			prompts = append(prompts, Prompt{Text: text})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanError(path, line, err)
	}
	return prompts, nil
}
