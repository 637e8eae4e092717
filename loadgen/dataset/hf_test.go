package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeHFSplit is one config/split of a dataset served by fakeHF.
type fakeHFSplit struct {
	config, split string
	columns       []string
	rows          []map[string]any
	// truncated rows have their "text" cell cut short in every page of
	// more than one row, as the real server does when a page is too big.
	truncated map[int]bool
}

// fakeHF imitates the datasets-server /rows and /splits endpoints.
type fakeHF struct {
	datasets map[string][]fakeHFSplit
	token    string // when set, requests must carry it
	status   int    // when set, every request gets this status

	mu       sync.Mutex
	requests []url.Values // query of every request, in order
	paths    []string
}

func (f *fakeHF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.URL.Query())
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error": %q}`, msg)
	}
	if f.status != 0 {
		fail(f.status, "The server is busy.")
		return
	}
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(http.StatusUnauthorized, "The dataset is gated: log in and accept the conditions.")
		return
	}
	q := r.URL.Query()
	splits, ok := f.datasets[q.Get("dataset")]
	if !ok {
		fail(http.StatusNotFound, "The dataset does not exist, or is not accessible without authentication (private or gated).")
		return
	}
	switch r.URL.Path {
	case "/splits":
		var resp hfSplits
		for _, s := range splits {
			resp.Splits = append(resp.Splits, struct {
				Config string `json:"config"`
				Split  string `json:"split"`
			}{s.config, s.split})
		}
		writeJSON(w, resp)
	case "/rows":
		i := slices.IndexFunc(splits, func(s fakeHFSplit) bool { return s.config == q.Get("config") && s.split == q.Get("split") })
		if i < 0 {
			fail(http.StatusNotFound, "Not found.")
			return
		}
		offset, err1 := strconv.Atoi(q.Get("offset"))
		length, err2 := strconv.Atoi(q.Get("length"))
		if err1 != nil || err2 != nil || offset < 0 || length < 1 || length > 100 {
			fail(http.StatusUnprocessableEntity, "Parameter 'length' must be between 1 and 100.")
			return
		}
		writeJSON(w, splits[i].page(offset, length))
	default:
		fail(http.StatusNotFound, "Not found.")
	}
}

func (s *fakeHFSplit) page(offset, length int) map[string]any {
	features := []map[string]any{}
	for i, c := range s.columns {
		features = append(features, map[string]any{"feature_idx": i, "name": c, "type": map[string]any{"dtype": "string", "_type": "Value"}})
	}
	rows := []map[string]any{}
	for i := offset; i < min(offset+length, len(s.rows)); i++ {
		row, cut := s.rows[i], []string{}
		if s.truncated[i] && length > 1 {
			row = map[string]any{"text": row["text"].(string)[:10]}
			cut = append(cut, "text")
		}
		rows = append(rows, map[string]any{"row_idx": i, "row": row, "truncated_cells": cut})
	}
	return map[string]any{"features": features, "rows": rows, "num_rows_total": len(s.rows), "num_rows_per_page": 100, "partial": false}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		panic(err)
	}
}

func (f *fakeHF) calls() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func (f *fakeHF) requestPaths() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

// textRows makes n rows whose text is "row I" (I from 0).
func textRows(n int) []map[string]any {
	rows := make([]map[string]any, n)
	for i := range rows {
		rows[i] = map[string]any{"text": fmt.Sprintf("row %d", i), "label": i % 3}
	}
	return rows
}

func rowTexts(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("row %d", i))
	}
	return out
}

