package exporter

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/internal/hostile"
)

// A push target that answers an error with a body without end (issue 16,
// defect 6: 8.7 GB RSS and a 1.59 GB log line) is read and quoted up to
// maxPushErrorBody, every time, periodic or final. The target here stops
// after 2 MiB, so that code which reads it all fails this test without
// using much memory.
func TestPushErrorBodyIsBounded(t *testing.T) {
	srv := hostile.Start(t, hostile.Config{Mode: hostile.EndlessBody, Status: 500, Limit: 2 << 20})
	var logs syncBuffer
	p, err := StartPush(srv.URL+"/api/v1/import/prometheus", 20*time.Millisecond, newTestRun().Registry(),
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); srv.Requests() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("no periodic push within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	final := p.Close(ctx)
	if final == nil {
		t.Fatal("the final push to a failing target succeeded")
	}
	lines := append(strings.Split(strings.TrimSpace(logs.String()), "\n"), final.Error())
	for _, line := range lines {
		if len(line) > 3*maxPushErrorBody {
			t.Errorf("a %d-byte message: %.200s…", len(line), line)
		}
		if !strings.Contains(line, "500") || !strings.Contains(line, "…(more not read)") {
			t.Errorf("message does not say the status and that the body was cut: %.200s…%s", line, line[max(0, len(line)-100):])
		}
	}
}
