package exporter

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// A 200,000-character model name from a server made every /metrics scrape
// 29.6 MB: every series carries it. Label values are capped at
// MaxLabelValueBytes (issue 16, defect 14).
func TestLongLabelValuesAreCapped(t *testing.T) {
	model := strings.Repeat("m", 200_000)
	uuid := "GPU-" + strings.Repeat("é", 300) // cut at a character boundary
	m := NewRun(RunLabels{RunID: "run-1", Scenario: "s", Model: model, Backend: "vllm"},
		RunOptions{Version: "v1", Endpoint: "http://h/" + strings.Repeat("e", 1000), GPUUUIDs: "GPU-a " + uuid,
			Outcomes: []string{"ok"}})
	m.Observe(&Observation{Outcome: "ok", TTFT: ptr(0.1), E2E: ptr(0.2), PromptTokens: ptr(3), OutputTokens: ptr(4)})
	s := serveTest(t, m.Registry(), "")
	code, body := get(t, "http://"+s.Addr()+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	if len(body) > 200_000 {
		t.Errorf("a scrape is %d bytes, want well under the model name's 200,000", len(body))
	}
	wantModel := strings.Repeat("m", MaxLabelValueBytes-3) + "…"
	if !strings.Contains(body, `model="`+wantModel+`"`) {
		t.Errorf("no model label %q…", wantModel[:20])
	}
	for _, v := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(body, -1) {
		if v[1] != "gpu_uuids" && len(v[2]) > MaxLabelValueBytes || !utf8.ValidString(v[2]) {
			t.Errorf("%s label value of %d bytes (valid UTF-8: %v): %.40q…", v[1], len(v[2]), utf8.ValidString(v[2]), v[2])
		}
	}
	// gpu_uuids keeps every UUID, each cut as energy cuts its uuid label.
	info := regexp.MustCompile(`gpu_uuids="([^"]*)"`).FindStringSubmatch(body)
	if info == nil || info[1] != "GPU-a "+LabelValue(uuid) || !strings.HasSuffix(info[1], "é…") {
		t.Errorf("gpu_uuids = %q", info)
	}
}

func TestLabelValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"Qwen/Qwen3-8B", "Qwen/Qwen3-8B"},
		{strings.Repeat("a", MaxLabelValueBytes), strings.Repeat("a", MaxLabelValueBytes)},
		{strings.Repeat("a", MaxLabelValueBytes+1), strings.Repeat("a", MaxLabelValueBytes-3) + "…"},
		{"a" + strings.Repeat("é", 200), "a" + strings.Repeat("é", 126) + "…"}, // 1+252+3 bytes
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
	} {
		if got := LabelValue(tc.in); got != tc.want {
			t.Errorf("LabelValue(%.30q…) = %.30q… (%d bytes), want %.30q… (%d bytes)", tc.in, got, len(got), tc.want, len(tc.want))
		}
	}
}
