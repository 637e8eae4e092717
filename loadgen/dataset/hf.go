package dataset

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	hfScheme = "hf://"
	// DefaultHFEndpoint is the Hugging Face datasets-server that hf://
	// sources are fetched from unless Options.HFEndpoint or
	// TOKENWATT_HF_ENDPOINT says otherwise.
	DefaultHFEndpoint = "https://datasets-server.huggingface.co"

	hfDefaultConfig = "default"
	hfDefaultSplit  = "train"
	// hfPageRows is the largest page the rows API serves.
	hfPageRows = 100
	// hfMaxResponseBytes bounds one response body; a page of 100 rows of
	// the longest real prompts (85 KB) is under 10 MB.
	hfMaxResponseBytes = 256 << 20
)

// hfDefaultClient fetches hf:// datasets when Options.HTTPClient is
// nil. The timeout keeps a stalled connection from hanging a run before it
// starts.
var hfDefaultClient = &http.Client{Timeout: time.Minute}

// hfDatasetName matches Hugging Face repository ids, ORG/NAME or NAME.
// It also keeps the name safe to use as a cache path: no component starts
// with a dot.
var hfDatasetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$`)

// hfSource is a parsed hf:// source. Empty config, split or column mean
// "the default, or whatever the datasets-server lists".
type hfSource struct {
	raw     string
	dataset string
	config  string
	split   string
	column  string
}

// parseHFSource parses hf://ORG/NAME[?config=..&split=..&column=..]. field
// is the column to use when the source names none.
func parseHFSource(source, field string) (hfSource, error) {
	rest := strings.TrimPrefix(source, hfScheme)
	name, query, _ := strings.Cut(rest, "?")
	if !hfDatasetName.MatchString(name) {
		return hfSource{}, fmt.Errorf("dataset %s: %q is not a Hugging Face dataset id: write hf://ORG/NAME", source, name)
	}
	params, err := url.ParseQuery(query)
	if err != nil {
		return hfSource{}, fmt.Errorf("dataset %s: bad query: %w", source, err)
	}
	src := hfSource{raw: source, dataset: name, column: field}
	for key, values := range params {
		value := values[len(values)-1]
		switch key {
		case "config":
			src.config = value
		case "split":
			src.split = value
		case "column":
			src.column = value
		default:
			return hfSource{}, fmt.Errorf("dataset %s: unknown parameter %q (known: config, split, column)", source, key)
		}
	}
	return src, nil
}

// hfCacheMeta is the first line of a cached dataset. Its keys start with
// "_", so the cache file is itself a JSONL dataset that Load reads
// (the metadata line is skipped): users can pass it to --dataset.
type hfCacheMeta struct {
	Source       string `json:"_source"`
	Dataset      string `json:"_dataset"`
	Config       string `json:"_config"`
	Split        string `json:"_split"`
	Column       string `json:"_column"`
	RowsRead     int    `json:"_rows_read"`        // rows consumed from the split, from row 0
	NumRowsTotal int    `json:"_num_rows_total"`   // rows in the split when fetched
	Format       string `json:"_format,omitempty"` // the rows' shape; caches from before formats have none: prompts
}

// complete reports whether the cache holds every row of the split.
func (m *hfCacheMeta) complete() bool { return m.RowsRead >= m.NumRowsTotal }

// loadHF returns the prompts of an hf:// source: from the cache when it
// holds enough, else from the datasets-server (refreshing the cache), else
// from a partial cache when the network is down.
//
// The rows are parsed with p, whose format this sets.
func loadHF(ctx context.Context, source string, opts *Options, p *rowParser) ([]Prompt, error) {
	src, err := parseHFSource(source, opts.Field)
	if err != nil {
		return nil, err
	}
	cachePath := hfCachePath(opts, &src)
	var (
		cached       []Prompt
		cachedFormat Format
	)
	if cachePath != "" {
		var meta hfCacheMeta
		var found bool
		cached, meta, found, err = readHFCache(cachePath)
		cachedFormat = Format(cmp.Or(meta.Format, string(FormatPrompt)))
		switch {
		case err != nil:
			opts.warnf("ignoring unreadable dataset cache %s: %v", cachePath, err)
			cached = nil
		case found && opts.Format != FormatAuto && opts.Format != cachedFormat:
			// Cached as another shape: fetch again, and let the rows say
			// whether they are of the shape asked for.
			cached = nil
		case found && (meta.complete() || limitReached(len(cached), opts.Limit)):
			p.format = cachedFormat
			return truncatePrompts(cached, opts.Limit), nil
		}
	}

	c := hfClient{
		source:   source,
		endpoint: strings.TrimRight(cmp.Or(opts.HFEndpoint, os.Getenv("TOKENWATT_HF_ENDPOINT"), DefaultHFEndpoint), "/"),
		token:    cmp.Or(opts.HFToken, os.Getenv("HF_TOKEN")),
		http:     cmp.Or(opts.HTTPClient, hfDefaultClient),
	}
	p.field = ""
	prompts, meta, err := c.fetch(ctx, &src, p, opts.Limit)
	var unavailable *UnavailableError
	if errors.As(err, &unavailable) && len(cached) > 0 {
		opts.warnf("dataset %s: fetch failed (%v); using the %d prompts cached in %s", source, unavailable.Err, len(cached), cachePath)
		p.format = cachedFormat
		return cached, nil
	}
	if err != nil {
		return nil, err
	}
	if cachePath != "" && len(prompts) > 0 {
		if err := writeHFCache(cachePath, &meta, prompts); err != nil {
			opts.warnf("dataset %s: not cached: %v", source, err)
		}
	}
	return prompts, nil
}

func truncatePrompts(prompts []Prompt, limit int) []Prompt {
	if limit > 0 && len(prompts) > limit {
		return prompts[:limit]
	}
	return prompts
}

// hfClient talks to the datasets-server for one source.
type hfClient struct {
	source   string
	endpoint string
	token    string // never logged or put in an error
	http     *http.Client
}

// hfRowsPage is a /rows response.
type hfRowsPage struct {
	Features []struct {
		Name string `json:"name"`
	} `json:"features"`
	Rows []struct {
		RowIdx         int                        `json:"row_idx"`
		Row            map[string]json.RawMessage `json:"row"`
		TruncatedCells []string                   `json:"truncated_cells"`
	} `json:"rows"`
	NumRowsTotal int `json:"num_rows_total"`
}

// hfSplits is a /splits response.
type hfSplits struct {
	Splits []struct {
		Config string `json:"config"`
		Split  string `json:"split"`
	} `json:"splits"`
}

// hfStatusError is a non-200 answer from the datasets-server.
type hfStatusError struct {
	Status  int
	Message string // the server's "error" field, or the start of its body
}

func (e *hfStatusError) Error() string {
	msg := fmt.Sprintf("datasets-server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// fetch pages through the split until limit prompts (0: all rows) are
// read, parsing the rows with p (whose format it decides when auto).
func (c *hfClient) fetch(ctx context.Context, src *hfSource, p *rowParser, limit int) ([]Prompt, hfCacheMeta, error) {
	meta := hfCacheMeta{
		Source:  src.raw,
		Dataset: src.dataset,
		Config:  cmp.Or(src.config, hfDefaultConfig),
		Split:   cmp.Or(src.split, hfDefaultSplit),
	}
	pageLen := func(have int) int {
		if limit > 0 {
			return min(limit-have, hfPageRows)
		}
		return hfPageRows
	}
	var page hfRowsPage
	err := c.rows(ctx, &meta, 0, pageLen(0), &page)
	var status *hfStatusError
	if errors.As(err, &status) && status.Status == http.StatusNotFound && (src.config == "" || src.split == "") {
		// Datasets with named configs (wikitext-2-raw-v1, ...) or without
		// a train split have no default/train: ask which ones exist.
		meta.Config, meta.Split, err = c.discoverSplit(ctx, src)
		if err == nil {
			err = c.rows(ctx, &meta, 0, pageLen(0), &page)
		}
	}
	if err != nil {
		return nil, meta, c.explain(err)
	}
	meta.Column, err = c.pickColumn(&page, src.column, p)
	if err != nil {
		return nil, meta, err
	}
	p.field = meta.Column

	var prompts []Prompt
	for {
		meta.NumRowsTotal = page.NumRowsTotal
		if len(page.Rows) == 0 && meta.RowsRead < page.NumRowsTotal {
			return nil, meta, fmt.Errorf("dataset %s: datasets-server returned no rows at offset %d of %d",
				c.source, meta.RowsRead, page.NumRowsTotal)
		}
		for i := range page.Rows {
			if limitReached(len(prompts), limit) {
				break
			}
			row := &page.Rows[i]
			if row.Row == nil {
				row.Row = map[string]json.RawMessage{}
			}
			if slices.Contains(row.TruncatedCells, meta.Column) {
				if row.Row[meta.Column], err = c.fullCell(ctx, &meta, row.RowIdx); err != nil {
					return nil, meta, err
				}
			}
			prompt, ok, err := p.parse(row.Row)
			if err != nil {
				return nil, meta, fmt.Errorf("dataset %s: row %d: %w", c.source, row.RowIdx, err)
			}
			if ok {
				prompts = append(prompts, prompt)
			}
			meta.RowsRead++
		}
		if limitReached(len(prompts), limit) || meta.RowsRead >= meta.NumRowsTotal {
			meta.Format = string(p.format)
			return prompts, meta, nil
		}
		page = hfRowsPage{}
		if err := c.rows(ctx, &meta, meta.RowsRead, pageLen(len(prompts)), &page); err != nil {
			return nil, meta, c.explain(err)
		}
	}
}

// rows fetches one page of the split meta names.
func (c *hfClient) rows(ctx context.Context, meta *hfCacheMeta, offset, length int, page *hfRowsPage) error {
	q := url.Values{
		"dataset": {meta.Dataset},
		"config":  {meta.Config},
		"split":   {meta.Split},
		"offset":  {strconv.Itoa(offset)},
		"length":  {strconv.Itoa(length)},
	}
	return c.get(ctx, "/rows", q, page)
}

// fullCell refetches one row whose prompt the rows API truncated to fit a
// page; alone, it usually fits.
func (c *hfClient) fullCell(ctx context.Context, meta *hfCacheMeta, rowIdx int) (json.RawMessage, error) {
	var page hfRowsPage
	if err := c.rows(ctx, meta, rowIdx, 1, &page); err != nil {
		return nil, c.explain(err)
	}
	if len(page.Rows) != 1 || slices.Contains(page.Rows[0].TruncatedCells, meta.Column) {
		return nil, fmt.Errorf("dataset %s: row %d: the datasets-server only serves column %q truncated: "+
			"download the dataset and pass --dataset FILE", c.source, rowIdx, meta.Column)
	}
	return page.Rows[0].Row[meta.Column], nil
}

// discoverSplit picks a config and split from /splits: the requested ones,
// else "default" and "train" when listed, else the first listed.
func (c *hfClient) discoverSplit(ctx context.Context, src *hfSource) (config, split string, err error) {
	var resp hfSplits
	if err := c.get(ctx, "/splits", url.Values{"dataset": {src.dataset}}, &resp); err != nil {
		return "", "", err
	}
	var configs, pairs []string
	for _, s := range resp.Splits {
		if !slices.Contains(configs, s.Config) {
			configs = append(configs, s.Config)
		}
		pairs = append(pairs, "config="+s.Config+"&split="+s.Split)
	}
	config = src.config
	switch {
	case config != "":
	case slices.Contains(configs, hfDefaultConfig):
		config = hfDefaultConfig
	case len(configs) > 0:
		config = configs[0]
	}
	var splits []string
	for _, s := range resp.Splits {
		if s.Config == config {
			splits = append(splits, s.Split)
		}
	}
	split = src.split
	switch {
	case split != "":
	case slices.Contains(splits, hfDefaultSplit):
		split = hfDefaultSplit
	case len(splits) > 0:
		split = splits[0]
	}
	if !slices.Contains(splits, split) {
		return "", "", fmt.Errorf("dataset %s: no config %q with split %q; available: %s",
			c.source, config, split, strings.Join(pairs, ", "))
	}
	return config, split, nil
}

// pickColumn chooses the prompt or conversation column among the page's
// features: want, else the first of p's fields.
func (c *hfClient) pickColumn(page *hfRowsPage, want string, p *rowParser) (string, error) {
	names := make([]string, len(page.Features))
	for i, f := range page.Features {
		names[i] = f.Name
	}
	fields := p.fields()
	if want != "" {
		fields = []string{want}
	}
	for _, f := range fields {
		if slices.Contains(names, f) {
			return f, nil
		}
	}
	missing := newRowParser(want, p.format).missingField("column")
	return "", fmt.Errorf("dataset %s: %s among the columns (%s); choose one with ?column=NAME or dataset_field (--dataset-field)",
		c.source, missing, strings.Join(names, ", "))
}

// get fetches path?q and decodes the JSON answer into out. A transport
// failure is an *UnavailableError; a non-200 answer an
// *hfStatusError.
func (c *hfClient) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("dataset %s: bad endpoint %q: %w", c.source, c.endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, hfMaxResponseBytes+1))
	if err != nil {
		return c.transportError(ctx, fmt.Errorf("read %s: %w", req.URL.Redacted(), err))
	}
	if len(body) > hfMaxResponseBytes {
		return fmt.Errorf("dataset %s: %s answered more than %d MiB", c.source, req.URL.Redacted(), hfMaxResponseBytes>>20)
	}
	if resp.StatusCode != http.StatusOK {
		return &hfStatusError{Status: resp.StatusCode, Message: serverMessage(body)}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("dataset %s: malformed answer from %s: %w", c.source, req.URL.Redacted(), err)
	}
	return nil
}

// transportError classifies a failed exchange: the caller's cancellation
// stays an error of its own; anything else means the network is not
// there.
func (c *hfClient) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetch dataset %s: %w", c.source, ctx.Err())
	}
	return &UnavailableError{Source: c.source, Err: err}
}

// explain turns a status error into one that says what to do; transient
// answers (429, 5xx) count as the network being unavailable.
func (c *hfClient) explain(err error) error {
	var status *hfStatusError
	if !errors.As(err, &status) {
		return err
	}
	switch {
	case status.Status == http.StatusTooManyRequests || status.Status >= 500:
		return &UnavailableError{Source: c.source, Err: status}
	case status.Status == http.StatusUnauthorized || status.Status == http.StatusForbidden:
		if c.token != "" {
			return fmt.Errorf("dataset %s: %w: the HF_TOKEN sent was refused or lacks access to this gated or private dataset", c.source, status)
		}
		return fmt.Errorf("dataset %s: %w: the dataset is gated or private: accept its terms on huggingface.co and set HF_TOKEN", c.source, status)
	case status.Status == http.StatusNotFound:
		return fmt.Errorf("dataset %s: %w: check the name, config and split (a private or gated dataset also needs HF_TOKEN)", c.source, status)
	default:
		return fmt.Errorf("dataset %s: %w", c.source, status)
	}
}

// serverMessage extracts the datasets-server's {"error": "..."} message,
// or the start of a non-JSON body.
func serverMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return msg
}

// hfCachePath is where src is cached, or "" when no cache directory can be
// found.
func hfCachePath(opts *Options, src *hfSource) string {
	dir := opts.CacheDir
	if dir == "" {
		userDir, err := os.UserCacheDir()
		if err != nil {
			opts.warnf("hf:// datasets are not cached: %v", err)
			return ""
		}
		dir = filepath.Join(userDir, "tokenwatt", "datasets")
	}
	// The readable part helps a user find a cache file; the hash keeps two
	// spellings that sanitize alike from sharing one.
	sum := sha256.Sum256([]byte(src.config + "\x00" + src.split + "\x00" + src.column))
	name := fmt.Sprintf("%s.%s.%s.%s.jsonl", cacheNamePart(src.config), cacheNamePart(src.split),
		cacheNamePart(src.column), hex.EncodeToString(sum[:4]))
	return filepath.Join(dir, "hf", filepath.FromSlash(src.dataset), name)
}

// cacheNamePart makes s safe as part of a file name; "" becomes "auto".
func cacheNamePart(s string) string {
	if s == "" {
		return "auto"
	}
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), 40)])
}

// readHFCache reads a cache file written by writeHFCache. found is false
// when there is none.
func readHFCache(path string) (prompts []Prompt, meta hfCacheMeta, found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, meta, false, nil
	}
	if err != nil {
		return nil, meta, false, fmt.Errorf("open dataset cache: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	header, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, meta, false, fmt.Errorf("read dataset cache %s: %w", path, err)
	}
	if err := json.Unmarshal(header, &meta); err != nil || meta.Dataset == "" {
		return nil, meta, false, fmt.Errorf("%s:1: not a tokenwatt dataset cache header", path)
	}
	format, err := ParseFormat(meta.Format)
	if err != nil || format == FormatAuto {
		format = FormatPrompt
	}
	// The leading newline keeps line numbers in errors true to the file.
	prompts, err = readJSONLines(io.MultiReader(strings.NewReader("\n"), br), path, newRowParser("", format), 0)
	if err != nil {
		return nil, meta, false, err
	}
	return prompts, meta, true, nil
}

// cacheRow is one row of a cache file: the prompt, or the conversation,
// under the field its format reads first, and the row's own output
// length. Read back, it gives the same Prompt.
type cacheRow struct {
	Prompt        string          `json:"prompt,omitempty"`
	Messages      []cacheMessage  `json:"messages,omitempty"`
	Conversations []cacheShareGPT `json:"conversations,omitempty"`
	OutputLen     int             `json:"output_len,omitempty"`
}

type cacheMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type cacheShareGPT struct {
	From  string `json:"from"`
	Value string `json:"value"`
}

// shareGPTFrom is the ShareGPT speaker of a role.
var shareGPTFrom = map[string]string{RoleSystem: "system", RoleUser: "human", RoleAssistant: "gpt"}

func newCacheRow(p *Prompt, format Format) cacheRow {
	var row cacheRow
	switch format {
	case FormatChat:
		row.Messages = make([]cacheMessage, len(p.Conversation))
		for i, m := range p.Conversation {
			row.Messages[i] = cacheMessage(m)
		}
	case FormatShareGPT:
		row.Conversations = make([]cacheShareGPT, len(p.Conversation))
		for i, m := range p.Conversation {
			row.Conversations[i] = cacheShareGPT{From: shareGPTFrom[m.Role], Value: m.Content}
		}
	default:
		row.Prompt = p.Text
	}
	if p.lengthFrom == lengthRow {
		row.OutputLen = p.MaxTokens
	}
	return row
}

// writeHFCache writes the cache atomically, so that a run killed halfway
// leaves either the old cache or the new one.
func writeHFCache(path string, meta *hfCacheMeta, prompts []Prompt) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".partial-*.jsonl")
	if err != nil {
		return fmt.Errorf("create cache file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	w := bufio.NewWriter(tmp)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err = enc.Encode(meta)
	for i := range prompts {
		if err != nil {
			break
		}
		err = enc.Encode(newCacheRow(&prompts[i], Format(meta.Format)))
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write cache file %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("install cache file: %w", err)
	}
	return nil
}
