package backends

import (
	"context"
	"strings"
	"testing"
	"time"
)

// FuzzNDJSON feeds arbitrary bytes to the NDJSON stream reader: it must
// never panic, must end every stream with an outcome, and its counts
// must be consistent (one ITL per text chunk after the first, output
// tokens from usage or the chunks).
func FuzzNDJSON(f *testing.F) {
	for _, seed := range []string{
		`{"text": "a"}` + "\n" + `{"text": "b"}` + "\n" + `{"usage": {"prompt_tokens": 5, "completion_tokens": 2}}` + "\n",
		`{"text": "abc", "usage": {"prompt_tokens": 1, "completion_tokens": 3}}`,
		`{"error": "CUDA out of memory"}` + "\n",
		`{"code": 500, "type": "InternalServerException", "message": "x"}`,
		`{"error": {"message": "nested"}}`,
		"\n\n  \n",
		`{"text": null}` + "\n" + `{"usage": null}`,
		`not json`,
		`{"text": "\u00e9"}` + "\r\n",
		strings.Repeat(`{"text": "x"}`+"\n", 50),
		`{"usage": {"prompt_tokens": -1, "completion_tokens": 9999999999}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp Response
		resp.Reset()
		resp.Send = time.Now()
		readNDJSON(context.Background(), strings.NewReader(string(data)), &resp, true, MaxStreamLine)
		if resp.Outcome == "" {
			t.Fatal("no outcome")
		}
		if resp.Outcome != OutcomeOK && resp.Error == "" {
			t.Fatalf("outcome %s without an error message", resp.Outcome)
		}
		if resp.TextChunks > 0 && len(resp.ITL)+resp.MoreITL.Count() != resp.TextChunks-1 {
			t.Fatalf("%d text chunks, %d ITLs", resp.TextChunks, len(resp.ITL))
		}
		if resp.TextChunks > 0 && (resp.First.IsZero() || resp.Last.Before(resp.First)) {
			t.Fatalf("first %v, last %v", resp.First, resp.Last)
		}
		if len(resp.Text) > MaxText || len(resp.FinishReason) > MaxFinishReason {
			t.Fatalf("%d bytes of text, finish reason of %d bytes", len(resp.Text), len(resp.FinishReason))
		}
		switch resp.TokensSource {
		case TokensFromChunks:
			if resp.OutputTokens != resp.TextChunks {
				t.Fatalf("tokens from chunks: %d tokens, %d chunks", resp.OutputTokens, resp.TextChunks)
			}
		case TokensFromUsage:
		default:
			t.Fatalf("tokens source %q", resp.TokensSource)
		}
	})
}
