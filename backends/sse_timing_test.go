package backends

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// vllmChatStream builds a realistic vLLM chat stream: role chunk, n
// content chunks, finish chunk, usage chunk with empty choices, [DONE].
func vllmChatStream(n int) (stream []byte, chunks int) {
	const head = `data: {"id":"chatcmpl-9f1c2a7be35d4e0c8a6b71f0d2e4c913","object":"chat.completion.chunk","created":1733945600,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[`
	words := []string{" the", " energy", " per", " token", " is", " measured", " in", " joules", ",", " \"J\"", ".\n"}
	var b strings.Builder
	b.WriteString(head + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	for i := range n {
		fmt.Fprintf(&b, head+`{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":null}]}`+"\n\n", words[i%len(words)])
	}
	b.WriteString(head + `{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}` + "\n\n")
	fmt.Fprintf(&b, head+`],"usage":{"prompt_tokens":512,"total_tokens":%d,"completion_tokens":%d}}`+"\n\n", 512+n, n)
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String()), n + 3
}

// BenchmarkSSEChat measures the per-chunk hot path (SSE reader, chunk
// scanner, timing and token bookkeeping) on an in-memory vLLM stream.
func BenchmarkSSEChat(b *testing.B) {
	stream, chunks := vllmChatStream(256)
	benchmarkStream(b, stream, chunks)
}

// BenchmarkSSEChatStamped is BenchmarkSSEChat with a simulator's stamp
// before each text chunk (client lateness, sim --stamp-chunks).
func BenchmarkSSEChatStamped(b *testing.B) {
	stream, chunks := vllmChatStream(256)
	benchmarkStream(b, stampedStream(stream), chunks)
}

func benchmarkStream(b *testing.B, stream []byte, chunks int) {
	src := bytes.NewReader(stream)
	sr := newSSEReader(src, sseBufferSize)
	var resp Response
	ctx := context.Background()
	run := func() {
		src.Reset(stream)
		sr.reset(src)
		resp.Reset()
		readStream(ctx, sr, &resp, false, nil)
	}
	run()
	if resp.Outcome != OutcomeOK || resp.TextChunks != chunks-3 || resp.OutputTokens != chunks-3 {
		b.Fatalf("outcome=%s text chunks=%d output=%d error=%q", resp.Outcome, resp.TextChunks, resp.OutputTokens, resp.Error)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for b.Loop() {
		run()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	total := float64(b.N) * float64(chunks)
	b.ReportMetric(total/b.Elapsed().Seconds(), "chunks/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/chunk")
}