// startFakeHF serves one dataset, AIEnergyScore/text_generation, with a
// default/train split of n rows.
func startFakeHF(t *testing.T, n int) (*fakeHF, *httptest.Server) {
	t.Helper()
	f := &fakeHF{datasets: map[string][]fakeHFSplit{
		"AIEnergyScore/text_generation": {{config: "default", split: "train", columns: []string{"text", "label"}, rows: textRows(n)}},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// hfOpts points a load at endpoint with a fresh cache. The token is set so
// that an HF_TOKEN in the developer's environment is not used; the fake
// server ignores it unless it requires one.
func hfOpts(t *testing.T, endpoint string) Options {
	return Options{HFEndpoint: endpoint, CacheDir: t.TempDir(), HFToken: "-", Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
}

const aiesSource = "hf://AIEnergyScore/text_generation"

func TestHFPagingWithLimit(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 250)
	opts := hfOpts(t, srv.URL)
	opts.Limit = 150
	got, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := rowTexts(0, 150); !slices.Equal(got, want) {
		t.Fatalf("got %d prompts %q..., want rows 0..149", len(got), got[:min(3, len(got))])
	}
	calls := f.calls()
	if len(calls) != 2 {
		t.Fatalf("made %d requests, want 2 pages: %v", len(calls), calls)
	}
	for i, want := range []url.Values{
		{"dataset": {"AIEnergyScore/text_generation"}, "config": {"default"}, "split": {"train"}, "offset": {"0"}, "length": {"100"}},
		{"dataset": {"AIEnergyScore/text_generation"}, "config": {"default"}, "split": {"train"}, "offset": {"100"}, "length": {"50"}},
	} {
		if calls[i].Encode() != want.Encode() {
			t.Errorf("request %d query %s, want %s", i, calls[i].Encode(), want.Encode())
		}
	}

	// A smaller limit is served from the cache without a request.
	opts.Limit = 120
	got, err = loadTexts(context.Background(), aiesSource, opts)
	if err != nil || !slices.Equal(got, rowTexts(0, 120)) {
		t.Fatalf("cached load: %d prompts, err %v", len(got), err)
	}
	if n := len(f.calls()); n != 2 {
		t.Errorf("cached load made %d new requests", n-2)
	}
}

func TestHFAllRowsSkipsEmpty(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 250)
	rows := f.datasets["AIEnergyScore/text_generation"][0].rows
	rows[5]["text"] = ""
	rows[6]["text"] = nil
	got, err := loadTexts(context.Background(), aiesSource, hfOpts(t, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	want := append(rowTexts(0, 5), rowTexts(7, 250)...)
	if !slices.Equal(got, want) {
		t.Errorf("got %d prompts, want %d (rows 5 and 6 are empty)", len(got), len(want))
	}
	if n := len(f.calls()); n != 3 {
		t.Errorf("made %d requests for 250 rows, want 3", n)
	}
}

func TestHFConfigSplitColumn(t *testing.T) {
	t.Parallel()
	f := &fakeHF{datasets: map[string][]fakeHFSplit{
		"org/qa": {
			{config: "default", split: "train", columns: []string{"text"}, rows: textRows(3)},
			{config: "small", split: "test", columns: []string{"question", "answer"}, rows: []map[string]any{
				{"question": "What is a joule?", "answer": "A unit of energy."},
				{"question": "What is a watt?", "answer": "A joule per second."},
			}},
		},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)

	got, err := loadTexts(context.Background(), "hf://org/qa?config=small&split=test&column=question", hfOpts(t, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"What is a joule?", "What is a watt?"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if q := f.calls()[0]; q.Get("config") != "small" || q.Get("split") != "test" {
		t.Errorf("request query %s, want config=small&split=test", q.Encode())
	}

	// Options.Field picks the column when the source names none.
	opts := hfOpts(t, srv.URL)
	opts.Field = "answer"
	got, err = loadTexts(context.Background(), "hf://org/qa?config=small&split=test", opts)
	if err != nil || !slices.Equal(got, []string{"A unit of energy.", "A joule per second."}) {
		t.Errorf("Field answer: got %q, %v", got, err)
	}

	_, err = loadTexts(context.Background(), "hf://org/qa?config=small&split=test", hfOpts(t, srv.URL))
	if err == nil || !strings.Contains(err.Error(), `no column "prompt" or "text"`) || !strings.Contains(err.Error(), "question, answer") {
		t.Errorf("no default column: error %v, want one listing the columns", err)
	}
}

func TestHFSplitDiscovery(t *testing.T) {
	t.Parallel()
	f := &fakeHF{datasets: map[string][]fakeHFSplit{
		"Salesforce/wikitext": {
			{config: "wikitext-2-raw-v1", split: "test", columns: []string{"text"}, rows: textRows(2)},
			{config: "wikitext-2-raw-v1", split: "train", columns: []string{"text"}, rows: textRows(4)},
		},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)

	got, err := loadTexts(context.Background(), "hf://Salesforce/wikitext", hfOpts(t, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, rowTexts(0, 4)) {
		t.Errorf("got %q, want the 4 rows of wikitext-2-raw-v1/train", got)
	}
	if paths := f.requestPaths(); len(paths) != 3 || paths[1] != "/splits" {
		t.Errorf("requests %v, want /splits after the default config 404s", paths)
	}

	_, err = loadTexts(context.Background(), "hf://Salesforce/wikitext?split=validation", hfOpts(t, srv.URL))
	if err == nil || !strings.Contains(err.Error(), "config=wikitext-2-raw-v1&split=test") {
		t.Errorf("unknown split: error %v, want the available splits listed", err)
	}
}

// TestHFTokenAndGatedDataset is not parallel: it clears HF_TOKEN.
func TestHFTokenAndGatedDataset(t *testing.T) {
	t.Setenv("HF_TOKEN", "")
	f, srv := startFakeHF(t, 3)
	f.token = "hf_secret_token"

	opts := hfOpts(t, srv.URL)
	opts.HFToken = ""
	_, err := loadTexts(context.Background(), aiesSource, opts)
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "The dataset is gated") ||
		!strings.Contains(err.Error(), "set HF_TOKEN") {
		t.Errorf("no token: error %v, want 401 with the server's message and a hint to set HF_TOKEN", err)
	}
	var unavailable *UnavailableError
	if errors.As(err, &unavailable) {
		t.Error("a 401 is reported as the network being unavailable")
	}

	opts.HFToken = "hf_wrong_token"
	_, err = loadTexts(context.Background(), aiesSource, opts)
	if err == nil || !strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "hf_wrong_token") {
		t.Errorf("wrong token: error %v, want a refusal that does not echo the token", err)
	}

	opts.HFToken = "hf_secret_token"
	got, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil || !slices.Equal(got, rowTexts(0, 3)) {
		t.Errorf("with token: got %q, %v", got, err)
	}
}

// TestHFEnvironment is not parallel: it sets environment variables.
func TestHFEnvironment(t *testing.T) {
	f, srv := startFakeHF(t, 2)
	f.token = "hf_env_token"
	t.Setenv("TOKENWATT_HF_ENDPOINT", srv.URL)
	t.Setenv("HF_TOKEN", "hf_env_token")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	got, err := loadTexts(context.Background(), aiesSource, Options{})
	if err != nil || !slices.Equal(got, rowTexts(0, 2)) {
		t.Errorf("endpoint and token from the environment: got %q, %v", got, err)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "tokenwatt", "datasets", "hf", "AIEnergyScore", "text_generation", "*.jsonl"))
	if len(files) != 1 {
		t.Errorf("cache files under the user cache directory: %v, want 1", files)
	}
}

func TestHFCorruptCacheRefetched(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 3)
	opts := hfOpts(t, srv.URL)
	if _, err := loadTexts(context.Background(), aiesSource, opts); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(opts.CacheDir, "hf", "AIEnergyScore", "text_generation", "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want 1", files)
	}
	if err := os.WriteFile(files[0], []byte("not a cache\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	warnings := &messages{}
	opts.Logger = slog.New(warnings)
	got, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil || !slices.Equal(got, rowTexts(0, 3)) {
		t.Fatalf("corrupt cache: got %q, %v; want a refetch", got, err)
	}
	if len(warnings.lines) != 1 || !strings.Contains(warnings.lines[0], "ignoring unreadable dataset cache") {
		t.Errorf("warnings %q, want one about the unreadable cache", warnings.lines)
	}
	if n := len(f.calls()); n != 2 {
		t.Errorf("made %d requests, want 2 (one per load)", n)
	}
	if again, err := loadTexts(context.Background(), files[0], Options{}); err != nil || !slices.Equal(again, got) {
		t.Errorf("rewritten cache: %q, %v", again, err)
	}
}

func TestHFNotFound(t *testing.T) {
	t.Parallel()
	_, srv := startFakeHF(t, 2)
	_, err := loadTexts(context.Background(), "hf://nobody/nothing", hfOpts(t, srv.URL))
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "The dataset does not exist") ||
		!strings.Contains(err.Error(), "hf://nobody/nothing") {
		t.Errorf("unknown dataset: error %v, want 404 with the server's message", err)
	}
}

func TestHFOfflineFromCache(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 130)
	opts := hfOpts(t, srv.URL)
	first, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()

	second, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil {
		t.Fatalf("offline second run: %v", err)
	}
	if !slices.Equal(first, second) {
		t.Errorf("offline run gave %d prompts, online run %d", len(second), len(first))
	}
	if n := len(f.calls()); n != 2 {
		t.Errorf("made %d requests in all, want 2 (only the first run's pages)", n)
	}

	// The cache file is itself a JSONL dataset.
	files, _ := filepath.Glob(filepath.Join(opts.CacheDir, "hf", "AIEnergyScore", "text_generation", "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want 1", files)
	}
	fromFile, err := loadTexts(context.Background(), files[0], Options{})
	if err != nil || !slices.Equal(fromFile, first) {
		t.Errorf("cache file as --dataset: %d prompts, %v", len(fromFile), err)
	}
}

func TestHFPartialCache(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 300)
	opts := hfOpts(t, srv.URL)
	opts.Limit = 50
	if _, err := loadTexts(context.Background(), aiesSource, opts); err != nil {
		t.Fatal(err)
	}

	// Online, a cache shorter than the limit is fetched again.
	opts.Limit = 120
	got, err := loadTexts(context.Background(), aiesSource, opts)
	if err != nil || !slices.Equal(got, rowTexts(0, 120)) {
		t.Fatalf("refetch: %d prompts, %v", len(got), err)
	}
	if n := len(f.calls()); n != 3 {
		t.Errorf("made %d requests, want 1 for the first load and 2 for the refetch", n)
	}

	// Offline, what the cache holds is used, and the caller is told.
	srv.Close()
	warnings := &messages{}
	opts.Limit = 200
	opts.Logger = slog.New(warnings)
	got, err = loadTexts(context.Background(), aiesSource, opts)
	if err != nil || !slices.Equal(got, rowTexts(0, 120)) {
		t.Fatalf("offline with a short cache: %d prompts, %v; want the 120 cached", len(got), err)
	}
	if len(warnings.lines) != 1 || !strings.Contains(warnings.lines[0], "using the 120 prompts cached") {
		t.Errorf("warnings %q, want one saying the cache is used", warnings.lines)
	}
}

func TestHFUnavailable(t *testing.T) {
	t.Parallel()
	_, srv := startFakeHF(t, 2)
	srv.Close()
	_, err := loadTexts(context.Background(), aiesSource, hfOpts(t, srv.URL))
	var unavailable *UnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("unreachable server, no cache: error %v (%T), want *UnavailableError", err, err)
	}
	if unavailable.Source != aiesSource || !strings.Contains(err.Error(), "--dataset FILE") {
		t.Errorf("error %q, want the source and a --dataset FILE hint", err)
	}

	f, busy := startFakeHF(t, 2)
	f.status = http.StatusServiceUnavailable
	_, err = loadTexts(context.Background(), aiesSource, hfOpts(t, busy.URL))
	if !errors.As(err, &unavailable) || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: error %v, want *UnavailableError naming the status", err)
	}
}

func TestHFCanceled(t *testing.T) {
	t.Parallel()
	_, srv := startFakeHF(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := loadTexts(ctx, aiesSource, hfOpts(t, srv.URL))
	var unavailable *UnavailableError
	if !errors.Is(err, context.Canceled) || errors.As(err, &unavailable) {
		t.Errorf("canceled context: error %v, want context.Canceled", err)
	}
}

func TestHFTruncatedCell(t *testing.T) {
	t.Parallel()
	f, srv := startFakeHF(t, 5)
	split := &f.datasets["AIEnergyScore/text_generation"][0]
	long := strings.Repeat("a long prompt ", 1000)
	split.rows[3]["text"] = long
	split.truncated = map[int]bool{3: true}
	got, err := loadTexts(context.Background(), aiesSource, hfOpts(t, srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[3] != long {
		t.Errorf("truncated row: got %d prompts, row 3 of %d bytes, want it whole (%d)", len(got), len(got[3]), len(long))
	}
	if q := f.calls()[1]; q.Get("offset") != "3" || q.Get("length") != "1" {
		t.Errorf("second request %s, want row 3 alone", q.Encode())
	}
}

func TestHFBadSource(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"hf://", "hf://a/b/c", "hf://../etc", "hf://org/name?subset=x", "hf://org/name?config=%zz"} {
		_, err := loadTexts(context.Background(), source, Options{CacheDir: t.TempDir(), HFEndpoint: "http://127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), source) {
			t.Errorf("Load(%q) error %v, want one naming the source", source, err)
		}
		var unavailable *UnavailableError
		if errors.As(err, &unavailable) {
			t.Errorf("Load(%q) tried the network", source)
		}
	}
}

// messages is a slog.Handler that keeps the messages it is given.
type messages struct{ lines []string }

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }

func (m *messages) Handle(_ context.Context, r slog.Record) error {
	m.lines = append(m.lines, r.Message)
	return nil
}

func (m *messages) WithAttrs([]slog.Attr) slog.Handler { return m }
func (m *messages) WithGroup(string) slog.Handler      { return m }

// jsonValue decodes a JSON literal for a fake row.
func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestHFShapes: chat and ShareGPT rows from the rows API are detected,
// keep their per-row output lengths, are cached in their shape and read
// back the same offline, also as a --dataset file; a bad row is named by
// its index.
func TestHFShapes(t *testing.T) {
	t.Parallel()
	sharegpt := jsonValue(t, shareGPTRow).(map[string]any)
	chat := jsonValue(t, chatRow).(map[string]any)
	f := &fakeHF{datasets: map[string][]fakeHFSplit{
		"org/sharegpt": {{config: "default", split: "train", columns: []string{"id", "conversations"},
			rows: []map[string]any{sharegpt, {"id": "empty", "conversations": nil}, sharegpt}}},
		"org/chat": {{config: "default", split: "train", columns: []string{"messages", "output_len"},
			rows: []map[string]any{
				{"messages": chat["messages"], "output_len": nil},
				{"messages": jsonValue(t, `[{"role": "user", "content": "Hi"}]`), "output_len": 12},
			}}},
		"org/bad": {{config: "default", split: "train", columns: []string{"messages"},
			rows: []map[string]any{
				{"messages": jsonValue(t, `[{"role": "user", "content": "Hi"}]`)},
				{"messages": jsonValue(t, `[{"role": "user", "content": "Hi"}]`)},
				{"messages": jsonValue(t, `[{"role": "narrator", "content": "Once"}]`)},
			}}},
	}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	hi := Prompt{Text: "Hi", Messages: []Message{{RoleUser, "Hi"}}, Conversation: []Message{{RoleUser, "Hi"}},
		MaxTokens: 12, lengthFrom: lengthRow}
	for _, tc := range []struct {
		source string
		format Format
		want   []Prompt
	}{
		{"hf://org/sharegpt", FormatShareGPT, []Prompt{shareGPTPrompt, shareGPTPrompt}},
		{"hf://org/chat", FormatChat, []Prompt{chatPrompt, hi}},
	} {
		opts := hfOpts(t, srv.URL)
		check := func(how string, set *Set, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s %s: %v", how, tc.source, err)
			}
			if !reflect.DeepEqual(set.Prompts, tc.want) || set.Format != tc.format || !set.Detected {
				t.Errorf("%s %s: format %s (detected %v), prompts\n%+v\nwant %s\n%+v", how, tc.source, set.Format, set.Detected,
					set.Prompts, tc.format, tc.want)
			}
		}
		set, err := Load(context.Background(), tc.source, opts)
		check("fetched", set, err)

		// The cache holds the rows in their shape: the same prompts come
		// back offline, and from the cache file given as --dataset.
		opts.HFEndpoint = "http://127.0.0.1:1"
		set, err = Load(context.Background(), tc.source, opts)
		check("cached", set, err)
		files, _ := filepath.Glob(filepath.Join(opts.CacheDir, "hf", "org", "*", "*.jsonl"))
		if len(files) != 1 {
			t.Fatalf("cache files %v, want 1", files)
		}
		set, err = Load(context.Background(), files[0], Options{})
		check("cache file", set, err)

		// Forcing another shape does not read the cache: the rows are
		// fetched again and say they are not of that shape.
		opts.HFEndpoint = srv.URL
		opts.Format = FormatPrompt
		before := len(f.calls())
		if _, err := Load(context.Background(), tc.source, opts); err == nil || !strings.Contains(err.Error(), "no column") {
			t.Errorf("%s forced prompt: error %v, want no prompt column", tc.source, err)
		}
		if len(f.calls()) == before {
			t.Errorf("%s forced prompt: served from the cache of another shape", tc.source)
		}
	}

	_, err := Load(context.Background(), "hf://org/bad", hfOpts(t, srv.URL))
	if want := `dataset hf://org/bad: row 2: messages[0].role "narrator" is not a chat role (system, developer, user, assistant, tool)`; err == nil || err.Error() != want {
		t.Errorf("bad row: error %v, want %s", err, want)
	}
}

// TestHFCacheBeforeFormats: a cache written before datasets had shapes
// (no _format; rows of {"prompt"}) still serves its prompts.
func TestHFCacheBeforeFormats(t *testing.T) {
	t.Parallel()
	opts := hfOpts(t, "http://127.0.0.1:1")
	src, err := parseHFSource(aiesSource, "")
	if err != nil {
		t.Fatal(err)
	}
	path := hfCachePath(&opts, &src)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	old := `{"_source":"hf://AIEnergyScore/text_generation","_dataset":"AIEnergyScore/text_generation","_config":"default","_split":"train","_column":"text","_rows_read":2,"_num_rows_total":2}` +
		"\n" + `{"prompt":"row 0"}` + "\n" + `{"prompt":"row 1"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := Load(context.Background(), aiesSource, opts)
	if err != nil || set.Format != FormatPrompt || !reflect.DeepEqual(set.Prompts, Texts(rowTexts(0, 2))) {
		t.Fatalf("old cache: %+v, %v", set, err)
	}
}
